"""`engine backtest`: leave-one-model-out regret of the curated rulebook vs Lemonade's static order."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from engine.commands._common import add_json_flag


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "backtest", help="leave-one-model-out regret: curated rulebook vs Lemonade's static backend order",
        description="For each model in the data: curate without it, recommend for its measured hardware and "
        "tests (chat for generation, coding/long-context for prompt processing), and compare the measured "
        "tokens/s of the recommended configuration with the best measured one (regret = 1 - achieved/best). "
        "Cells where the recommended configuration was not measured are counted as unmeasured.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="benchmark files or directories")
    p.add_argument("--rulebook", action="append", metavar="DIR",
                   help="hand-written rulebook roots used next to the re-curated rules (repeatable; default: "
                   "the bundled rulebook without generated/)")
    add_json_flag(p)
    p.set_defaults(func=run)


def fixed_roots() -> list[Path]:
    from engine.rulebook import bundled_root

    root = bundled_root()
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name != "generated")


def run(args: argparse.Namespace) -> int:
    from engine.commands._common import print_json
    from engine.commands.curate import progress_bar, read_rows, report_issues
    from engine.curate.backtest import backtest
    from engine.errors import UsageError

    rows, protos, issues = read_rows(args.inputs)
    report_issues(issues)
    if not rows:
        raise UsageError("no valid benchmark record in the inputs")
    roots = args.rulebook or fixed_roots()
    bar = progress_bar("leave-one-model-out", total=len({r.cell[1] for r in rows}), unit="models")
    try:
        result = backtest(rows, protos, roots, progress=bar.advance if bar else None)
    finally:
        if bar is not None:
            bar.close()
    table = result.table()
    if args.json:
        print_json("backtest", {"models": result.models, "cells": result.cells, "table": table,
                                "rulebook_roots": [str(r) for r in roots]})
        return 0
    sys.stdout.write(format_table(table, result.models, result.cells))
    return 0


def format_table(table: list[dict[str, Any]], models: int, cells: int) -> str:
    lines = [f"leave-one-model-out over {models} models, {cells} measured cells "
             "(regret = 1 - achieved/best measured tokens/s)",
             "curated/static: the exact recommended configuration (backend + parameters; unset = llama.cpp "
             "defaults) must have been measured on that hardware/model/test, else the cell is unmeasured;",
             "*-backend-only: each policy's backend at that backend's best measured parameters "
             "(the backend decision alone). contested = tests where 2+ backends were measured.", "",
             "| subset | metric | policy | cells | mean regret | p90 regret | unmeasured |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: |"]
    names = {"tg": "generation", "pp": "prompt"}
    order = {"curated": 0, "static": 1, "curated-backend-only": 2, "static-backend-only": 3}
    for row in sorted(table, key=lambda r: (r["subset"], r["metric"] != "tg", order.get(r["policy"], 9))):
        mean = "-" if row["mean"] is None else f"{row['mean']:.1%}"
        p90 = "-" if row["p90"] is None else f"{row['p90']:.1%}"
        lines.append(f"| {row['subset']} | {names.get(row['metric'], row['metric'])} | {row['policy']} | "
                     f"{row['cells']} | {mean} | {p90} | {row['unmeasured']} |")
    return "\n".join(lines) + "\n"
