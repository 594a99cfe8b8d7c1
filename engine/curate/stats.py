"""Robust statistics for curation: median, MAD, outlier flags, recency weights."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from datetime import date

MAD_Z = 3.5  # modified z-score above which a measurement is an outlier (Iglewicz & Hoaglin)
MIN_OUTLIER_DEV = 0.10  # ... and only when it is also at least 10 % away from the group median
HALF_LIFE_DAYS = 180.0  # a measurement this much older than the newest in its group weighs half


def median(values: Sequence[float]) -> float:
    s = sorted(values)
    n = len(s)
    if n == 0:
        raise ValueError("median of no values")
    mid = n // 2
    return s[mid] if n % 2 else (s[mid - 1] + s[mid]) / 2.0


def mad(values: Sequence[float]) -> float:
    """Median absolute deviation (unscaled)."""
    m = median(values)
    return median([abs(v - m) for v in values])


def spread(values: Sequence[float]) -> float:
    """Relative spread: MAD / median (0 for one value)."""
    if len(values) < 2:
        return 0.0
    m = median(values)
    return mad(values) / m if m > 0 else 0.0


def outlier_flags(values: Sequence[float]) -> list[bool]:
    """True where the modified z-score 0.6745*|x - median|/MAD exceeds MAD_Z (needs >= 3 values)."""
    if len(values) < 3:
        return [False] * len(values)
    m = median(values)
    d = mad(values)
    if d == 0:
        # identical majority: anything more than 25% away from it stands out
        return [m > 0 and abs(v - m) / m > 0.25 for v in values]
    return [0.6745 * abs(v - m) / d > MAD_Z and abs(v - m) > MIN_OUTLIER_DEV * m for v in values]


def weighted_median(values: Sequence[float], weights: Sequence[float]) -> float:
    """The value where the cumulative weight first reaches half (ties broken by value order)."""
    pairs = sorted(zip(values, weights, strict=False))
    total = sum(w for _, w in pairs)
    if total <= 0:
        return median(values)
    acc = 0.0
    for i, (v, w) in enumerate(pairs):
        acc += w
        if acc > total / 2.0:
            return v
        if math.isclose(acc, total / 2.0):
            return (v + pairs[i + 1][0]) / 2.0 if i + 1 < len(pairs) else v
    return pairs[-1][0]


def recency_weights(dates: Sequence[str]) -> list[float]:
    """Weights halving every HALF_LIFE_DAYS before the newest date in the group; unknown dates weigh 0.5."""
    parsed = [_day(d) for d in dates]
    known = [d for d in parsed if d is not None]
    if not known:
        return [1.0] * len(dates)
    newest = max(known)
    return [0.5 if d is None else 0.5 ** ((newest - d).days / HALF_LIFE_DAYS) for d in parsed]


@functools.lru_cache(maxsize=65536)
def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None
