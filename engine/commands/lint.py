"""`engine lint`: check rulebooks (schema, ids, salience, conflicts, shadowing, defaults, durable capacity)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from engine.commands._common import add_json_flag


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "lint", help="check rulebook directories",
        description="Check rulebooks: schema and located load errors, unique ids, salience range, same-layer "
                    "same-priority conflicts, shadowed and unreachable rules, a recipe default for every "
                    "parameter, and durable-rules capacity. Exit 1 on errors, 0 with warnings only, 2 when "
                    "the input cannot be read.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dirs", nargs="*", metavar="DIR",
                   help="rulebook directories or files, linted together (default: the bundled rulebook)")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.commands._common import print_json
    from engine.lint import lint

    result = lint(*args.dirs)  # RulebookReadError (exit_code 2) propagates to the dispatcher
    book = result.rulebook
    if args.json:
        print_json("lint", {
            "rulebook": {"name": book.name, "digest": book.digest, "rules": len(book.rules),
                         "files": list(book.files)} if book else None,
            "counts": {"errors": result.errors, "warnings": result.warnings},
            "findings": [f.to_dict() for f in result.findings],
        })
    else:
        for f in result.findings:
            print(f)
        summary = (f"{book.name}: {len(book.rules)} rules in {len(book.files)} files; " if book else "") + \
            f"{result.errors} error(s), {result.warnings} warning(s)"
        print(summary, file=sys.stderr)
    return 1 if result.errors else 0
