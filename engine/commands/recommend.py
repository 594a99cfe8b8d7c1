"""`engine recommend`: the backend and llama.cpp options for a model on this (or a described) machine."""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

SCENARIO_HELP = ("workload: chat (default), coding, long-context, or a Lemonade bench scenario name or "
                 "category (chat-short, context-32k, embed, ...)")


def add_input_arguments(p: argparse.ArgumentParser) -> None:
    """Input flags shared by `recommend` and `explain`."""
    p.add_argument("--model", required=True, metavar="SPEC",
                   help="Lemonade registry name, a .gguf file, or a model-facts JSON file")
    p.add_argument("--system-info", metavar="FILE|-",
                   help="Lemonade GET /v1/system-info JSON (file or - for stdin); default: detect this machine")
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
    p.add_argument("--json", action="store_true", help="print a JSON envelope instead of text")


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("recommend", help="recommend backend and llama.cpp options for a model",
                              description="Recommend Lemonade recipe options (backend, llamacpp_args, "
                              "ctx_size) for a model, with the rule behind every value.")
    add_input_arguments(p)
    p.set_defaults(func=run)


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`PARAM=VALUE` strings -> values (integers as int; extra_args split like a shell)."""
    from engine.errors import UsageError

    out: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        name, raw = name.strip(), raw.strip()
        if not sep or not name:
            raise UsageError(f"--set {item!r}: expected PARAM=VALUE, e.g. --set ctx_size=32768")
        if name == "extra_args":
            try:
                out[name] = shlex.split(raw)
            except ValueError as err:
                raise UsageError(f"--set {item!r}: {err}") from None
        elif raw.lstrip("-").isdigit():
            out[name] = int(raw)
        else:
            out[name] = raw
    return out


def load_inputs(args: argparse.Namespace) -> dict[str, Any]:
    """Hardware facts, model facts and recommend() keyword arguments from the shared flags."""
    from engine.commands._common import read_input
    from engine.recommend import validate_overrides

    overrides = validate_overrides(parse_overrides(args.overrides))
    if args.system_info:
        from facts.lemonade import from_system_info

        label, text = read_input(args.system_info)
        hw = from_system_info(text, source=f"system-info:{label}")
    else:
        from facts.detect import detect

        hw = detect()
    for warning in hw.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    model = _model_facts(args.model)
    rulebook = None
    if args.rulebook:
        from engine.rulebook import bundled_root, load_rulebook

        rulebook = load_rulebook(*(bundled_root() if r == "bundled" else r for r in args.rulebook))
    return {"facts": hw, "model": model, "scenario": args.scenario, "rulebook": rulebook,
            "evaluator": args.engine, "overrides": overrides, "memory_fit": args.memory_fit}


def _model_facts(spec: str):
    """Model facts for SPEC; a .gguf whose header cannot be read falls back to size-based facts, which
    the memory fit and explain mark `estimated` (a warning on stderr says why)."""
    from pathlib import Path

    from facts.errors import ModelFactsError
    from facts.registry import fallback_model_facts, resolve_model_spec

    try:
        return resolve_model_spec(spec)
    except ModelFactsError as err:
        path = Path(spec)
        if path.suffix.lower() != ".gguf" or not path.is_file():
            raise
        print(f"warning: {err}; falling back to size-based estimates", file=sys.stderr)
        return fallback_model_facts(spec, path.stat().st_size or None)


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
