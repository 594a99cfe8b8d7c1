"""When to refresh: an interval with +-20 % jitter after a good check, exponential backoff after failures.

Backoff after n consecutive failures: 5 min x 2^(n-1), at most 4 h (5, 10, 20, 40, 80, 160, 240 min), with the
same jitter so a fleet that failed together does not retry together. Times are aware UTC datetimes.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

JITTER = 0.2
BACKOFF_FIRST = timedelta(minutes=5)
BACKOFF_MAX = timedelta(hours=4)


def now() -> datetime:
    return datetime.now(timezone.utc)


def iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat(timespec="seconds")


def parse(text: str | None) -> datetime | None:
    """An ISO time from state.json (None when absent or unreadable: then a refresh is due)."""
    if not text:
        return None
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _jitter(delay: timedelta, rng: random.Random | None) -> timedelta:
    r = (rng or random).uniform(-JITTER, JITTER)
    return delay * (1 + r)


def after_success(at: datetime, interval_hours: float, rng: random.Random | None = None) -> datetime:
    """The next check after a good one: the interval, +-20 %."""
    return at + _jitter(timedelta(hours=interval_hours), rng)


def backoff(failures: int) -> timedelta:
    """The base delay after `failures` (>= 1) consecutive failures, before jitter."""
    if failures < 1:
        return timedelta(0)
    return min(BACKOFF_FIRST * (2 ** min(failures - 1, 16)), BACKOFF_MAX)


def after_failure(at: datetime, failures: int, interval_hours: float,
                  rng: random.Random | None = None) -> datetime:
    """The next try after a failure: the backoff with jitter, capped at 4 h and never later than the interval."""
    delay = min(_jitter(backoff(failures), rng), BACKOFF_MAX, timedelta(hours=interval_hours))
    return at + delay


def due(next_attempt: str | None, at: datetime | None = None) -> bool:
    """Whether a refresh should start now (no schedule yet, or an unreadable one, means yes)."""
    t = parse(next_attempt)
    return t is None or (at or now()) >= t


def stale(last_success: str | None, interval_hours: float, at: datetime | None = None) -> bool:
    """Whether the last good check is older than the interval (+20 %, the latest a scheduled check runs)."""
    t = parse(last_success)
    return t is None or (at or now()) - t > timedelta(hours=interval_hours) * (1 + JITTER)
