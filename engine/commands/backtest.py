"""`engine backtest`: leave-one-model-out or leave-one-hardware-out regret of the curated rulebook vs Lemonade's
static order, per phase and GPU family, for the backend decision and the whole configuration."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from engine.commands._common import add_json_flag


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "backtest", help="held-out regret: curated rulebook vs Lemonade's static backend order",
        description="For each held-out unit (--holdout model: a model; hardware: a GPU architecture, every machine "
        "with it): curate without it, recommend for its measured tests (chat for generation, coding/long-context "
        "for prompt processing), and compare the measured tokens/s of the recommendation with the best measured "
        "one among the backends no known failure excludes there (regret = 1 - achieved/best). Reported per phase "
        "(tg, pp) and GPU family, for the backend decision (each policy's backend at its best measured "
        "parameters) and for the whole configuration (the exact configuration must have been measured, else the "
        "cell is unmeasured).")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="benchmark files or directories")
    p.add_argument("--holdout", choices=("model", "hardware"), default="model",
                   help="what each fold leaves out (default: model)")
    p.add_argument("--ignore-known-failures", action="store_true",
                   help="speed alone: leave the known-failure rules (rulebook/models/known-failures.yaml) out of "
                   "the rulebook and of the best, so a backend that gives wrong output competes on its speed")
    p.add_argument("--rulebook", action="append", metavar="DIR",
                   help="hand-written rulebook roots used next to the re-curated rules (repeatable; default: "
                   "the bundled rulebook without generated/)")
    add_json_flag(p)
    p.set_defaults(func=run)


def fixed_roots() -> list[Any]:
    from engine.rulebook import bundled_root

    root = bundled_root()
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name != "generated")


def run(args: argparse.Namespace) -> int:
    from engine.commands._common import print_json
    from engine.commands.curate import progress_bar, read_rows, report_issues
    from engine.curate.backtest import backtest, unit_of
    from engine.errors import UsageError

    rows, protos, issues = read_rows(args.inputs)
    report_issues(issues)
    if not rows:
        raise UsageError("no valid benchmark record in the inputs")
    roots = args.rulebook or fixed_roots()
    units = {unit_of(args.holdout, r.cell, protos[(r.cell[0], r.cell[1])]) for r in rows}
    bar = progress_bar(f"leave-one-{args.holdout}-out", total=len(units), unit=f"{args.holdout}s")
    try:
        result = backtest(rows, protos, roots, holdout=args.holdout, known_failures=not args.ignore_known_failures,
                          progress=bar.advance if bar else None)
    finally:
        if bar is not None:
            bar.close()
    table = result.table()
    if args.json:
        print_json("backtest", {"holdout": args.holdout, "known_failures": not args.ignore_known_failures,
                                "units": result.units, "models": result.models,
                                "cells": result.cells, "table": table,
                                "rulebook_roots": [str(r) for r in roots]})
        return 0
    sys.stdout.write(format_table(table, result.models, result.cells, args.holdout, result.units,
                                  not args.ignore_known_failures))
    return 0


def _cell(row: dict[str, Any] | None) -> str:
    if row is None or row["mean"] is None:
        return "-"
    return f"{row['mean']:.1%} ({row['p90']:.1%})"


def format_table(table: list[dict[str, Any]], models: int, cells: int, holdout: str = "model",
                 units: int | None = None, known_failures: bool = True) -> str:
    what = "GPU architectures" if holdout == "hardware" else "models"
    among = "among backends no known failure excludes" if known_failures else "(speed alone: known failures ignored)"
    lines = [f"leave-one-{holdout}-out over {units if units is not None else models} {what}, {cells} measured cells "
             f"(regret = 1 - achieved/best measured tokens/s {among}; mean (p90))",
             "decision: each policy's backend at that backend's best measured parameters; config: the exact "
             "recommended configuration (unset = llama.cpp defaults) must have been measured, else unmeasured.",
             "static = Lemonade's order system > metal > cuda > vulkan > rocm > cpu; contested = tests where 2+ "
             "backends were measured.", "",
             "| subset | GPU family | phase | cells | decision: curated | decision: static | config: curated | "
             "config: static | config unmeasured (curated/static) |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    idx = {(r["subset"], r["family"], r["metric"], r["policy"]): r for r in table}
    keys = sorted({(r["subset"], r["family"], r["metric"]) for r in table},
                  key=lambda k: (k[0] != "all", k[1] != "all", k[1], k[2] != "tg", k[2]))
    names = {"tg": "tg", "pp": "pp"}
    for subset, fam, metric in keys:
        if metric not in names:
            continue
        row = {p: idx.get((subset, fam, metric, p)) for p in ("curated", "static", "curated-backend-only",
                                                              "static-backend-only")}
        dec = row["curated-backend-only"]
        n = dec["cells"] if dec else 0
        if n == 0:
            continue
        cur, sta = row["curated"], row["static"]
        unm = f"{cur['unmeasured'] if cur else 0}/{sta['unmeasured'] if sta else 0}"
        lines.append(f"| {subset} | {fam} | {names[metric]} | {n} | {_cell(dec)} | {_cell(row['static-backend-only'])} "
                     f"| {_cell(cur)} | {_cell(sta)} | {unm} |")
    return "\n".join(lines) + "\n"
