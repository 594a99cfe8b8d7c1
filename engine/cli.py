"""The `engine` command: one sub-command module per verb under engine/commands/."""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import pkgutil
import sys
import traceback

from engine import commands
from engine._version import __version__

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
# one-shot verbs lemond may run on every load: they allocate a rulebook once and exit (see entry())
QUICK_VERBS = frozenset({"recommend", "explain", "facts", "memory", "status"})


def _verbs() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_"))


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser with every verb, or only with `only` (a one-verb run imports just that verb's module)."""
    parser = argparse.ArgumentParser(
        prog="engine",
        description="Lemonade auto-tune: hardware + model facts -> rulebook -> backend and llama.cpp flags.",
    )
    parser.add_argument("--version", action="version", version=f"lemonade-autotune {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True
    for name in [only] if only else _verbs():
        importlib.import_module(f"engine.commands.{name}").add_parser(sub)
    return parser


def _fail(args: argparse.Namespace, code: int, records: list[dict], message: str) -> int:
    """Report an error: stderr always; with --json also an `error` envelope on stdout (for lemond)."""
    print(f"engine {args.verb}: error: {message}", file=sys.stderr)
    if getattr(args, "json", False):
        from engine.envelope import print_json

        print_json("error", {"exit_code": code}, records)
    return code


def main(argv: list[str] | None = None) -> int:
    """Run one verb; map errors to exit codes: 2 for the user's input, 3 for a bug in our code."""
    from engine.errors import INTERNAL_HINT, EngineError
    from facts.errors import FactsError

    argv = sys.argv[1:] if argv is None else argv
    verb = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(verb if verb in _verbs() else None)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (FactsError, EngineError) as err:
        if err.exit_code == EXIT_INTERNAL:
            traceback.print_exc()
            return _fail(args, EXIT_INTERNAL, err.records(), f"{err}\n{INTERNAL_HINT}")
        return _fail(args, err.exit_code, err.records(), str(err))
    except OSError as err:  # a file the user named cannot be read or written
        where = err.filename if isinstance(err.filename, str) else None
        return _fail(args, EXIT_USAGE, [{"code": "os_error", "message": str(err), "location": where}], str(err))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as err:  # a bug in our code, not the user's input
        traceback.print_exc()
        return _fail(args, EXIT_INTERNAL, [{"code": "internal", "message": repr(err), "location": None}],
                     f"internal error (exit 3): {INTERNAL_HINT}")


def entry() -> None:
    """The console script (and `python -m engine`): main(), then an immediate exit.

    The answer is printed and flushed by then; tearing the interpreter down (freeing every module and the
    rulebook) would cost about a tenth of a quick command's run, so the process ends at once with main()'s
    code. For the quick verbs the cyclic garbage collector is off as well: they build their objects once and
    free nothing before they exit (measured in bench/cold_start.py). Long-running verbs keep it.
    """
    argv = sys.argv[1:]
    if next((a for a in argv if not a.startswith("-")), None) in QUICK_VERBS:
        gc.disable()
    code = main(argv)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:  # the reader went away: nothing more to say
        pass
    os._exit(code)


if __name__ == "__main__":
    entry()
