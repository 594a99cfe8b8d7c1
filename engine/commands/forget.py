"""`engine forget [RULE-ID...|--all]`: remove rules `engine learn` saved in the local rulebook."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from engine.commands._common import add_json_flag


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("forget", help="remove learned local rules",
                              description="Remove rules `engine learn` saved (the local rulebook in the config "
                                          "dir): the ones named, or --all. Without either, list them.")
    p.add_argument("rules", nargs="*", metavar="RULE-ID")
    p.add_argument("--all", action="store_true", help="remove every learned rule")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine import config
    from engine.adaptive import learn
    from engine.errors import UsageError

    settings = config.load()
    path = learn.learned_path(settings)
    rules = learn.read_rules(path)
    ids = [str(r.get("id")) for r in rules]
    if args.all and args.rules:
        raise UsageError("name rules or pass --all, not both")
    unknown = [r for r in args.rules if r not in ids]
    if unknown:
        raise UsageError(f"no learned rule {', '.join(map(repr, unknown))} in {path}; learned: "
                         f"{', '.join(ids) or '(none)'}")
    drop = set(ids) if args.all else set(args.rules)
    keep = [r for r in rules if str(r.get("id")) not in drop]
    if drop:
        learn.write_rules(path, keep)
    if args.json:
        from engine.envelope import print_json

        print_json("forget", {"file": str(path), "removed": sorted(drop), "kept": [str(r.get("id")) for r in keep]})
        return 0
    if not drop:
        sys.stdout.write(f"learned rules in {path}: {', '.join(ids) or '(none)'}\n")
    else:
        sys.stdout.write(f"removed {len(drop)} rule(s) from {path}: {', '.join(sorted(drop))}\n")
    return 0
