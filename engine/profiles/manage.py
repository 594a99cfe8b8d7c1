"""pin, unpin and rollback: choose which stored (or fetched, verified) rulebook version is active."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from engine.errors import UsageError
from engine.profiles import policy
from engine.profiles.client import Outcome, update
from engine.profiles.store import PREFIX, Store

if TYPE_CHECKING:
    from engine.config import Settings

BUNDLED = "bundled"


def parse_version(text: str) -> int | None:
    """`N`, `remote@N` or `bundled` (None); UsageError otherwise."""
    t = text.strip().lower()
    if t == BUNDLED:
        return None
    t = t.removeprefix(PREFIX)
    if t.isdigit() and int(t) >= 1:
        return int(t)
    raise UsageError(f"version {text!r}: expected a positive integer, {PREFIX}N or 'bundled'")


def pin(settings: Settings, version: int | None, *, url: str | None = None, trusted_root: str | None = None,
        store: Store | None = None) -> Outcome:
    """Make `version` active and keep it (refreshes check but do not move it). A version in the local store is
    used as it is (its digest checked); another one is fetched from the mirror and verified like an update."""
    store = store or Store()
    started = time.monotonic()
    if version is not None and store.problem(version) is not None:
        return update(settings, url=url, trusted_root=trusted_root, pin=version, store=store)
    with store.lock(timeout=30):
        st = store.activate(version, pinned=True)
    return Outcome("pinned", st.active, st.remote_version, f"pinned to {_name(version)}", time.monotonic() - started)


def unpin(store: Store | None = None) -> Outcome:
    """Follow the mirror again: the next refresh (due now) activates its latest version."""
    store = store or Store()
    started = time.monotonic()
    with store.lock(timeout=30):
        st = store.update_state(pinned=False, next_attempt=policy.iso(policy.now()))
    return Outcome("no-change", st.active, st.remote_version,
                   f"unpinned; {_name(st.active)} stays active until the next refresh", time.monotonic() - started)


def rollback(store: Store | None = None) -> Outcome:
    """Activate the newest stored version below the active one (or the bundled rulebook when there is none) and
    pin it, so the next refresh does not move forward again."""
    store = store or Store()
    started = time.monotonic()
    with store.lock(timeout=30):
        st = store.state()
        if st.active is None:
            raise UsageError("the bundled rulebook is active: there is nothing to roll back")
        earlier = [v for v in store.installed() if v < st.active]
        target = next((v for v in reversed(earlier) if store.problem(v) is None), None)
        new = store.activate(target, pinned=True)
    return Outcome("pinned", new.active, new.remote_version,
                   f"rolled back from {PREFIX}{st.active} to {_name(target)} (pinned; `engine profiles pin latest` "
                   "follows the mirror again)", time.monotonic() - started)


def _name(version: int | None) -> str:
    return "the bundled rulebook" if version is None else f"{PREFIX}{version}"
