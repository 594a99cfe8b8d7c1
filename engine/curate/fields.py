"""Building one validated record from a parsed row: shared by every input format."""

from __future__ import annotations

import functools
import re
from typing import Any

from pydantic import ValidationError

from engine.curate.hardware import hardware_info
from engine.curate.normalise import model_info
from engine.curate.records import BenchRecord, IngestIssue

Item = BenchRecord | IngestIssue
_TEST = re.compile(r"^\s*(?:(pp)\s*(\d+)\s*\+\s*(tg)\s*(\d+)|(pp|tg)\s*(\d+))(?:\s*@\s*d(\d+))?\s*$")


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


def num(v: Any, kind: type = float) -> Any:
    """A number (float, or int through float: "512.0" -> 512); None when empty."""
    if v is None or (isinstance(v, str) and not v.strip()):
        return None
    try:
        return kind(float(v)) if kind is int else kind(v)
    except (TypeError, ValueError, OverflowError):  # OverflowError: int("inf")
        raise ValueError(f"not a number: {v!r}") from None


def col(row: dict[str, Any], name: str, kind: type = float) -> Any:
    """A numeric column of a CSV row (None when empty); the error names the column."""
    try:
        return num(row.get(name), kind)
    except ValueError as err:
        raise ValueError(f"{name}: {err}") from None


def flag(v: Any) -> bool | None:
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


