"""Curation: de-duplicate, flag outliers, and choose backend and parameters per hardware x model x scenario."""

from __future__ import annotations

import functools
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from engine.curate.records import DEFAULT_BATCH, DEFAULT_UBATCH, BenchRecord
from engine.curate.stats import median, outlier_flags, recency_weights, spread, weighted_median

SCENARIOS = ("chat", "coding", "long-context")
LONG_DEPTH = 16384
MIN_WIN = 0.02  # a winner must beat the runner-up by at least 2 % ...
NOISE_FACTOR = 2.0  # ... and by twice the measured relative noise
MIN_WIN_PARAM = 0.03  # parameters are secondary: they must win by at least 3 %
MIN_ROWS = 3  # minimum submissions behind a decision (winner rows)
MIN_WIN_SHARE = 0.6  # consistency: the winner must be faster in at least 60 % of the tests both ran
HW_PRIORITY = {"exact": 600, "backoff": 500, "arch": 400, "family": 200}
MODEL_PRIORITY = {"class": 60, "precision": 30, "any": 0}
# One-backend data on platforms with one native backend (NVIDIA CUDA, Apple Metal, CPU): no choice is
# claimed, the rule restates that backend and carries the measured speed (the expected tokens/s).
SOLE_PRIORITY = {"exact": 100, "backoff": 80, "arch": 60, "family": 40}
NATIVE = {"nvidia": "cuda", "apple": "metal", "cpu": "cpu"}
SAFE_KV = {"cuda": {"f16", "bf16", "q4_0", "q8_0"}, "vulkan": {"f16", "q4_0", "q8_0"}}


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
        return _metric(self.cell)


@functools.lru_cache(maxsize=65536)
def _metric(cell: tuple) -> str:
    _, _, test, n_p, n_g, depth = cell
    base = {"pp": f"pp{n_p}", "tg": f"tg{n_g}", "pg": f"pp{n_p}+tg{n_g}"}[test]
    return f"{base} @ d{depth}" if depth else base


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


@dataclass(frozen=True)
class Outlier:
    row: Row
    group_median: float


