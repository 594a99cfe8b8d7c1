"""`Engine`: a rulebook, its evaluator and a recommendation cache in one object a server can hold.

`reload()` swaps all three atomically: a `recommend()` that started on the old rulebook finishes on it (its
evaluator is closed only when the last such reader is done); a call that starts later sees the new one.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cachetools import LRUCache

from engine.ir import Rulebook

if TYPE_CHECKING:
    from engine.evaluators import Evaluator
    from engine.recommend import Recommendation
    from facts.models import HardwareFacts, ModelFacts


class _State:
    """One rulebook generation: never changed after it is built, closed once retired and unused."""

    __slots__ = ("rulebook", "evaluator", "cache", "by_id", "readers", "retired")

    def __init__(self, rulebook: Rulebook, evaluator: Evaluator, cache_size: int) -> None:
        self.rulebook = rulebook
        self.evaluator = evaluator
        self.cache: LRUCache = LRUCache(maxsize=cache_size)  # content key -> Recommendation
        self.by_id: LRUCache = LRUCache(maxsize=max(16, cache_size // 4))  # identity key -> (hw, model, rec)
        self.readers = 0
        self.retired = False


def _freeze(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


class Engine:
    """Recommendations from one rulebook (the bundled one by default) with one evaluator.

    Thread-safe: many threads may call `recommend` while another calls `reload`.
    """

    def __init__(self, rulebook: Rulebook | None = None, *, roots: tuple[str | Path, ...] = (),
                 evaluator: str | None = None, cache_size: int = 4096) -> None:
        self._roots = tuple(roots)
        self._evaluator_name = evaluator
        self._cache_size = cache_size
        self._lock = threading.Lock()  # guards the state pointer, reader counts and the LRU caches
        self._state = self._build(rulebook)

    def _build(self, rulebook: Rulebook | None) -> _State:
        from engine.evaluators import make_evaluator
        from engine.rulebook import load_rulebook

        book = rulebook if rulebook is not None else load_rulebook(*self._roots)
        return _State(book, make_evaluator(book, engine=self._evaluator_name), self._cache_size)

    @property
    def rulebook(self) -> Rulebook:
        return self._state.rulebook

    @property
    def evaluator(self) -> str:
        return self._state.evaluator.name

    def reload(self, rulebook: Rulebook | None = None) -> Rulebook:
        """Load the rulebook again (or activate `rulebook`) and swap it in; a rulebook with errors raises
        RulebookError and the current one keeps serving."""
        new = self._build(rulebook)
        with self._lock:
            old, self._state = self._state, new
            old.retired = True
            idle = old.readers == 0
        if idle:
            old.evaluator.close()
        return new.rulebook

    def close(self) -> None:
        """Free the evaluator (durable-rules rulesets) once no call uses it."""
        with self._lock:
            st = self._state
            st.retired = True
            idle = st.readers == 0
        if idle:
            st.evaluator.close()

    def _acquire(self) -> _State:
        with self._lock:
            st = self._state
            st.readers += 1
        return st

    def _release(self, st: _State) -> None:
        with self._lock:
            st.readers -= 1
            idle = st.retired and st.readers == 0
        if idle:
            st.evaluator.close()

    def recommend(self, facts: HardwareFacts, model: ModelFacts, *, scenario: str = "chat",
                  overrides: Mapping[str, Any] | None = None, memory_fit: bool = True,
                  force: bool = False) -> Recommendation:
        """Backend and parameters for `model` on `facts`, with provenance for every value (cached)."""
        from engine.recommend import resolve, validate_overrides

        checked = validate_overrides(overrides)
        over = tuple(sorted((k, _freeze(v)) for k, v in checked.items()))
        st = self._acquire()
        try:
            id_key = (id(facts), id(model), scenario, over, memory_fit, force)
            with self._lock:  # cachetools caches are not thread-safe (a hit reorders the LRU)
                hit = st.by_id.get(id_key)
            if hit is not None and hit[0] is facts and hit[1] is model:
                return hit[2]
            key = (facts.model_dump_json(), model.model_dump_json(), scenario, over, memory_fit, force)
            with self._lock:
                rec = st.cache.get(key)
            if rec is None:
                rec = resolve(facts, model, scenario, st.rulebook, st.evaluator, checked, memory_fit, force)
                with self._lock:
                    rec = st.cache.setdefault(key, rec)
            with self._lock:
                st.by_id[id_key] = (facts, model, rec)
            return rec
        finally:
            self._release(st)
