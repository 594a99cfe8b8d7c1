"""`engine explain`: why each recommended value was chosen (and, at why-not, why other rules were not)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from engine.commands.recommend import add_input_arguments
from engine.trace import LEVELS


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("explain", help="explain a recommendation: winners, overridden rules, misses",
                              description="Render the decisions `recommend` returns with their provenance. "
                              "Levels: decisions (winners), full (+ matched rules, overridden candidates, "
                              "notes incl. memory arithmetic), why-not (+ rules that did not match and the "
                              "first condition that failed).")
    add_input_arguments(p)
    p.add_argument("--level", choices=LEVELS, default="decisions",
                   help="how much to show (default: decisions)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.commands._common import print_json
    from engine.commands.recommend import autotune_line, settings_and_inputs
    from engine.recommend import recommend
    from engine.render import explain_dict
    from engine.render_text import explain_text

    settings, kwargs = settings_and_inputs(args)
    rec = recommend(**kwargs)
    if args.json:
        print_json("explanation", {**explain_dict(rec, args.level), "autotune": settings.autotune.to_dict()})
    else:
        sys.stdout.write(autotune_line(settings) + explain_text(rec, args.level))
    return 0
