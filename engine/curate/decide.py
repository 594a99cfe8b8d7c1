"""Choosing between candidates (backends, parameter values) on shared tests, and their evidence."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from engine.curate.records import DEFAULT_BATCH, DEFAULT_UBATCH
from engine.curate.rows import Row, metric_of
from engine.curate.stats import median, spread

MIN_WIN = 0.02  # a winner must beat the runner-up by at least 2 % ...
NOISE_FACTOR = 2.0  # ... and by twice the measured relative noise
MIN_WIN_PARAM = 0.03  # parameters are secondary: they must win by at least 3 %
MIN_ROWS = 3  # minimum submissions behind a decision (winner rows)
MIN_WIN_SHARE = 0.6  # consistency: the winner must be faster in at least 60 % of the tests both ran
# One-backend data on platforms with one native backend (NVIDIA CUDA, Apple Metal, CPU): no choice is
# claimed, the rule restates that backend and carries the measured speed (the expected tokens/s).
NATIVE = {"nvidia": "cuda", "apple": "metal", "cpu": "cpu"}
_DEFAULTS = {"ubatch": DEFAULT_UBATCH, "batch": DEFAULT_BATCH}  # llama.cpp's, never claimed as a win


@dataclass(frozen=True)
class CellValue:
    tps: float  # recency-weighted median
    n: int
    noise: float  # relative: max(MAD/median, mean stddev/avg)


def measurement_noise(rows: Sequence[Row]) -> float:
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


def choose_backend(cells, values, kept_by_cell):
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


def sole_backend(cells, values, by_cell, protos, hw_level):
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
    per = [max(v.tps for v in values[c].values()) for c in cells if metric_of(c) == metric and values.get(c)]
    noise = median([v.noise for c in cells for v in values.get(c, {}).values()])
    ev = {"n": len(rows), "metric": metric, "median_tps": _f(median(per)), "spread": round(noise, 4),
          **_dispersion(per), **_provenance(rows),
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
    default = _DEFAULTS.get(param)
    if len(vals) != 1 or None in vals or len(rows) < MIN_ROWS:
        return "not varied"
    (value,) = vals
    if value == default or param == "flash_attn":
        return "not varied"
    metric = _top_metric(rows, [])
    w = [r.tps for r in rows if r.metric == metric]
    ev = {"n": len(rows), "metric": metric, "median_tps": _f(median(w)), "spread": round(spread(w), 4),
          **_provenance(rows),
          "note": f"as measured: every {backend} submission here used {param} {value}; "
                  "no other value was measured, so none is claimed better"}
    return value, 0.0, 0.0, ev


_POS = {"batch": 1, "ubatch": 2, "flash_attn": 3}


def choose_param(cells, values, backend, param, kept_by_cell):
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
    if param in _DEFAULTS and win == str(_DEFAULTS[param]):
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


def _dispersion(values) -> dict:
    """How much the per-test values behind a median differ (MAD / median): the width of an expectation drawn
    from it, which run-to-run noise is not. Absent with fewer than 2 values."""
    return {"dispersion": round(spread(values), 4)} if len(values) >= 2 else {}


def _evidence(rows, key, win, run, shared, margin, noise, per_cell) -> dict | None:
    """Evidence of a decision, from the tests both candidates ran: the medians are over those tests of
    the per-test values the decision compared (best configuration, recency-weighted); spread is the
    winner's measurement noise."""
    wins = [r for r in rows if key(r) == win]
    runs = [r for r in rows if key(r) == run]
    if len(wins) < MIN_ROWS:
        return None
    metric = _top_metric(wins, runs)
    cells = [c for c, v in per_cell.items() if win in v and run in v and metric_of(_test_of(c)) == metric]
    w = [per_cell[c][win] for c in cells]
    u = [per_cell[c][run] for c in cells]
    ev = {"n": len(wins), "metric": metric, "median_tps": _f(median(w)) if w else None,
          "spread": round(noise, 4), **_dispersion(w),
          "runner_up": {"value": run, "median_tps": _f(median(u)) if u else None, "n": len(runs)},
          **_provenance(wins + runs),
          "note": f"{win} ahead of {run} by {margin:.1%} (geometric mean over {shared} tests both ran; "
                  f"noise {noise:.1%}); medians over the {len(cells)} {metric} tests"}
    return ev


def _provenance(rows: Sequence[Row]) -> dict:
    """Where the evidence comes from: sources (the first six), build and date ranges."""
    builds = sorted({r.build_number for r in rows if r.build_number is not None})
    dates = sorted({r.date for r in rows if r.date})
    sources = sorted({r.source for r in rows})
    return {"sources": sources[:6] + ([f"+{len(sources) - 6} more"] if len(sources) > 6 else []),
            "builds": f"b{builds[0]}..b{builds[-1]}" if builds else None,
            "dates": f"{dates[0]}..{dates[-1]}" if dates else None}


def _test_of(key: tuple) -> tuple:
    """The test (cell) of a comparison key: a cell, or (cell, context) for parameter comparisons."""
    return key[0] if isinstance(key[0], tuple) else key


def _top_metric(wins: Sequence[Row], runs: Sequence[Row]) -> str:
    both = {r.metric for r in runs}
    counts: dict[str, int] = defaultdict(int)
    for r in wins:
        counts[r.metric] += 2 if r.metric in both else 1
    return sorted(counts, key=lambda m: (-counts[m], m))[0]


def _f(x: float) -> float:
    return float(f"{x:.2f}") if x >= 10 else float(f"{x:.3g}")
