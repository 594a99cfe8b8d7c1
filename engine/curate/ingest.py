"""Read benchmark files (Lemonade bench JSON, llama-bench json/jsonl/csv/md, the community CSV) into records."""

from __future__ import annotations

import csv
import functools
import io
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from engine.curate.hardware import hardware_info
from engine.curate.normalise import backend_of, build_of, iso_date, model_info
from engine.curate.records import BenchRecord, IngestIssue
from engine.errors import UsageError

Item = BenchRecord | IngestIssue
_TEST = re.compile(r"^\s*(?:(pp)\s*(\d+)\s*\+\s*(tg)\s*(\d+)|(pp|tg)\s*(\d+))(?:\s*@\s*d(\d+))?\s*$")
_TPS = re.compile(r"^\**([0-9.]+)\**\s*(?:±\s*([0-9.]+))?")


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
              "llama-bench-jsonl": _bench_jsonl, "llama-bench-md": _bench_md, "lemonade-bench": _lemonade}[fmt]
    if fmt in _STREAMED:
        with path.open(encoding="utf-8", errors="replace", newline="") as f:
            yield from parser(str(path), f)
    else:
        yield from parser(str(path), path.read_text(encoding="utf-8", errors="replace"))


# ---------------------------------------------------------------- building one record

@functools.lru_cache(maxsize=65536)
def parse_test(text: str) -> tuple[str, int, int, int]:
    """'pp2048 @ d32768' -> ('pp', 2048, 0, 32768); 'pp4096+tg128' -> ('pg', 4096, 128, 0)."""
    m = _TEST.match(text)
    if not m:
        raise ValueError(f"unknown test {text!r} (expected ppN, tgN, ppN+tgM, optionally '@ dD')")
    depth = int(m.group(7) or 0)
    if m.group(1):
        return "pg", int(m.group(2)), int(m.group(4)), depth
    kind, n = m.group(5), int(m.group(6))
    return (kind, n, 0, depth) if kind == "pp" else (kind, 0, n, depth)


@functools.lru_cache(maxsize=8192)
def _static(hardware: str, arch_hint: str, mem_gb: float | None, unified: bool | None, gpu_count: int | None,
            cpu_only: bool, cpu_name: str, model: str, quant: str | None, params_b: float | None
            ) -> tuple[tuple[str, Any], ...]:
    """Hardware and model fields of a record (cached: a benchmark file repeats them on every row)."""
    hw = hardware_info(hardware, arch_hint=arch_hint, mem_gb=mem_gb, unified=unified, gpu_count=gpu_count,
                       cpu_only=cpu_only, cpu_name=cpu_name)
    mi = model_info(model, quant, params_b)
    return (("hardware", hardware), ("archetype", hw.archetype or ""), ("backoff", hw.backoff),
            ("vendor", hw.vendor), ("family", hw.family), ("arch", hw.arch), ("memclass", hw.memclass),
            ("gpu_count", hw.gpu_count), ("model", mi.key), ("architecture", mi.architecture),
            ("params_b", mi.params_b), ("active_params_b", mi.active_params_b), ("moe", mi.moe),
            ("quant", mi.quant), ("precision", mi.precision), ("size_class", mi.size_class),
            ("model_class", mi.model_class))


_FIELDS = ("backend", "variant", "ngl", "batch", "ubatch", "threads", "flash_attn", "type_k", "type_v", "test",
           "n_prompt", "n_gen", "depth", "scenario", "tps", "tps_std", "build", "build_number", "date", "source")


def make(where: str, fmt: str, raw: dict[str, Any]) -> Item:
    """Normalise one raw row (already split into our field names) into a validated record or an issue."""
    try:
        static = _static(raw["hardware"], raw.get("arch_hint") or "", raw.get("mem_gb"), raw.get("unified"),
                         raw.get("gpu_count"), raw.get("backend") == "cpu" and raw.get("gpu_count") == 0,
                         raw.get("cpu_name") or "", raw["model"], raw.get("quant"), raw.get("params_b"))
        doc = dict(static)
        for k in _FIELDS:
            v = raw.get(k)
            if v is not None:
                doc[k] = v
        doc["where"] = where
        doc["fmt"] = fmt
        return BenchRecord.model_validate(doc)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])
        value = first.get("input")
        return IngestIssue(where=where, message=f"{loc}: {first['msg']} (got {value!r})")
    except (ValueError, KeyError, TypeError) as err:
        return IngestIssue(where=where, message=str(err) if not isinstance(err, KeyError)
                           else f"missing field {err.args[0]!r}")


def _num(v: Any, kind: type = float) -> Any:
    if v is None or (isinstance(v, str) and not v.strip()):
        return None
    try:
        return kind(float(v)) if kind is int else kind(v)
    except (TypeError, ValueError):
        raise ValueError(f"not a number: {v!r}") from None


