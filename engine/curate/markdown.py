"""llama-bench's markdown table, with the device and build lines printed around it."""

from __future__ import annotations

import re
from collections.abc import Iterator

from engine.curate.fields import Item, col, flag, make, num, parse_test
from engine.curate.normalise import backend_of, build_of
from engine.curate.records import IngestIssue
from facts.llamacpp import parse_device_line

_TPS = re.compile(r"^\**([0-9.]+)\**\s*(?:±\s*([0-9.]+))?")

_TRAILING_PAREN = re.compile(r"\s*\([^()]*\)\s*$")
_NAMED = ("vulkan", "device", "list", "metal-name", "sycl-row", "opencl", "breakdown")


def _md_context(lines: list[str]) -> tuple[str, str, str, int | None]:
    """(device name, arch hint, build, build number) from the log lines around a markdown table.

    Device lines are read by facts.llamacpp's line parser (every backend and era); the first named one wins."""
    device, hint, build, build_n = "", "", "", None
    context: str | None = None
    for line in lines:
        if not device and (d := parse_device_line(line, context)) is not None:
            if d.kind == "found":
                context = d.backend
            elif d.kind in _NAMED and d.name and d.backend not in ("CPU", "BLAS", "RPC"):
                name = d.name.strip()
                while _TRAILING_PAREN.search(name):
                    name = _TRAILING_PAREN.sub("", name)
                device = name
                hint = d.arch if d.arch and d.arch.startswith("gfx") else ""
        if m := re.search(r"\bbuild:\s*([0-9a-f]{6,40}\s*\(\d+\)|[0-9a-f]{6,40})", line):
            build, build_n = build_of(m.group(1))
    return device, hint, build, build_n


def read_markdown(label: str, text: str) -> Iterator[Item]:
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
        ngl = num(row.get("ngl") or row.get("n_gpu_layers"), int)
        backend = backend_of(row.get("backend", "")) or ""
        if ngl == 0 and backend != "metal":
            backend = "cpu"
        params = (row.get("params") or "").replace("B", "").strip()
        raw = {"hardware": device, "arch_hint": hint, "model": row.get("model", ""), "params_b": num(params),
               "backend": backend, "variant": row.get("backend", ""), "ngl": ngl,
               "batch": col(row, "n_batch", int), "ubatch": col(row, "n_ubatch", int),
               "threads": col(row, "threads", int), "flash_attn": flag(row.get("fa")),
               "type_k": row.get("type_k") or None, "type_v": row.get("type_v") or None,
               "test": kind, "n_prompt": n_p, "n_gen": n_g, "depth": depth,
               "tps": float(m.group(1)), "tps_std": float(m.group(2)) if m.group(2) else None,
               "build": build, "build_number": build_n, "source": label}
    except ValueError as err:
        return IngestIssue(where=where, message=str(err))
    return make(where, "llama-bench-md", raw)


