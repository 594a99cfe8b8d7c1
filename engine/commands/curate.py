"""`engine curate`: benchmark files -> evidence-backed rule YAML (and an HTML review report)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from engine.commands._common import add_json_flag

MAX_SHOWN_ISSUES = 50


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "curate", help="curate benchmark results into rule YAML with evidence",
        description="Read Lemonade `bench` JSON, llama-bench output (json, jsonl, csv, md) and the community CSV; "
        "drop duplicates and outliers; choose backend and parameters per archetype x model class x scenario "
        "where the win exceeds the noise; write deterministic rule YAML. Rejected rows are listed on stderr "
        "as FILE:LINE: message (exit 1 when there are any).")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="benchmark files or directories")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="output directory for the generated YAML (e.g. rulebook/generated/)")
    p.add_argument("--report", metavar="FILE.html", help="also write the HTML review report")
    add_json_flag(p)
    p.set_defaults(func=run)


def read_rows(inputs: list[str]) -> tuple[list[Any], dict, list[Any]]:
    """Stream every input into compact rows; returns (rows, protos, issues)."""
    from engine.curate.curate import Slimmer
    from engine.curate.ingest import read_paths
    from engine.curate.records import IngestIssue

    slim = Slimmer()
    rows: list[Any] = []
    issues: list[IngestIssue] = []
    bar = progress_bar("reading benchmarks")
    for item in read_paths(inputs):
        if isinstance(item, IngestIssue):
            issues.append(item)
        else:
            rows.append(slim(item))
        if bar is not None and (len(rows) + len(issues)) % 5000 == 0:
            bar.update(len(rows) + len(issues))
    if bar is not None:
        bar.close()
    return rows, slim.protos, issues


class _Bar:
    def __init__(self, label: str, total: int | None = None, unit: str = "rows") -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.p = Progress(TextColumn(label), BarColumn(), TextColumn("{task.completed:,} " + unit),
                          TimeElapsedColumn(), transient=True, console=_console())
        self.t = self.p.add_task(label, total=total)
        self.p.start()

    def update(self, n: int) -> None:
        self.p.update(self.t, completed=n)

    def advance(self) -> None:
        self.p.advance(self.t)

    def close(self) -> None:
        self.p.stop()


def _console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def progress_bar(label: str, total: int | None = None, unit: str = "rows") -> _Bar | None:
    """A progress bar on stderr, only when stderr is a terminal."""
    return _Bar(label, total, unit) if sys.stderr.isatty() else None


def report_issues(issues: list[Any]) -> None:
    for issue in issues[:MAX_SHOWN_ISSUES]:
        print(str(issue), file=sys.stderr)
    if len(issues) > MAX_SHOWN_ISSUES:
        print(f"... and {len(issues) - MAX_SHOWN_ISSUES} more rejected rows", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from engine.commands._common import print_json
    from engine.curate.curate import curate_rows
    from engine.curate.emit import write
    from engine.errors import UsageError

    if args.report:
        import importlib.util

        if importlib.util.find_spec("matplotlib") is None:  # check before anything is written
            raise UsageError("--report needs matplotlib: pip install 'lemonade-autotune[report]'")
    rows, protos, issues = read_rows(args.inputs)
    n = len(rows)
    report_issues(issues)
    if not rows:
        raise UsageError("no valid benchmark record in the inputs" + (f" ({len(issues)} rejected)" if issues else ""))
    result = curate_rows(rows, protos)
    files = write(result, args.out)
    if args.report:
        from engine.curate.report import write_report

        write_report(result, args.report)
    summary = {"records": n, "rejected": len(issues), "duplicates": result.duplicates,
               "outliers": len(result.outliers), "decisions": len(result.decisions),
               "undecided": len(result.skipped), "files": [str(f) for f in files],
               "report": args.report,
               "outlier_rows": [{"where": o.row.where, "tokens_per_s": o.row.tps,
                                 "group_median": round(o.group_median, 3)} for o in result.outliers[:200]]}
    if args.json:
        print_json("curation", summary)
    else:
        print(f"{n} records ({len(issues)} rejected, {result.duplicates} duplicates, {len(result.outliers)} "
              f"outliers); {len(result.decisions)} decisions, {len(result.skipped)} groups undecided")
        for o in result.outliers[:20]:
            print(f"outlier: {o.row.where}: {o.row.tps:g} tokens/s vs group median {o.group_median:g}",
                  file=sys.stderr)
        for f in files:
            print(f"wrote {f}")
        if args.report:
            print(f"wrote {args.report}")
    return 1 if issues else 0