def _col(row: dict[str, Any], name: str, kind: type = float) -> Any:
    """A numeric column of a CSV row (None when empty); the error names the column."""
    v = row.get(name)
    if v is None or v == "" or (isinstance(v, str) and not v.strip()):
        return None
    try:
        return float(v) if kind is float else int(float(v))
    except (TypeError, ValueError):
        raise ValueError(f"{name}: not a number: {v!r}") from None


def _bool(v: Any) -> bool | None:
    if v is None or v == "" or v == -1 or v == "-1" or v == "auto":
        return None
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in {"1", "true", "on", "yes"}:
        return True
    if s in {"0", "false", "off", "no"}:
        return False
    raise ValueError(f"flash_attn must be 0/1/true/false, got {v!r}")


# ---------------------------------------------------------------- community CSV

_TRUTH = {"true": True, "false": False}


def _lines(source: str | Iterable[str]) -> Iterable[str]:
    return io.StringIO(source) if isinstance(source, str) else source


def _community_csv(label: str, text: str | Iterable[str]) -> Iterator[Item]:
    reader = csv.reader(_lines(text))
    header = next(reader, [])
    width = len(header)
    for cells in reader:
        where = f"{label}:{reader.line_num}"
        if len(cells) != width:
            if cells:
                yield IngestIssue(where=where, message=f"row has {len(cells)} fields, the header has {width}")
            continue
        row = dict(zip(header, cells, strict=True))
        try:
            tps = _col(row, "tokens_per_s")
            if tps is None:
                yield IngestIssue(where=where, message="tokens_per_s is empty")
                continue
            kind, n_p, n_g, depth = parse_test(row.get("test") or "")
            depth = _col(row, "depth", int) or depth
            kv_text = row.get("kv_type")
            kv = dict(p.split("=", 1) for p in kv_text.split(",") if "=" in p) if kv_text else {}
            backend = (row.get("backend") or "").strip().lower()
            build, build_n = build_of(row.get("build"))
            raw = {"hardware": row.get("hardware") or "", "arch_hint": row.get("gpu_family_or_arch") or "",
                   "mem_gb": _col(row, "vram_gb"),
                   "unified": _TRUTH.get((row.get("unified_memory") or "").lower()),
                   "gpu_count": _col(row, "gpu_count", int), "model": row.get("model") or "",
                   "quant": row.get("model_quant") or None, "params_b": _col(row, "model_params_b"),
                   "backend": backend, "variant": row.get("backend_variant") or "",
                   "ngl": _col(row, "n_gpu_layers", int), "batch": _col(row, "batch", int),
                   "ubatch": _col(row, "ubatch", int), "threads": _col(row, "threads", int),
                   "flash_attn": _bool(row.get("flash_attn")), "type_k": kv.get("k"), "type_v": kv.get("v"),
                   "test": kind, "n_prompt": n_p, "n_gen": n_g, "depth": depth, "tps": tps,
                   "tps_std": _col(row, "tokens_per_s_std"), "build": build, "build_number": build_n,
                   "date": iso_date(row.get("source_date")), "source": row.get("source_url") or label}
        except ValueError as err:
            yield IngestIssue(where=where, message=str(err))
            continue
        yield make(where, "community-csv", raw)


# ---------------------------------------------------------------- llama-bench json / jsonl / csv

def _bench_obj(where: str, fmt: str, obj: Any, label: str) -> Item:
    if not isinstance(obj, dict):
        return IngestIssue(where=where, message=f"expected a llama-bench result object, got {type(obj).__name__}")
    try:
        n_p, n_g = _num(obj.get("n_prompt"), int) or 0, _num(obj.get("n_gen"), int) or 0
        kind = "pg" if n_p and n_g else ("pp" if n_p else "tg")
        backend = backend_of(str(obj.get("backends") or obj.get("backend") or ""))
        ngl = _num(obj.get("n_gpu_layers"), int)
        if ngl == 0 and backend not in ("metal",):
            backend = "cpu"
        filename = str(obj.get("model_filename") or "")
        stem = Path(filename.replace("\\", "/")).name.removesuffix(".gguf") if filename else ""
        n_params = _num(obj.get("model_n_params"))
        bn = _num(obj.get("build_number"), int)
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
               "batch": _num(obj.get("n_batch"), int), "ubatch": _num(obj.get("n_ubatch"), int),
               "threads": _num(obj.get("n_threads"), int), "flash_attn": _bool(obj.get("flash_attn")),
               "type_k": obj.get("type_k") or None, "type_v": obj.get("type_v") or None,
               "test": kind, "n_prompt": n_p, "n_gen": n_g, "depth": _num(obj.get("n_depth"), int) or 0,
               "tps": _num(obj.get("avg_ts")), "tps_std": _num(obj.get("stddev_ts")),
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
    dec = json.JSONDecoder()
    pos, i = start + 1, 0
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text) or text[pos] == "]":
            return
        line = text.count("\n", 0, pos) + 1
        try:
            obj, pos = dec.raw_decode(text, pos)
        except json.JSONDecodeError as err:
            yield IngestIssue(where=f"{label}:{text.count(chr(10), 0, err.pos) + 1}",
                              message=f"invalid JSON: {err.msg}; the rest of the file is skipped")
            return
        yield _bench_obj(f"{label}:{line} $[{i}]", "llama-bench-json", obj, label)
        i += 1


