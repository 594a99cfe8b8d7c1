"""Prompt-processing over generation speed, per backend and GPU group, calibrated on community benchmarks.

Generation is memory-bound and prompt processing compute-bound, so their ratio is a property of the GPU family
(compute over bandwidth), the backend's kernels and the weights' precision much more than of the model size. The
table (engine/data/perf_ratios.json) holds, per level (backend; backend x vendor; x family; x precision), the
median log ratio pp/tg of same-machine, same-model pairs, its robust spread and row count. It is written by
`python -m engine.curate.ratio_table data/community-bench/` (authoring, in engine.curate) and read at run
time without it.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

FILE = "perf_ratios.json"
MIN_ROWS = 3  # a level with fewer pairs is not used: the next coarser one is
LEVELS = ("family_precision", "family", "vendor", "backend")


@dataclass(frozen=True)
class Ratio:
    log_ratio: float  # median log(pp tokens/s / tg tokens/s)
    spread: float  # robust sd of the log ratio
    n: int  # pairs behind it
    level: str  # which level of the table answered
    key: str

    @property
    def ratio(self) -> float:
        return math.exp(self.log_ratio)


def _key(level: str, backend: str, vendor: str, family: str, precision: str) -> str:
    parts = {"backend": (backend,), "vendor": (backend, vendor), "family": (backend, vendor, family),
             "family_precision": (backend, vendor, family, precision)}[level]
    return "/".join(parts)


def _median(v: Sequence[float]) -> float:
    s = sorted(v)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def _robust_sd(v: Sequence[float]) -> float:
    if len(v) < 2:
        return 0.5
    m = _median(v)
    return 1.4826 * _median([abs(x - m) for x in v])


def pairs(obs: Iterable[Any]) -> list[tuple[Any, Any]]:
    """(tg, pp) observations of the same machine, model and backend (pp: the shortest prompt test measured)."""
    tg: dict[tuple, Any] = {}
    pp: dict[tuple, Any] = {}
    for o in obs:
        key = (o.machine, o.cell[1], o.backend)
        if o.phase == "tg":
            tg[key] = o
        elif o.phase == "pp" and (key not in pp or o.cell[3] < pp[key].cell[3]):
            pp[key] = o
    return [(tg[k], pp[k]) for k in sorted(tg.keys() & pp.keys())]


def calibrate(obs: Iterable[Any]) -> dict[str, Any]:
    """The table from facts.perf.Obs observations (engine.curate.model_rules.observations)."""
    per: dict[str, dict[str, list[float]]] = {lv: defaultdict(list) for lv in LEVELS}
    for t, p in pairs(obs):
        lr = math.log(p.tps / t.tps)
        for lv in LEVELS:
            per[lv][_key(lv, t.backend, t.vendor, t.family, t.precision)].append(lr)
    table = {lv: {k: {"log_ratio": round(_median(v), 4), "spread": round(max(0.05, _robust_sd(v)), 4),
                      "n": len(v)} for k, v in sorted(per[lv].items())} for lv in LEVELS}
    return {"about": "pp/tg tokens/s ratio per level; written by python -m engine.curate.ratio_table", **table}


def lookup(table: Mapping[str, Any], backend: str, vendor: str | None, family: str | None,
           precision: str | None) -> Ratio | None:
    """The most specific level with at least MIN_ROWS pairs (None when the backend was never measured)."""
    for lv in LEVELS:
        key = _key(lv, backend, vendor or "", family or "", precision or "")
        row = (table.get(lv) or {}).get(key)
        if row and row["n"] >= MIN_ROWS:
            return Ratio(row["log_ratio"], row["spread"], row["n"], lv, key)
    return None


@lru_cache(maxsize=1)
def shipped() -> Mapping[str, Any]:
    """The table shipped in engine/data."""
    return json.loads(resources.files("engine").joinpath("data", FILE).read_text(encoding="utf-8"))
