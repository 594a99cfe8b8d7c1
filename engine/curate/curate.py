"""Curation: de-duplicate, flag outliers, and choose backend and parameters per hardware x model x scenario."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from engine.curate.decide import (
    CellValue,
    choose_backend,
    choose_param,
    measurement_noise,
    sole_backend,
)
from engine.curate.records import BenchRecord
from engine.curate.rows import LONG_DEPTH, Proto, Row, Slimmer, canonical, hw_key, scenario_of
from engine.curate.stats import median, outlier_flags, recency_weights, weighted_median

__all__ = ["LONG_DEPTH", "SCENARIOS", "Choice", "CurationResult", "Outlier", "Proto", "Row", "Slimmer",
           "canonical", "curate", "curate_rows", "hw_key", "scenario_of"]

SCENARIOS = ("chat", "coding", "long-context")
HW_PRIORITY = {"exact": 600, "backoff": 500, "arch": 400, "family": 200}
MODEL_PRIORITY = {"class": 60, "precision": 30, "any": 0}
SOLE_PRIORITY = {"exact": 100, "backoff": 80, "arch": 60, "family": 40}  # native-backend evidence rules


@dataclass(frozen=True)
class Outlier:
    row: Row
    group_median: float


@dataclass(frozen=True)
class Choice:
    """One curated choice: a parameter value for a hardware x model x scenario group, with its evidence
    (what becomes one generated rule; not to be confused with engine.resolve.Decision)."""

    hw_level: str
    hw_value: tuple[tuple[str, str], ...]  # when-conditions for the hardware, e.g. (("archetype", id),)
    model_level: str
    model_value: tuple[tuple[str, str], ...]
    scenario: str
    param: str  # backend | ubatch | batch | flash_attn
    value: object
    backend: str | None  # the backend a parameter decision is conditioned on (None for backend)
    margin: float
    noise: float
    evidence: dict
    priority: int


@dataclass
class CurationResult:
    rows: list[Row]
    protos: dict[tuple[str, str], Proto]
    duplicates: int
    outliers: list[Outlier]
    decisions: list[Choice]
    skipped: list[str] = field(default_factory=list)  # groups without a decision, and why


def curate(records: Iterable[BenchRecord], *, progress=None) -> CurationResult:
    """Curate validated records (see curate_rows for already slimmed rows)."""
    slim = Slimmer()
    return curate_rows([slim(r) for r in records], slim.protos, progress=progress)


def curate_rows(rows: Sequence[Row], protos: dict[tuple[str, str], Proto], *, progress=None) -> CurationResult:
    total = len(rows)
    clean = canonical(rows)
    dups = total - len(clean)
    kept, outliers = _drop_outliers(clean)
    values = _cell_values(kept)
    decisions: list[Choice] = []
    skipped: list[str] = []
    groups = _groups(kept, protos)
    by_cell: dict[tuple, list[Row]] = defaultdict(list)
    for r in kept:
        by_cell[r.cell].append(r)
    for gkey in sorted(groups, key=repr):
        if progress:
            progress()
        hw_level, hw_value, model_level, model_value, scen = gkey
        cells = groups[gkey]
        prio = HW_PRIORITY[hw_level] + MODEL_PRIORITY[model_level]
        choice = functools.partial(Choice, hw_level, hw_value, model_level, model_value, scen)
        d = choose_backend(cells, values, by_cell)
        label = f"{dict(hw_value)} {dict(model_value)} {scen}"
        sole = sole_backend(cells, values, by_cell, protos, hw_level) if isinstance(d, str) else None
        if sole is not None:
            value, ev = sole
            decisions.append(choice("backend", value, None, 0.0, ev["spread"], ev,
                                    SOLE_PRIORITY[hw_level] + MODEL_PRIORITY[model_level] // 2))
        elif isinstance(d, str):
            skipped.append(f"{label}: backend: {d}")
        else:
            value, margin, noise, ev = d
            decisions.append(choice("backend", value, None, margin, noise, ev, prio))
        for backend in sorted({c[0] for cell in cells for c in values.get(cell, {})}):
            for param in ("ubatch", "batch", "flash_attn"):
                p = choose_param(cells, values, backend, param, by_cell)
                if isinstance(p, str):
                    continue
                value, margin, noise, ev = p
                decisions.append(choice(param, value, backend, margin, noise, ev, prio))
    from engine.curate.model_rules import model_choices

    decisions += model_choices(kept, protos, decisions)
    return CurationResult(rows=kept, protos=protos, duplicates=dups, outliers=outliers, decisions=decisions,
                          skipped=skipped)


def _drop_outliers(rows: Sequence[Row]) -> tuple[list[Row], list[Outlier]]:
    groups: dict[tuple, list[Row]] = defaultdict(list)
    for r in rows:  # repeated measurements of one setting on one build (rankings change across builds)
        build = f"b{r.build_number:09d}" if r.build_number is not None else r.date[:7]
        groups[(r.cell, r.cfg, r.variant, build)].append(r)
    kept: list[Row] = []
    out: list[Outlier] = []
    for key in sorted(groups):
        members = groups[key]
        if len(members) < 3:
            kept.extend(members)
            continue
        flags = outlier_flags([r.tps for r in members])
        med = median([r.tps for r in members])
        for r, bad in zip(members, flags, strict=False):
            (out.append(Outlier(r, med)) if bad else kept.append(r))
    return kept, out  # groups were visited in sorted order: still canonical


def _cell_values(rows: Sequence[Row]) -> dict[tuple, dict[tuple, CellValue]]:
    """cell -> config -> value (recency-weighted median over builds, variants and submissions)."""
    groups: dict[tuple, dict[tuple, list[Row]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        groups[r.cell][r.cfg].append(r)
    out: dict[tuple, dict[tuple, CellValue]] = {}
    for cell, by_cfg in groups.items():
        out[cell] = {}
        for cfg, rows in by_cfg.items():
            tps = [r.tps for r in rows]
            w = recency_weights([r.date for r in rows])
            out[cell][cfg] = CellValue(weighted_median(tps, w), len(rows), measurement_noise(rows))
    return out


def _groups(rows: Sequence[Row], protos: dict[tuple[str, str], Proto]) -> dict[tuple, set[tuple]]:
    """(hw level, hw conds, model level, model conds, scenario) -> cells; only levels that add information."""
    raw: dict[tuple, set[tuple]] = defaultdict(set)
    hw_members: dict[tuple, set[str]] = defaultdict(set)
    exact_members: dict[tuple, set[str]] = defaultdict(set)  # members an exact-archetype rule already covers
    model_members: dict[tuple, set[str]] = defaultdict(set)
    for cell in sorted({r.cell for r in rows}):
        scen = scenario_of(cell)
        if scen is None:
            continue
        r = protos[(cell[0], cell[1])]
        hws = []
        # scalar conditions next to an archetype id keep rules for different ids visibly disjoint
        if r.archetype:
            hws.append(("exact", (("archetype", r.archetype),) + ((("arch", r.arch),) if r.arch else ())))
        if len(r.backoff) > 1 and r.memclass != "cpu":  # {vendor}-{family}-{memclass}-{bucket}-bw{tier}
            hws.append(("backoff", (("archetype", r.backoff[1]),)
                        + ((("family", r.family),) if r.family else ()) + (("vendor", r.vendor),)))
        if r.arch:
            hws.append(("arch", (("arch", r.arch),)))
        if r.family:
            hws.append(("family", (("family", r.family), ("vendor", r.vendor))))
        models = []
        if r.model_class:
            models.append(("class", (("model_class", r.model_class),)))
        if r.precision:
            models.append(("precision", (("precision", r.precision),)))
        models.append(("any", ()))
        for hl, hv in hws:
            hw_members[(hl, hv)].add(cell[0] if hl != "family" else f"{r.arch}")
            if r.archetype:
                exact_members[(hl, hv)].add(cell[0])
            for ml, mv in models:
                model_members[(hl, hv, ml, mv)].add(r.model_class or cell[1])
                raw[(hl, hv, ml, mv, scen)].add(cell)
    out: dict[tuple, set[tuple]] = {}
    for key, cells in raw.items():
        hl, hv, ml, mv, _ = key
        if hl in ("arch", "backoff") and len(hw_members[(hl, hv)]) < 2 and exact_members[(hl, hv)]:
            continue  # same data as the exact archetype (a machine whose memory is not stated has no exact rule)
        if hl == "family" and len(hw_members[(hl, hv)]) < 2:
            continue  # one architecture only: the arch rule says it
        if ml != "class" and len(model_members[(hl, hv, ml, mv)]) < 2:
            continue
        out[key] = cells
    return out

