"""The `engine` command: one sub-command module per verb under engine/commands/."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import traceback

from engine import commands

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="engine",
        description="Lemonade auto-tune: hardware + model facts -> rulebook -> backend and llama.cpp flags.",
    )
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"engine.commands.{info.name}")
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one verb; map errors to exit codes: 2 for user input, 3 for a bug in our code."""
    from engine.errors import EngineError
    from facts.errors import FactsError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (FactsError, EngineError, OSError) as err:
        print(f"engine {args.verb}: error: {err}", file=sys.stderr)
        return getattr(err, "exit_code", EXIT_USAGE)  # a class may name its own code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception:  # a bug in our code, not the user's input
        traceback.print_exc()
        print(f"engine {args.verb}: internal error (exit 3); please report it with the trace above",
              file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
