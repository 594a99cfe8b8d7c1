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


def load_inputs(args: argparse.Namespace) -> dict[str, Any]:
    """recommend() keyword arguments from the shared flags (engine.inputs does the reading)."""
    from engine import inputs
    from engine.recommend import validate_overrides

    overrides = validate_overrides(inputs.parse_overrides(args.overrides))
    hw = inputs.hardware(args.system_info, args.llama_devices)
    for message in hw.warnings:
        warn(message)
    model = inputs.model(args.model, warn=warn)
    rulebook = None
    if args.rulebook:
        from engine.rulebook import bundled_root, load_rulebook

        rulebook = load_rulebook(*(bundled_root() if r == "bundled" else r for r in args.rulebook))
    return {"facts": hw, "model": model, "scenario": args.scenario, "rulebook": rulebook,
            "evaluator": args.engine, "overrides": overrides, "memory_fit": args.memory_fit, "force": args.force}


def run(args: argparse.Namespace) -> int:
    from engine.commands._common import print_json
    from engine.recommend import recommend
    from engine.render import recommendation_dict
    from engine.render_text import recommendation_text

    rec = recommend(**load_inputs(args))
    if args.json:
        print_json("recommendation", recommendation_dict(rec))
    else:
        sys.stdout.write(recommendation_text(rec))
    return 0