def _bench_jsonl(label: str, text: str | Iterable[str]) -> Iterator[Item]:
    for n, line in enumerate(_lines(text), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            yield IngestIssue(where=f"{label}:{n}", message=f"invalid JSON: {err.msg} (column {err.colno})")
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
    for row in reader:
        where = f"{label}:{reader.line_num}"
        bad = _ragged(row, reader.fieldnames)
        yield IngestIssue(where=where, message=bad) if bad else _bench_obj(where, "llama-bench-csv", row, label)


# ---------------------------------------------------------------- llama-bench markdown

_DEVICE_LINES = (re.compile(r"ggml_vulkan:\s*0\s*=\s*(.+?)\s*\|"),
                 re.compile(r"Device 0:\s*([^,]+),\s*compute capability"),
                 re.compile(r"ggml_metal_init: found device:\s*(.+)"),
                 re.compile(r"ggml_metal_device_init: GPU name:\s*(.+)"),
                 re.compile(r"^\s*GPU name:\s*(.+)$"))
_TRAILING_PAREN = re.compile(r"\s*\([^()]*\)\s*$")


def _md_context(lines: list[str]) -> tuple[str, str, str, int | None]:
    """(device name, arch hint, build, build number) from the log lines around a markdown table."""
    device, hint, build, build_n = "", "", "", None
    for line in lines:
        for rx in _DEVICE_LINES:
            m = rx.search(line)
            if m and not device:
                name = m.group(1).strip()
                arch = re.search(r"\b(GFX\d{3,4}|gfx\d{3,4})\b", line)
                hint = arch.group(1).lower() if arch else ""
                while _TRAILING_PAREN.search(name):
                    name = _TRAILING_PAREN.sub("", name)
                device = name
        if m := re.search(r"\bbuild:\s*([0-9a-f]{6,40}\s*\(\d+\)|[0-9a-f]{6,40})", line):
            build, build_n = build_of(m.group(1))
    return device, hint, build, build_n


def _bench_md(label: str, text: str) -> Iterator[Item]:
    lines = text.splitlines()
    ctx = _md_context(lines)
    header: list[str] | None = None
    for n, line in enumerate(lines, start=1):
        if not line.strip().startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = [c.lower() for c in cells]
            continue
        if all(set(c) <= set("-: ") for c in cells):
            continue
        yield _md_row(f"{label}:{n}", dict(zip(header, cells, strict=False)), ctx, label)


def _md_row(where: str, row: dict[str, str], ctx: tuple[str, str, str, int | None], label: str) -> Item:
    device, hint, build, build_n = ctx
    if not device:
        return IngestIssue(where=where, message="no hardware: the markdown has no device line "
                           "(paste the 'ggml_vulkan: 0 = ...' / 'Device 0: ...' lines above the table)")
    try:
        kind, n_p, n_g, depth = parse_test(row.get("test", ""))
        m = _TPS.match(row.get("t/s", ""))
        if not m:
            return IngestIssue(where=where, message=f"t/s cell {row.get('t/s', '')!r} is not 'N ± S'")
        ngl = _num(row.get("ngl") or row.get("n_gpu_layers"), int)
        backend = backend_of(row.get("backend", "")) or ""
        if ngl == 0 and backend != "metal":
            backend = "cpu"
        params = (row.get("params") or "").replace("B", "").strip()
        raw = {"hardware": device, "arch_hint": hint, "model": row.get("model", ""), "params_b": _num(params),
               "backend": backend, "variant": row.get("backend", ""), "ngl": ngl,
               "batch": _col(row, "n_batch", int), "ubatch": _col(row, "n_ubatch", int),
               "threads": _col(row, "threads", int), "flash_attn": _bool(row.get("fa")),
               "type_k": row.get("type_k") or None, "type_v": row.get("type_v") or None,
               "test": kind, "n_prompt": n_p, "n_gen": n_g, "depth": depth,
               "tps": float(m.group(1)), "tps_std": float(m.group(2)) if m.group(2) else None,
               "build": build, "build_number": build_n, "source": label}
    except ValueError as err:
        return IngestIssue(where=where, message=str(err))
    return make(where, "llama-bench-md", raw)


# ---------------------------------------------------------------- Lemonade bench JSON

_ARG = re.compile(r"(-ub|--ubatch-size|-b|--batch-size|-fa|--flash-attn|-ctk|--cache-type-k|-ctv|"
                  r"--cache-type-v|-t|--threads|-ngl|--n-gpu-layers)\s+(\S+)")


def _args(text: str) -> dict[str, str]:
    names = {"--ubatch-size": "-ub", "--batch-size": "-b", "--flash-attn": "-fa", "--cache-type-k": "-ctk",
             "--cache-type-v": "-ctv", "--threads": "-t", "--n-gpu-layers": "-ngl"}
    return {names.get(k, k): v for k, v in _ARG.findall(text or "")}


def _lemonade_model(name: str) -> tuple[str, str | None]:
    """Model string with the registry's checkpoint quant when Lemonade's registry knows the name."""
    try:
        from facts.registry import load_registry

        entry = load_registry().get(name) or {}
    except Exception:  # the registry is optional here: fall back to the name
        entry = {}
    ckpt = entry.get("checkpoint") or (entry.get("checkpoints") or {}).get("main") or ""
    quant = ckpt.partition(":")[2] or None
    return name, quant


def _lemonade(label: str, text: str) -> Iterator[Item]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        yield IngestIssue(where=f"{label}:{err.lineno}", message=f"invalid JSON: {err.msg}")
        return
    if not isinstance(doc, dict) or not isinstance(doc.get("models"), list) or "hardware" not in doc:
        yield IngestIssue(where=f"{label}:1", message="not a Lemonade bench file: expected top-level "
                          "'hardware' and 'models' (lemonade bench --json --output FILE)")
        return
    hwd = doc["hardware"] if isinstance(doc["hardware"], dict) else {}
    gpus = [g for g in hwd.get("gpu") or [] if isinstance(g, dict)]
    gpu = gpus[0] if gpus else {}
    integrated = bool(gpu.get("integrated")) or gpu.get("type") == "metal"
    mem = hwd.get("ram_gb") if integrated else gpu.get("vram_gb")
    versions = hwd.get("backends") if isinstance(hwd.get("backends"), dict) else {}
    for mi, model in enumerate(doc["models"]):
        name, quant = _lemonade_model(str(model.get("model") or ""))
        date = iso_date(str(model.get("timestamp") or doc.get("timestamp") or ""))
        for ri, res in enumerate(model.get("results") or []):
            args = _args(str(res.get("backend_args") or ""))
            backend = str(res.get("backend") or "")
            build, build_n = build_of(versions.get(f"{res.get('recipe', 'llamacpp')}/{backend}"))
            for si, sc in enumerate(res.get("scenarios") or []):
                where = f"{label}:$.models[{mi}].results[{ri}].scenarios[{si}]"
                if sc.get("all_runs_failed"):
                    yield IngestIssue(where=where, message="all runs failed: no measurement")
                    continue
                tps = (sc.get("tps") or {}).get("p50")
                ttft = (sc.get("ttft_ms") or {}).get("p50")
                n_in, n_out = int(sc.get("input_tokens") or 0), int(sc.get("output_tokens") or 0)
                try:
                    base = {"hardware": str(gpu.get("name") or hwd.get("cpu") or ""),
                            "cpu_name": str(hwd.get("cpu") or ""), "mem_gb": _num(mem),
                            "unified": integrated, "gpu_count": len(gpus) or 0, "model": name, "quant": quant,
                            "backend": backend, "variant": f"lemonade {hwd.get('lemonade_version', '')}".strip(),
                            "ngl": _num(args.get("-ngl"), int), "batch": _num(args.get("-b"), int),
                            "ubatch": _num(args.get("-ub"), int), "threads": _num(args.get("-t"), int),
                            "flash_attn": _bool(args.get("-fa")), "type_k": args.get("-ctk"),
                            "type_v": args.get("-ctv"), "scenario": sc.get("name"), "build": build,
                            "build_number": build_n, "date": date, "source": label}
                except ValueError as err:
                    yield IngestIssue(where=where, message=str(err))
                    continue
                if tps:
                    yield make(where + ".tps", "lemonade-bench",
                               {**base, "test": "tg", "n_gen": n_out, "depth": n_in, "tps": float(tps)})
                if ttft and n_in:  # prompt tokens/s over the time to first token (prompt processing)
                    yield make(where + ".ttft_ms", "lemonade-bench",
                               {**base, "test": "pp", "n_prompt": n_in, "tps": n_in / (float(ttft) / 1000.0)})
