"""Compact measurement rows (what curation keeps of a BenchRecord), canonical order, test cells."""

from __future__ import annotations

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
                  r.model_class, r.precision, r.backoff, r.gpu_count, r.size_class, r.moe)
        old = self._fields.get(key)
        if old is None or (old != fields and _pkey(fields) < _pkey(old)):  # order-independent choice
            self._fields[key] = fields
            self.protos[key] = Proto(*fields)
        src = it.setdefault(r.source, r.source)
        return Row(cell, cfg, it.setdefault(r.variant, r.variant), r.tps, r.tps_std,
                   it.setdefault(r.date, r.date), r.build_number, src, r.where)


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
