"""Read benchmark files (Lemonade bench JSON, llama-bench json/jsonl/csv/md, the community CSV) into records."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from engine.curate.fields import Item, col, flag, make, num, parse_test
from engine.curate.markdown import read_markdown
from engine.curate.normalise import backend_of, build_of, iso_date
from engine.curate.records import IngestIssue
from engine.curate.submission import read_lemonade_or_submission
from engine.errors import UsageError
from facts.documents import JSONProblem, parse_json, parse_json_at

__all__ = ["IngestError", "Item", "parse_test", "read_file", "read_paths", "sniff"]


class IngestError(UsageError):
    """An input file that cannot be read at all (not one bad row)."""


def sniff(path: Path, head: str) -> str:
    """The format of a file from its name and first characters."""
    suffix = path.suffix.lower()
    stripped = head.lstrip()
    if suffix == ".jsonl" or (stripped.startswith("{") and "\n{" in head.strip()
                              and '"avg_ts"' in head.splitlines()[0]):
        return "llama-bench-jsonl"
    if suffix == ".json" or stripped.startswith(("{", "[")):
        if stripped.startswith("[") or '"avg_ts"' in head:
            return "llama-bench-json"
        return "lemonade-bench"
    if suffix == ".md" or "| model" in head or "|---" in head.replace(" ", ""):
        return "llama-bench-md"
    first = head.splitlines()[0] if head else ""
    if "tokens_per_s" in first:
        return "community-csv"
    if "avg_ts" in first:
        return "llama-bench-csv"
    raise IngestError(f"{path}: unknown benchmark format (expected Lemonade bench JSON, llama-bench "
                      "json/jsonl/csv/md output or the community CSV)")


def read_paths(paths: Iterable[str | Path]) -> Iterator[Item]:
    """Every record and every rejected row of every file (directories are read recursively)."""
    for p in _expand(paths):
        yield from read_file(p)


def _expand(paths: Iterable[str | Path]) -> list[Path]:
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*") if q.is_file()
                              and q.suffix.lower() in {".json", ".jsonl", ".csv", ".md"}
                              and q.name.lower() != "readme.md"))
        elif p.is_file():
            out.append(p)
        else:
            raise IngestError(f"{p}: no such file or directory")
    return out


_STREAMED = {"community-csv", "llama-bench-csv", "llama-bench-jsonl"}  # read line by line (big files)


def read_file(path: Path) -> Iterator[Item]:
    with path.open(encoding="utf-8", errors="replace", newline="") as f:
        head = f.read(4096)
    fmt = sniff(path, head)
    parser = {"community-csv": _community_csv, "llama-bench-csv": _bench_csv, "llama-bench-json": _bench_json,
              "llama-bench-jsonl": _bench_jsonl, "llama-bench-md": read_markdown, "lemonade-bench": read_lemonade_or_submission}[fmt]
    if fmt in _STREAMED:
        with path.open(encoding="utf-8", errors="replace", newline="") as f:
            yield from parser(str(path), f)
    else:
        yield from parser(str(path), path.read_text(encoding="utf-8", errors="replace"))


# ---------------------------------------------------------------- community CSV

_TRUTH = {"true": True, "false": False}


def _lines(source: str | Iterable[str]) -> Iterable[str]:
    return io.StringIO(source) if isinstance(source, str) else source


def _csv_rows(reader: Any, label: str, issues: list[IngestIssue]) -> Iterator[Any]:
    """The reader's rows; a row the csv module cannot read (a field over its limit, NUL bytes in old Pythons)
    ends the file with one issue at its line."""
    try:
        yield from reader
    except csv.Error as err:
        issues.append(IngestIssue(where=f"{label}:{reader.line_num}",
                                  message=f"not readable as CSV ({err}); the rest of the file is skipped"))


def _community_csv(label: str, text: str | Iterable[str]) -> Iterator[Item]:
    reader = csv.reader(_lines(text))
    broken: list[IngestIssue] = []
    header = next(_csv_rows(reader, label, broken), [])
    width = len(header)
    for cells in _csv_rows(reader, label, broken):
        where = f"{label}:{reader.line_num}"
        if len(cells) != width:
            if cells:
                yield IngestIssue(where=where, message=f"row has {len(cells)} fields, the header has {width}")
            continue
        row = dict(zip(header, cells, strict=True))
        try:
            tps = col(row, "tokens_per_s")
            if tps is None:
                yield IngestIssue(where=where, message="tokens_per_s is empty")
                continue
            kind, n_p, n_g, depth = parse_test(row.get("test") or "")
            depth = col(row, "depth", int) or depth
            kv_text = row.get("kv_type")
            kv = dict(p.split("=", 1) for p in kv_text.split(",") if "=" in p) if kv_text else {}
            backend = (row.get("backend") or "").strip().lower()
            build, build_n = build_of(row.get("build"))
            raw = {"hardware": row.get("hardware") or "", "arch_hint": row.get("gpu_family_or_arch") or "",
                   "mem_gb": col(row, "vram_gb"),
                   "unified": _TRUTH.get((row.get("unified_memory") or "").lower()),
                   "gpu_count": col(row, "gpu_count", int), "model": row.get("model") or "",
                   "quant": row.get("model_quant") or None, "params_b": col(row, "model_params_b"),
                   "backend": backend, "variant": row.get("backend_variant") or "",
                   "ngl": col(row, "n_gpu_layers", int), "batch": col(row, "batch", int),
                   "ubatch": col(row, "ubatch", int), "threads": col(row, "threads", int),
                   "flash_attn": flag(row.get("flash_attn")), "type_k": kv.get("k"), "type_v": kv.get("v"),
                   "test": kind, "n_prompt": n_p, "n_gen": n_g, "depth": depth, "tps": tps,
                   "tps_std": col(row, "tokens_per_s_std"), "build": build, "build_number": build_n,
                   "date": iso_date(row.get("source_date")), "source": row.get("source_url") or label}
        except ValueError as err:
            yield IngestIssue(where=where, message=str(err))
            continue
        yield make(where, "community-csv", raw)
    yield from broken


# ---------------------------------------------------------------- llama-bench json / jsonl / csv

def _bench_obj(where: str, fmt: str, obj: Any, label: str) -> Item:
    if not isinstance(obj, dict):
        return IngestIssue(where=where, message=f"expected a llama-bench result object, got {type(obj).__name__}")
    try:
        n_p, n_g = num(obj.get("n_prompt"), int) or 0, num(obj.get("n_gen"), int) or 0
        kind = "pg" if n_p and n_g else ("pp" if n_p else "tg")
        backend = backend_of(str(obj.get("backends") or obj.get("backend") or ""))
        ngl = num(obj.get("n_gpu_layers"), int)
        if ngl == 0 and backend not in ("metal",):
            backend = "cpu"
        filename = str(obj.get("model_filename") or "")
        stem = Path(filename.replace("\\", "/")).name.removesuffix(".gguf") if filename else ""
        n_params = num(obj.get("model_n_params"))
        bn = num(obj.get("build_number"), int)
        commit = str(obj.get("build_commit") or "")
        gpus = [g.strip() for g in re.split(r"[,/]", str(obj.get("gpu_info") or "")) if g.strip()]
        gpu = gpus[0] if gpus else ""
        same = len(gpus) > 1 and all(g == gpu for g in gpus)  # "RTX 3090, RTX 3090": two identical cards
        raw = {"hardware": f"{len(gpus)}x {gpu}" if same else gpu or str(obj.get("cpu_info") or ""),
               "cpu_name": str(obj.get("cpu_info") or ""),
               "gpu_count": 0 if not gpu else (len(gpus) if same else None),
               "model": f"{stem} [{obj.get('model_type', '')} ]" if stem else str(obj.get("model_type") or ""),
               "params_b": round(n_params / 1e9, 2) if n_params else None,
               "backend": backend or "", "variant": str(obj.get("backends") or ""), "ngl": ngl,
               "batch": num(obj.get("n_batch"), int), "ubatch": num(obj.get("n_ubatch"), int),
               "threads": num(obj.get("n_threads"), int), "flash_attn": flag(obj.get("flash_attn")),
               "type_k": obj.get("type_k") or None, "type_v": obj.get("type_v") or None,
               "test": kind, "n_prompt": n_p, "n_gen": n_g, "depth": num(obj.get("n_depth"), int) or 0,
               "tps": num(obj.get("avg_ts")), "tps_std": num(obj.get("stddev_ts")),
               "build": f"b{bn}" if bn else commit[:9], "build_number": bn,
               "date": iso_date(str(obj.get("test_time") or "")), "source": label}
        if raw["tps"] is None:
            return IngestIssue(where=where, message="avg_ts is missing")
    except ValueError as err:
        return IngestIssue(where=where, message=str(err))
    return make(where, fmt, raw)


def _bench_json(label: str, text: str) -> Iterator[Item]:
    start = text.find("[")
    if start < 0:
        yield IngestIssue(where=f"{label}:1", message="expected a JSON array of llama-bench results")
        return
    pos, i = start + 1, 0
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text) or text[pos] == "]":
            return
        line = text.count("\n", 0, pos) + 1
        try:
            obj, pos = parse_json_at(text, pos)
        except JSONProblem as err:
            if err.end is None:  # unreadable from here on: invalid JSON, or nested past the parser
                yield IngestIssue(where=f"{label}:{err.line or line}",
                                  message=f"{err.message}; the rest of the file is skipped")
                return
            yield IngestIssue(where=f"{label}:{line} $[{i}]", message=f"{err.where}: {err.message}")
            pos = err.end
        else:
            yield _bench_obj(f"{label}:{line} $[{i}]", "llama-bench-json", obj, label)
        i += 1


def _bench_jsonl(label: str, text: str | Iterable[str]) -> Iterator[Item]:
    for n, line in enumerate(_lines(text), start=1):
        if not line.strip():
            continue
        try:
            obj = parse_json(line)
        except JSONProblem as err:
            yield IngestIssue(where=f"{label}:{n}", message=f"invalid JSON: {err.message} ({err.where})")
            continue
        yield _bench_obj(f"{label}:{n}", "llama-bench-jsonl", obj, label)


def _ragged(row: dict[Any, Any], header: list[str] | None) -> str | None:
    """A message when a CSV row has more or fewer fields than the header (None when it matches)."""
    if None in row:
        return f"row has {len(header or []) + len(row[None])} fields, the header has {len(header or [])}"
    missing = [k for k, v in row.items() if v is None]
    if missing:
        return (f"row has {len(header or []) - len(missing)} fields, the header has {len(header or [])} "
                f"(first missing column: {missing[0]})")
    return None


def _bench_csv(label: str, text: str | Iterable[str]) -> Iterator[Item]:
    reader = csv.DictReader(_lines(text))
    broken: list[IngestIssue] = []
    for row in _csv_rows(reader, label, broken):
        where = f"{label}:{reader.line_num}"
        bad = _ragged(row, reader.fieldnames)
        yield IngestIssue(where=where, message=bad) if bad else _bench_obj(where, "llama-bench-csv", row, label)
    yield from broken


