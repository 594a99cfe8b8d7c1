"""`engine learn BENCH.json...`: propose local rules from measurements that beat the recommendation, and save them
(layer `local`) on confirmation."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from engine.commands._common import add_json_flag


def add_parser(subparsers: Any) -> None:
    from engine.commands.recommend import SCENARIO_HELP

    p = subparsers.add_parser(
        "learn", help="propose (and save) local rules from measurements that beat the recommendation",
        description="Read bench JSON files (lemonade bench --json, engine probe/monitor --write). Where a "
                    "configuration beats the recommended one beyond the noise (several runs, gain above the "
                    "run-to-run spread), propose a local rule that sets only the parameters it changed, lint it, "
                    "and save it into the local rulebook of the config dir on confirmation. Without a terminal and "
                    "without --yes it only proposes.")
    p.add_argument("files", nargs="+", metavar="BENCH.json")
    p.add_argument("--dry-run", action="store_true", help="propose only, save nothing")
    p.add_argument("--yes", action="store_true", help="save without asking")
    p.add_argument("--system-info", metavar="FILE", help="the hardware the files were measured on (default: this "
                                                        "machine)")
    p.add_argument("--scenario", default=None, metavar="NAME", help=SCENARIO_HELP)
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine import config
    from engine.adaptive import learn, measure
    from engine.adaptive.context import Expecter, find_hardware

    settings = config.load()
    measurements = [m for f in args.files for m in measure.read_bench(f)]
    hw, hw_source = find_hardware(None, args.system_info)
    ex = Expecter(settings, hw, args.scenario or settings.scenario)
    result = learn.propose(measurements, lambda name: ex.recommend(name))
    path = learn.learned_path(settings)
    existing = learn.read_rules(path)
    roots = [r for r in config.rulebook_roots(settings, refresh=False) if Path(str(r)) != settings.local_rulebook]
    accepted, rejected = [], []
    for prop in result.proposals:
        old = next((r for r in existing if r.get("id") == prop.id), None)
        if old == prop.rule:
            result.notes.append(f"{prop.model}: rule {prop.id} is already saved, unchanged")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            errors = learn.lint_errors(roots, learn.merged(existing, [prop.rule]), Path(tmp))
        (rejected if errors else accepted).append((prop, errors))
    interactive = sys.stdin.isatty() and sys.stdout.isatty() and not args.json
    save = bool(accepted) and not args.dry_run and (args.yes or (interactive and _ask(len(accepted))))
    if save:
        learn.write_rules(path, learn.merged(existing, [p.rule for p, _ in accepted]))
    mode = "dry-run" if args.dry_run else "saved" if save else "proposed"
    if args.json:
        from engine.envelope import print_json

        print_json("learn", {"mode": mode, "file": str(path), "hardware_source": hw_source,
                             "proposals": [p.to_dict() for p, _ in accepted],
                             "rejected": [{**p.to_dict(), "lint": e} for p, e in rejected], "notes": result.notes})
        return 0
    out = sys.stdout
    out.write(f"learn: {len(measurements)} measurement(s) from {len(args.files)} file(s); hardware {hw_source}\n")
    for p, _ in accepted:
        out.write(f"proposal {p.id}: {p.model}: set {p.rule['set']} ({p.gain:+.1%} tokens/s, noise {p.noise:.1%}, "
                  f"{p.runs}+ runs, scenarios {', '.join(p.scenarios)})\n")
    for p, errors in rejected:
        out.write(f"rejected {p.id}: lint: {'; '.join(errors)}\n")
    for note in result.notes:
        out.write(f"  {note}\n")
    if save:
        out.write(f"saved {len(accepted)} rule(s) to {path} (layer local; `engine forget` removes them)\n")
    elif accepted:
        why = ("--dry-run" if args.dry_run else "not confirmed" if interactive
               else "no terminal to ask; pass --yes to save")
        out.write(f"nothing saved: {why}\n")
    return 0


def _ask(n: int) -> bool:
    try:
        answer = input(f"save {n} local rule(s)? [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")
