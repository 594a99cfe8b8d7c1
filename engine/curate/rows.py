"""Compact measurement rows (what curation keeps of a BenchRecord), canonical order, test cells."""

from __future__ import annotations

import functools
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from engine.curate.records import BenchRecord, metric_name
from engine.curate.stats import median

LONG_DEPTH = 16384  # prompt processing at this depth or more informs the long-context scenario


class Row(NamedTuple):
    """A compact measurement (what curation needs of a BenchRecord); cells and configs are interned."""

    cell: tuple  # (hw key, model, test, n_prompt, n_gen, depth)
    cfg: tuple  # BenchRecord.config()
    variant: str
    tps: float
    std: float | None
    date: str
    build_number: int | None
    source: str
    where: str

    @property
    def backend(self) -> str:
        return self.cfg[0]

    @property
    def metric(self) -> str:
        return metric_of(self.cell)


def metric_of(cell: tuple) -> str:
    """The llama-bench test name of a cell (hw key, model, test, n_prompt, n_gen, depth)."""
    return metric_name(*cell[2:])


@dataclass(frozen=True)
class Proto:
    """Group attributes shared by every record of one hardware x model."""

    archetype: str
    arch: str | None
    family: str | None
    vendor: str
    memclass: str
    model_class: str | None
    precision: str | None
    backoff: tuple[str, ...] = ()
    gpu_count: int = 1
    size_class: str | None = None
    moe: bool = False
    # what the performance model needs (facts/perf.py): the GPU's spec bandwidth, the model's size
    bandwidth_gbs: float | None = None
    params_b: float | None = None
    active_params_b: float | None = None
    quant: str | None = None
    hardware: str = ""


class Slimmer:
    """Turns records into Rows, interning cells/configs and keeping one Proto per hardware x model."""

    def __init__(self) -> None:
        self._intern: dict = {}
        self._fields: dict[tuple[str, str], tuple] = {}
        self.protos: dict[tuple[str, str], Proto] = {}

    def __call__(self, r: BenchRecord) -> Row:
        it = self._intern
        cell = (hw_key(r), r.model, r.test, r.n_prompt, r.n_gen, r.depth)
        cell = it.setdefault(cell, cell)
        cfg = r.config()
        cfg = it.setdefault(cfg, cfg)
        key = (cell[0], cell[1])
        fields = (r.archetype, r.arch if r.memclass != "cpu" else None, r.family, r.vendor, r.memclass,
                  r.model_class, r.precision, r.backoff, r.gpu_count, r.size_class, r.moe,
                  spec_bandwidth(r.hardware, r.vendor, r.arch) if r.memclass != "cpu" else None,
                  r.params_b, r.active_params_b, r.quant, r.hardware)
        old = self._fields.get(key)
        if old is None or (old != fields and _pkey(fields) < _pkey(old)):  # order-independent choice
            self._fields[key] = fields
            self.protos[key] = Proto(*fields)
        src = it.setdefault(r.source, r.source)
        return Row(cell, cfg, it.setdefault(r.variant, r.variant), r.tps, r.tps_std,
                   it.setdefault(r.date, r.date), r.build_number, src, r.where)


# spec bandwidth (GB/s) of GPUs in the community data that the GPU table (facts/data/gpus.csv) lacks
EXTRA_BANDWIDTH: tuple[tuple[re.Pattern[str], float], ...] = tuple((re.compile(p, re.IGNORECASE), bw) for p, bw in (
    (r"Radeon Pro VII|MI50\b|MI60\b", 1024.0), (r"MI100\b", 1228.8), (r"Vega 7 iGPU|Renoir", 51.2),
    (r"Radeon 660M", 76.8), (r"Ryzen 7 7700 \(integrated", 83.2), (r"Jetson Nano", 25.6), (r"Jetson TX2", 59.7),
    (r"P100", 732.0), (r"V100", 900.0), (r"RTX 2060 SUPER", 448.0), (r"RTX 2080 Ti", 616.0),
    (r"RTX 2000 Ada", 224.0), (r"RTX 4000 Ada", 360.0), (r"RTX 5000 Ada", 576.0), (r"\bA40\b", 696.0),
    (r"RTX 3060 \(12GB\)", 360.0), (r"RX 580\b", 256.0), (r"Apple M1 Ultra", 800.0), (r"Arc 140T", 120.0),
))


@functools.lru_cache(maxsize=4096)
def spec_bandwidth(hardware: str, vendor: str, arch: str | None) -> float | None:
    """The GPU's spec memory bandwidth: the GPU table's row for the name, else the table above, else None."""
    from facts import catalog

    for pattern, bw in EXTRA_BANDWIDTH:
        if pattern.search(hardware):
            return bw
    name = re.sub(r"^\s*\d+\s*[x×]\s+", "", hardware)
    cands, how = catalog.resolve(vendor=vendor if vendor in ("amd", "nvidia", "apple", "intel", "qualcomm") else None,
                                 name=name, arch=arch)
    if not cands or "name" not in how:
        return None
    return catalog.conservative(cands).bandwidth_gbs


def _pkey(fields: tuple) -> tuple:
    return tuple("" if v is None else str(v) for v in fields)


def canonical(rows: Iterable[Row]) -> list[Row]:
    """Rows in a canonical order (independent of input order), exact duplicates removed.

    Two rows are duplicates when everything but their location (file:line) is equal."""
    ordered = sorted(rows, key=_rkey)
    out: list[Row] = []
    last = None
    for r in ordered:
        k = r[:-1]
        if k != last:
            out.append(r)
        last = k
    return out


def _rkey(r: Row) -> tuple:
    return (r.cell, r.cfg, r.variant, r.tps, r.std if r.std is not None else -1.0, r.date,
            r.build_number if r.build_number is not None else -1, r.source, r.where)


def hw_key(r: BenchRecord) -> str:
    return r.archetype or f"{r.vendor}:{r.arch}:{r.memclass}:x{r.gpu_count}"


def scenario_of(cell: tuple) -> str | None:
    """Which scenario a test informs: generation -> chat; prompt processing -> coding / long-context."""
    _, _, test, n_p, _, depth = cell
    if test == "tg":
        return "chat"
    if test == "pp":
        return "long-context" if max(depth, n_p) >= LONG_DEPTH else "coding"
    return None



def config_medians(rows: Iterable[Row]) -> dict[tuple, float]:
    """Config -> median tokens/s of its rows (the repeats of one setting on one test)."""
    groups: dict[tuple, list[float]] = defaultdict(list)
    for r in rows:
        groups[r.cfg].append(r.tps)
    return {cfg: median(v) for cfg, v in groups.items()}
