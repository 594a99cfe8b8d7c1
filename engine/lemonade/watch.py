"""`engine apply --watch`: follow a running lemond's model list and apply recommendations to every model that
appears (a new download, a GGUF dropped into extra_models_dir) before its first load — no change to lemond.

Polls `GET /v1/models` every `interval` seconds; while lemond does not answer it waits and tries again. A model
the watcher fails on is reported and not retried until the watcher restarts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.errors import EngineError
from engine.lemonade import models as lmodels
from engine.lemonade.apply import Outcome, Request, _apply_api_models
from engine.lemonade.client import LemondClient, LemondError
from engine.lemonade.plan import skip

if TYPE_CHECKING:
    from engine.config import Settings
    from engine.lemonade.target import Target
    from engine.session import Engine
    from facts.models import HardwareFacts


def watch(target: Target, settings: Settings, engine: Engine, hw: HardwareFacts, req: Request, *,
          interval: float, emit: Callable[[Outcome], None], note: Callable[[str], None],
          stop: threading.Event | None = None, rounds: int | None = None) -> int:
    """Run until `stop` is set (or `rounds` polls); returns how many models were applied."""

    assert target.found is not None and target.found.url is not None
    client = LemondClient(target.found.url)
    store = target.store()
    stop = stop or threading.Event()
    seen: set[str] | None = None if req.all_downloaded else {m["id"] for m in client.models()}
    applied, polls, down = 0, 0, False
    note(f"watching {client.url}/v1/models every {interval:g} s; "
         f"{'applying to every model' if seen is None else f'{len(seen)} model(s) already there are left alone'}")
    while not stop.is_set() and (rounds is None or polls < rounds):
        polls += 1
        try:
            listed = client.models()
        except LemondError as err:
            if not down:
                note(f"lemond at {client.url} does not answer ({err}); waiting")
            down = True
            stop.wait(interval)
            continue
        if down:
            note(f"lemond at {client.url} answers again")
            down = False
        seen = seen if seen is not None else set()
        new = [m for m in listed if m["id"] not in seen]
        seen.update(m["id"] for m in new)
        if new:
            applied += _apply_new(client, store, new, settings, engine, hw, req, emit)
        stop.wait(interval)
    return applied


def _apply_new(client: LemondClient, store: Any, new: list[dict[str, Any]], settings: Settings, engine: Engine,
               hw: HardwareFacts, req: Request, emit: Callable[[Outcome], None]) -> int:
    from facts.errors import FactsError

    count = 0
    for info in new:
        try:
            chosen = [lmodels.from_lemond(client, info)]
            with store.locked():
                outcome = _apply_api_models(client, store, store.record(), chosen, settings, engine, hw, req)
        except (EngineError, FactsError, OSError) as err:
            outcome = Outcome([skip(str(info["id"]), f"failed: {err}")])
        count += sum(p.action == "applied" for p in outcome.plans)
        emit(outcome)
        time.sleep(0)  # let a stop signal through between models
    return count
