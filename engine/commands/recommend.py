"""`engine recommend`: the backend and llama.cpp options for a model on this (or a described) machine."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from engine.commands._common import add_json_flag

SCENARIO_HELP = ("workload: chat (default), coding, long-context, or a Lemonade bench scenario name or "
                 "category (chat-short, context-32k, embed, ...)")


def add_input_arguments(p: argparse.ArgumentParser) -> None:
    """Input flags shared by `recommend` and `explain`."""
    p.add_argument("--model", required=True, metavar="SPEC",
                   help="Lemonade registry name, a .gguf file, or a model-facts JSON file")
    p.add_argument("--system-info", metavar="FILE|-",
                   help="Lemonade GET /v1/system-info JSON (file or - for stdin); default: detect this machine")
    p.add_argument("--llama-devices", metavar="FILE|-",
                   help="llama.cpp `--list-devices` output or start-up log (merged with --system-info if both)")
    p.add_argument("--scenario", default="chat", metavar="NAME", help=SCENARIO_HELP)
    p.add_argument("--engine", choices=("durable", "python"), default=None,
                   help="rule evaluator (default: durable where it runs, else python)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="PARAM=VALUE",
                   help="user override, highest layer (repeatable), e.g. --set ctx_size=32768 "
                        "--set extra_args='--no-warmup'")
    p.add_argument("--rulebook", action="append", default=[], metavar="DIR",
                   help="rulebook directory (repeatable; replaces the bundled one, which is named 'bundled')")
    p.add_argument("--no-autotune", action="store_true",
                   help="auto-tune off for this run: Lemonade's own defaults (also LEMONADE_AUTOTUNE=0)")
    p.add_argument("--no-memory-fit", dest="memory_fit", action="store_false",
                   help="skip the memory model: no fit facts for rules, no memory guard (ctx_size / n_gpu_layers / "
                        "n_cpu_moe stay as the rules say)")
    p.add_argument("--force", action="store_true",
                   help="keep a configuration that does not fit or that llama.cpp would refuse (reported under "
                        "warnings) instead of exiting 2")
    add_json_flag(p)


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("recommend", help="recommend backend and llama.cpp options for a model",
                              description="Recommend Lemonade recipe options (backend, llamacpp_args, "
                              "ctx_size) for a model, with the rule behind every value.")
    add_input_arguments(p)
    p.set_defaults(func=run)


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def settings_and_inputs(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """The settings in force (engine.config: the auto-tune switch, the user rulebook, config overrides) and
    recommend() keyword arguments. Auto-tune off: the recipe-default rules, no memory fit, no overrides."""
    from engine import config, inputs
    from engine.recommend import validate_overrides

    settings = config.load(no_autotune=getattr(args, "no_autotune", False))
    overrides = validate_overrides(inputs.parse_overrides(args.overrides))
    hw = inputs.hardware(args.system_info, args.llama_devices)
    for message in hw.warnings:
        warn(message)
    model = inputs.model(args.model, warn=warn)
    rulebook = None
    if args.rulebook and settings.autotune.enabled:
        from engine.rulebook import bundled_root, load_rulebook

        rulebook = load_rulebook(*(bundled_root() if r == "bundled" else r for r in args.rulebook))
    elif config.custom_book(settings):  # auto-tune off, a user rulebook, an active remote rulebook
        rulebook = config.load_book(settings)
    kw = config.recommend_kwargs(settings, overrides, args.memory_fit)
    return settings, {"facts": hw, "model": model, "scenario": args.scenario, "rulebook": rulebook,
                      "evaluator": args.engine, "force": args.force, **kw}


def autotune_line(settings: Any) -> str:
    """The line `recommend` and `explain` print first when auto-tune is off."""
    if settings.autotune.enabled:
        return ""
    return (f"auto-tune: {settings.autotune.why} — Lemonade's own defaults (recipe-default rules, no memory "
            "fit, no overrides)\n")


def run(args: argparse.Namespace) -> int:
    from engine.commands._common import print_json
    from engine.recommend import recommend
    from engine.render import recommendation_dict
    from engine.render_text import recommendation_text

    settings, kwargs = settings_and_inputs(args)
    rec = recommend(**kwargs)
    if args.json:
        print_json("recommendation", {**recommendation_dict(rec), "autotune": settings.autotune.to_dict()})
    else:
        sys.stdout.write(autotune_line(settings) + recommendation_text(rec))
    return 0