@dataclass(frozen=True)
class Decision:
    """One curated choice: a parameter value for a hardware x model x scenario group, with its evidence."""

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
    decisions: list[Decision]
    skipped: list[str] = field(default_factory=list)  # groups without a decision, and why


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
    decisions: list[Decision] = []
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
        d = _choose_backend(cells, values, by_cell)
        label = f"{dict(hw_value)} {dict(model_value)} {scen}"
        sole = _sole_backend(cells, values, by_cell, protos, hw_level) if isinstance(d, str) else None
        if sole is not None:
            value, ev = sole
            decisions.append(Decision(hw_level, hw_value, model_level, model_value, scen, "backend", value,
                                      None, 0.0, ev["spread"], ev,
                                      SOLE_PRIORITY[hw_level] + MODEL_PRIORITY[model_level] // 2))
        elif isinstance(d, str):
            skipped.append(f"{label}: backend: {d}")
        else:
            value, margin, noise, ev = d
            decisions.append(Decision(hw_level, hw_value, model_level, model_value, scen, "backend", value,
                                      None, margin, noise, ev, prio))
        for backend in sorted({c[0] for cell in cells for c in values.get(cell, {})}):
            for param in ("ubatch", "batch", "flash_attn"):
                p = _choose_param(cells, values, backend, param, by_cell)
                if isinstance(p, str):
                    continue
                value, margin, noise, ev = p
                decisions.append(Decision(hw_level, hw_value, model_level, model_value, scen, param, value,
                                          backend, margin, noise, ev, prio))
    return CurationResult(rows=kept, protos=protos, duplicates=dups, outliers=outliers, decisions=decisions, skipped=skipped)


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


@dataclass(frozen=True)
class CellValue:
    tps: float  # recency-weighted median
    n: int
    noise: float  # relative: max(MAD/median, mean stddev/avg)


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
            out[cell][cfg] = CellValue(weighted_median(tps, w), len(rows), _noise(rows))
    return out


def _noise(rows: Sequence[Row]) -> float:
    """Measurement noise of one setting: the median over its (variant, build) repeat groups of the
    larger of their relative MAD and their reported relative stddev (variant differences are not noise)."""
    groups: dict[tuple, list[Row]] = defaultdict(list)
    for r in rows:
        groups[(r.variant, r.build_number if r.build_number is not None else r.date[:7])].append(r)
    per: list[float] = []
    for members in groups.values():
        stds = [r.std / r.tps for r in members if r.std is not None]
        per.append(max(spread([r.tps for r in members]), sum(stds) / len(stds) if stds else 0.0))
    return median(per)


def _groups(rows: Sequence[Row], protos: dict[tuple[str, str], Proto]) -> dict[tuple, set[tuple]]:
    """(hw level, hw conds, model level, model conds, scenario) -> cells; only levels that add information."""
    raw: dict[tuple, set[tuple]] = defaultdict(set)
    hw_members: dict[tuple, set[str]] = defaultdict(set)
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
            for ml, mv in models:
                model_members[(hl, hv, ml, mv)].add(r.model_class or cell[1])
                raw[(hl, hv, ml, mv, scen)].add(cell)
    out: dict[tuple, set[tuple]] = {}
    for key, cells in raw.items():
        hl, hv, ml, mv, _ = key
        if hl in ("arch", "backoff") and len(hw_members[(hl, hv)]) < 2:
            continue  # same data as the exact archetype
        if hl == "family" and len(hw_members[(hl, hv)]) < 2:
            continue  # one architecture only: the arch rule says it
        if ml != "class" and len(model_members[(hl, hv, ml, mv)]) < 2:
            continue
        out[key] = cells
    return out


def _relative_scores(per_cell: dict[tuple, dict[str, float]]) -> dict[str, float]:
    """Geometric mean over cells of value / best-in-cell, per candidate."""
    logs: dict[str, list[float]] = defaultdict(list)
    for vals in per_cell.values():
        best = max(vals.values())
        for cand, v in vals.items():
            logs[cand].append(math.log(v / best))
    return {c: math.exp(sum(v) / len(v)) for c, v in logs.items()}


def _pairwise(per_cell: dict[tuple, dict[str, float]], a: str, b: str) -> tuple[float, int]:
    shared = [(v[a], v[b]) for v in per_cell.values() if a in v and b in v]
    if not shared:
        return 0.0, 0
    return math.exp(sum(math.log(x / y) for x, y in shared) / len(shared)) - 1.0, len(shared)


def _decide(per_cell: dict[tuple, dict[str, float]], noise_of: dict[str, float], min_win: float = MIN_WIN):
    scores = _relative_scores(per_cell)
    if len(scores) < 2:
        return f"only {next(iter(scores), 'nothing')} measured: nothing to compare"
    ranked = sorted(scores, key=lambda c: (-scores[c], c))
    win, run = ranked[0], ranked[1]
    margin, shared = _pairwise(per_cell, win, run)
    if shared == 0:
        return f"{win} and {run} were never measured on the same test"
    noise = max(noise_of.get(win, 0.0), noise_of.get(run, 0.0))
    need = max(min_win, NOISE_FACTOR * noise)
    if margin <= need:
        return f"{win} ahead of {run} by {margin:.1%}, within the noise ({need:.1%})"
    wins = sum(1 for v in per_cell.values() if win in v and run in v and v[win] > v[run])
    if wins < MIN_WIN_SHARE * shared:
        return f"{win} ahead of {run} by {margin:.1%} overall but faster in only {wins} of {shared} tests"
    return win, run, margin, noise, shared


def _choose_backend(cells, values, kept_by_cell):
    per_cell: dict[tuple, dict[str, float]] = {}
    noise: dict[str, list[float]] = defaultdict(list)
    for cell in cells:
        best: dict[str, CellValue] = {}
        for cfg, v in values.get(cell, {}).items():
            if cfg[0] not in best or v.tps > best[cfg[0]].tps:
                best[cfg[0]] = v
        if best:
            per_cell[cell] = {b: v.tps for b, v in best.items()}
            for b, v in best.items():
                noise[b].append(v.noise)
    d = _decide(per_cell, {b: median(ns) for b, ns in noise.items()})
    if isinstance(d, str):
        return d
    win, run, margin, nz, shared = d
    both = [c for c, v in per_cell.items() if win in v and run in v]  # evidence from the compared tests only
    rows = [r for c in both for r in kept_by_cell.get(c, ()) if r.backend in (win, run)]
    ev = _evidence(rows, lambda r: r.backend, win, run, shared, margin, nz, per_cell)
    if ev is None:
        return f"{win}: fewer than {MIN_ROWS} submissions"
    return win, margin, nz, ev


def _sole_backend(cells, values, by_cell, protos, hw_level):
    """(backend, evidence) when the group measured only its platform's native backend, else None."""
    backends = {cfg[0] for c in cells for cfg in values.get(c, {})}
    vendors = {protos[(c[0], c[1])].vendor for c in cells}
    if len(backends) != 1 or len(vendors) != 1 or hw_level == "family":
        return None
    (backend,), (vendor,) = backends, vendors
    if NATIVE.get(vendor) != backend:
        return None
    rows = [r for c in cells for r in by_cell.get(c, ())]
    if len(rows) < MIN_ROWS:
        return None
    metric = _top_metric(rows, [])
    per = [max(v.tps for v in values[c].values()) for c in cells if _metric(c) == metric and values.get(c)]
    noise = median([v.noise for c in cells for v in values.get(c, {}).values()])
    builds = sorted({r.build_number for r in rows if r.build_number is not None})
    dates = sorted({r.date for r in rows if r.date})
    sources = sorted({r.source for r in rows})
    ev = {"n": len(rows), "metric": metric, "median_tps": _f(median(per)), "spread": round(noise, 4),
          "sources": sources[:6] + ([f"+{len(sources) - 6} more"] if len(sources) > 6 else []),
          "builds": f"b{builds[0]}..b{builds[-1]}" if builds else None,
          "dates": f"{dates[0]}..{dates[-1]}" if dates else None,
          "note": f"only {backend} was measured here (the platform's native backend): no comparison is "
                  f"claimed; the rule carries the measured speed, median over {len(per)} {metric} tests"}
    return backend, ev


def _param_value(cfg: tuple, param: str):
    if param == "ubatch":
        return cfg[2]
    if param == "batch":
        return cfg[1]
    return None if cfg[3] == "unset" else cfg[3]


def _as_measured(cells, by_cell, backend, param):
    """A parameter never varied for `backend` here but always set to one non-default value: keep it."""
    rows = [r for c in cells for r in by_cell.get(c, ()) if r.cfg[0] == backend]
    vals = {_param_value(r.cfg, param) for r in rows}
    default = {"ubatch": DEFAULT_UBATCH, "batch": DEFAULT_BATCH}.get(param)
    if len(vals) != 1 or None in vals or len(rows) < MIN_ROWS:
        return "not varied"
    (value,) = vals
    if value == default or param == "flash_attn":
        return "not varied"
    metric = _top_metric(rows, [])
    w = [r.tps for r in rows if r.metric == metric]
    builds = sorted({r.build_number for r in rows if r.build_number is not None})
    dates = sorted({r.date for r in rows if r.date})
    sources = sorted({r.source for r in rows})
    ev = {"n": len(rows), "metric": metric, "median_tps": _f(median(w)), "spread": round(spread(w), 4),
          "sources": sources[:6] + ([f"+{len(sources) - 6} more"] if len(sources) > 6 else []),
          "builds": f"b{builds[0]}..b{builds[-1]}" if builds else None,
          "dates": f"{dates[0]}..{dates[-1]}" if dates else None,
          "note": f"as measured: every {backend} submission here used {param} {value}; "
                  "no other value was measured, so none is claimed better"}
    return value, 0.0, 0.0, ev


_POS = {"batch": 1, "ubatch": 2, "flash_attn": 3}


def _choose_param(cells, values, backend, param, kept_by_cell):
    """Ceteris paribus: values of `param` are compared only between configurations of `backend` that
    differ in `param` alone, on the same test; the comparisons are pooled over tests and contexts."""
    per_cell: dict[tuple, dict[str, float]] = {}
    noise: dict[str, list[float]] = defaultdict(list)
    pos = _POS[param]
    for cell in cells:
        by_ctx: dict[tuple, dict[str, CellValue]] = defaultdict(dict)
        for cfg, v in values.get(cell, {}).items():
            pv = _param_value(cfg, param)
            if cfg[0] != backend or pv is None:
                continue
            by_ctx[cfg[:pos] + cfg[pos + 1:]][str(pv)] = v
        for ctx in sorted(by_ctx):
            opts = by_ctx[ctx]
            if len(opts) >= 2:
                per_cell[(cell, ctx)] = {k: v.tps for k, v in opts.items()}
                for k, v in opts.items():
                    noise[k].append(v.noise)
    if not per_cell:
        return _as_measured(cells, kept_by_cell, backend, param)
    d = _decide(per_cell, {k: median(ns) for k, ns in noise.items()}, MIN_WIN_PARAM)
    if isinstance(d, str):
        return d
    win, run, margin, nz, shared = d
    default = {"ubatch": str(DEFAULT_UBATCH), "batch": str(DEFAULT_BATCH)}.get(param)
    if win == default:
        return "the default wins"
    both = sorted({c[0] for c, v in per_cell.items() if win in v and run in v})  # the compared tests only
    rows = [r for c in both for r in kept_by_cell.get(c, ())
            if r.backend == backend and str(_param_value(r.cfg, param)) in (win, run)]
    ev = _evidence(rows, lambda r: str(_param_value(r.cfg, param)), win, run, shared, margin, nz, per_cell)
    if ev is None:
        return "too few submissions"
    value: object = int(win) if param in ("ubatch", "batch") else win
    ev["runner_up"]["value"] = int(run) if param in ("ubatch", "batch") else run
    return value, margin, nz, ev


def _evidence(rows, key, win, run, shared, margin, noise, per_cell) -> dict | None:
    """Evidence of a decision, from the tests both candidates ran: the medians are over those tests of
    the per-test values the decision compared (best configuration, recency-weighted); spread is the
    winner's measurement noise."""
    wins = [r for r in rows if key(r) == win]
    runs = [r for r in rows if key(r) == run]
    if len(wins) < MIN_ROWS:
        return None
    metric = _top_metric(wins, runs)
    cells = [c for c, v in per_cell.items() if win in v and run in v and _metric(_test_of(c)) == metric]
    w = [per_cell[c][win] for c in cells]
    u = [per_cell[c][run] for c in cells]
    allr = wins + runs
    builds = sorted({r.build_number for r in allr if r.build_number is not None})
    dates = sorted({r.date for r in allr if r.date})
    sources = sorted({r.source for r in allr})
    ev = {"n": len(wins), "metric": metric, "median_tps": _f(median(w)) if w else None,
          "spread": round(noise, 4),
          "runner_up": {"value": run, "median_tps": _f(median(u)) if u else None, "n": len(runs)},
          "sources": sources[:6] + ([f"+{len(sources) - 6} more"] if len(sources) > 6 else []),
          "builds": f"b{builds[0]}..b{builds[-1]}" if builds else None,
          "dates": f"{dates[0]}..{dates[-1]}" if dates else None,
          "note": f"{win} ahead of {run} by {margin:.1%} (geometric mean over {shared} tests both ran; "
                  f"noise {noise:.1%}); medians over the {len(cells)} {metric} tests"}
    return ev


def _test_of(key: tuple) -> tuple:
    """The test (cell) of a comparison key: a cell, or (cell, context) for parameter comparisons."""
    return key[0] if isinstance(key[0], tuple) else key


def _top_metric(wins: Sequence[BenchRecord], runs: Sequence[BenchRecord]) -> str:
    both = {r.metric for r in runs}
    counts: dict[str, int] = defaultdict(int)
    for r in wins:
        counts[r.metric] += 2 if r.metric in both else 1
    return sorted(counts, key=lambda m: (-counts[m], m))[0]


def _f(x: float) -> float:
    return float(f"{x:.2f}") if x >= 10 else float(f"{x:.3g}")
