"""Refresh without waiting for it: a start that finds a refresh due launches one in the background and goes on
with the last good rulebook (stale-while-revalidate); a long-running process keeps a Refresher thread that
swaps the new rulebook in with Engine.reload."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from engine.profiles import policy
from engine.profiles.store import Store

if TYPE_CHECKING:
    from engine.config import Settings
    from engine.profiles.client import Outcome

CLAIM = timedelta(minutes=2)  # how long a launched refresh holds the schedule (others do not launch meanwhile)


def _configured(settings: Settings, store: Store) -> bool:
    from engine.errors import UsageError
    from engine.profiles.client import mirror_for

    try:
        return mirror_for(settings, state=store.state()) is not None
    except UsageError:
        return False


def start_if_due(settings: Settings, store: Store | None = None) -> bool:
    """Launch `engine profiles update --if-due` detached when remote rulebooks are on, a mirror is configured and
    a refresh is due; True when one was launched. Never raises and never waits on the network."""
    if not settings.remote.enabled:
        return False
    store = store or Store()
    try:
        if not policy.due(store.state().next_attempt) or not _configured(settings, store):
            return False
    except OSError:
        return False
    import filelock  # only when a refresh is due: a start without one does not pay for it

    try:
        with store.lock(timeout=0):  # an update holds it: it is refreshing already
            store.update_state(next_attempt=policy.iso(policy.now() + CLAIM))
    except (OSError, filelock.Timeout):
        return False
    kwargs: dict = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL,
                    "close_fds": True}
    if os.name == "nt":
        kwargs["creationflags"] = subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
    else:
        kwargs["start_new_session"] = True
    try:
        subprocess.Popen([sys.executable, "-m", "engine", "profiles", "update", "--background"], **kwargs)
    except OSError:
        return False
    return True


class Refresher:
    """A daemon thread for a long-running process: refresh when due, and call `on_update()` whenever the active
    rulebook changes, whoever changed it (this thread, a start's background refresh, `engine profiles pin`);
    e.g. `engine.reload(config.load_book(settings))`. Readers keep the last good rulebook meanwhile."""

    def __init__(self, settings: Settings, on_update: Callable[[], None], store: Store | None = None,
                 on_outcome: Callable[[Outcome], None] | None = None, poll_s: float = 30.0) -> None:
        self.settings, self.on_update, self.on_outcome = settings, on_update, on_outcome
        self.store = store or Store()
        self.poll_s = poll_s
        self._seen = self._active()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="profiles-refresher", daemon=True)

    def start(self) -> Refresher:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _active(self) -> tuple[int | None, bool]:
        st = self.store.state()
        return st.active, st.pinned

    def _wait_s(self) -> float:
        t = policy.parse(self.store.state().next_attempt)
        due_in = 0.0 if t is None else max(0.0, (t - policy.now()).total_seconds())
        return min(due_in, self.poll_s)

    def _run(self) -> None:
        from engine.errors import UserError
        from engine.profiles.client import update

        while not self._stop.wait(self._wait_s()):
            if self.settings.remote.enabled and policy.due(self.store.state().next_attempt):
                try:
                    out = update(self.settings, store=self.store, lock_timeout=0)
                except UserError:  # another process is updating, or no mirror: look again at the next poll
                    out = None
                if out is not None and self.on_outcome is not None:
                    self.on_outcome(out)
            now = self._active()
            if now != self._seen:
                self._seen = now
                self.on_update()
