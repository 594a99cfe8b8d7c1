"""`engine cache`: where the compiled-rulebook cache is, what it holds, and `--clear` to empty it."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from engine.commands._common import add_json_flag


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "cache", help="show or clear the compiled-rulebook cache",
        description="The compiled-rulebook cache holds validated rulebooks (and the durable-rules plan) keyed by "
                    "their content and this version's code, so a start skips parsing YAML. It can never change "
                    "an answer: a stale or damaged entry is ignored and rebuilt. Location: "
                    "$LEMONADE_AUTOTUNE_CACHE_DIR, else the user cache directory; LEMONADE_AUTOTUNE_CACHE=off "
                    "turns it off.")
    p.add_argument("--clear", action="store_true", help="remove every entry")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.rulebook import cache

    where = cache.directory()
    removed = cache.clear() if args.clear else None
    entries = cache.entries()
    size = sum(p.stat().st_size for p in entries)
    if args.json:
        from engine.envelope import print_json

        print_json("cache", {"directory": str(where) if where else None, "enabled": where is not None,
                             "entries": [p.name for p in entries], "bytes": size, "removed": removed})
        return 0
    if where is None:
        print("compiled-rulebook cache: off (LEMONADE_AUTOTUNE_CACHE=off)")
        return 0
    print(f"compiled-rulebook cache: {where}")
    print(f"  {len(entries)} entr{'y' if len(entries) == 1 else 'ies'}, {size / 1024:.0f} KiB")
    if removed is not None:
        print(f"  removed {removed} file(s)", file=sys.stderr)
    return 0
