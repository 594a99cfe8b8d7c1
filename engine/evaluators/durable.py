"""The durable-rules evaluator: rules compiled to sharded rulesets of durable's C engine.

Defensive recipe from ../shared/research/rules-engine.md §3.2-3.3, tightened: only the C module
`durable_rules_engine` is used (no `durable.engine.Host`, so no dispatcher thread can steal results,
and no Python action closure exists to swallow errors or re-assert state); one flattened context
fact; every pattern an `$and` behind the guard {"t": "ctx"}; an end-marker rule (pri 65535) fires
last in every evaluation, so an action always ran before any delete_state; salience range-checked
(pri is uint16; lower fires first = ascending salience); pre-flight capacity checks so durable's
numeric errors (106, 108, 303, hangs) never happen; numbers written so its JSON parser reads them;
one lock per evaluator around the multi-call sequence. Pins durable-rules==2.0.28 (C entry points).
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Mapping
from typing import Any

import durable_rules_engine as _dre

from engine import ir
from engine._attributes import CONTEXT_ATTRIBUTES, Attribute, validate_context
from engine.errors import EngineError
from engine.evaluators import firing_order
from engine.evaluators._durable_plan import (
    END_PRI,
    MAX_TRUE_KEYS,
    CompileError,
    DerivedKeys,
    Shard,
    dumps,
    pattern,
    plan,
)

END_NAME = "zz_end"

__all__ = ["CompileError", "DurableEvaluator"]


def _definition(rulebook: ir.Rulebook, shard: Shard, names: dict[str, int]) -> str:
    """The ruleset JSON: one rule per pattern, plus the end marker (pri 65535, fires last)."""
    out: dict[str, Any] = {}
    for n, (pos, tests) in enumerate(shard.entries):
        name = f"r{pos}_{n}"
        names[name] = pos
        out[name] = {"pri": rulebook.rules[pos].salience, "all": [{"m": pattern(tests)}]}
    out[END_NAME] = {"pri": END_PRI, "all": [{"m": {"t": "$end"}}]}
    return dumps(out)


def _compiled(rulebook: ir.Rulebook, attributes: Mapping[str, Attribute] | None) -> dict[str, Any]:
    """The plan and ruleset definitions for `rulebook`; for the standard attributes, from the compiled
    cache when this rulebook was planned before (planning ~450 rules costs ~40 ms per process)."""
    from engine.rulebook import cache

    standard = attributes is None and rulebook.from_files  # else the digest may not name the content
    stored = cache.get_artifact("durable", rulebook.digest) if standard else None
    if stored is not None:
        try:
            return {**stored, "keys": DerivedKeys.from_dict(stored["keys"])}
        except (KeyError, TypeError, ValueError, AttributeError):
            pass  # an entry of another layout: plan again
    compiled = plan(rulebook, attributes)
    names: dict[str, int] = {}
    out = {"definitions": [_definition(rulebook, shard, names) for shard in compiled.shards], "names": names,
           "always": list(compiled.always), "patterns": [len(shard.entries) for shard in compiled.shards]}
    if standard:
        cache.put_artifact("durable", rulebook.digest, {**out, "keys": compiled.keys.to_dict()})
    return {**out, "keys": compiled.keys}


class DurableEvaluator:
    """Evaluator on durable-rules 2.0.28 (CPython <= 3.12); same results as PythonEvaluator.

    Each shard keeps one long-lived sid; an evaluation asserts [context fact, end marker] in one C call,
    walks the action queue with the C functions (start_action_for_state / complete_and_start_action;
    no Python action runs, so nothing can be swallowed and the state is never re-asserted), checks
    that the end marker fired last, and retracts both facts. A sid whose evaluation failed is
    replaced. Measured 4-10x faster than a fresh sid with `do_actions` per call (bench/engine_speed.py).
    """

    name = "durable"

    def __init__(self, rulebook: ir.Rulebook, attributes: Mapping[str, Attribute] | None = None) -> None:
        self.rulebook = rulebook
        self.attributes = CONTEXT_ATTRIBUTES if attributes is None else attributes
        self._lock = threading.Lock()
        compiled = _compiled(rulebook, attributes)
        self._keys: DerivedKeys = compiled["keys"]
        self._always: list[int] = compiled["always"]  # rules without a durable pattern (a `missing` on an unknown key)
        self._names: dict[str, int] = {**compiled["names"], END_NAME: -1}
        self.pattern_counts: tuple[int, ...] = tuple(compiled["patterns"])
        self._handles: list[int] = []
        try:
            for k, definition in enumerate(compiled["definitions"]):
                self._handles.append(_dre.create_ruleset(f"{rulebook.name}.{k}", definition))
        except BaseException:
            for handle in self._handles:
                _dre.delete_ruleset(handle)
            raise
        self._sids = [uuid.uuid4().hex for _ in self._handles]
        self._used = [False] * len(self._handles)  # an action ran in the sid: delete_state is safe

    @property
    def shard_count(self) -> int:
        return len(self._handles)

    def _fact(self, ctx: Mapping[str, Any]) -> str | None:
        """The flattened fact as JSON without its closing brace (the sid is appended per shard); None
        when it carries more true derived keys of one family than the capacity model allows."""
        fact: dict[str, Any] = {"t": "ctx"}
        derived = self._keys.derived
        for key, value in ctx.items():
            fact[key] = True if isinstance(value, frozenset) else value
            true = derived(key, value)
            if len(true) > MAX_TRUE_KEYS and self._keys.overflows(true):
                return None
            for k in true:
                fact[k] = True
        return dumps(fact)[:-1]

    def match(self, context: Mapping[str, Any]) -> tuple[ir.Rule, ...]:
        ctx = validate_context(context, self.attributes)
        fact = self._fact(ctx)
        rules = self.rulebook.rules
        if fact is None:  # too many members / `in` lists true at once for durable's stack: reference path
            return tuple(r for r in sorted(rules, key=firing_order) if ir.matches(r, ctx))
        hits = {pos for pos in self._always if ir.matches(rules[pos], ctx)}
        with self._lock:
            if not self._handles:
                raise EngineError("this durable evaluator was closed")
            for k in range(len(self._handles)):
                hits.update(self._run_one(k, fact))
        return tuple(sorted((rules[p] for p in hits), key=firing_order))

    def _run_one(self, k: int, fact: str) -> list[int]:
        handle, sid = self._handles[k], self._sids[k]
        payload = f'[{fact},"sid":"{sid}"}},{{"t":"$end","sid":"{sid}"}}]'

        names: list[str] = []
        asserted = False
        try:
            code, offset = _dre.assert_facts(handle, payload)
            asserted = True
            if code == 2:
                raise EngineError("durable-rules: the context was already in working memory (stale sid)")
            result = _dre.start_action_for_state(handle, offset)
            message = result[1] if result else None
            while message:
                names.append(message[2:message.index('"', 2)])  # {"<rule name>": {...}}
                message = _dre.complete_and_start_action(handle, offset)
        except BaseException:
            self._renew(k)
            raise
        finally:
            if asserted and self._sids[k] == sid:
                try:
                    _dre.retract_facts(handle, payload)
                except BaseException:
                    self._renew(k)
                    raise
        if not names or names[-1] != END_NAME:
            self._renew(k)
            raise EngineError(f"durable-rules: the end marker did not fire last (fired: {names[-5:]})")
        self._used[k] = True
        return [self._names[n] for n in names[:-1]]

    def _renew(self, k: int) -> None:
        """Give shard k a fresh sid; delete the old state only when an action ran in it (else: segfault)."""
        if self._used[k]:
            with contextlib.suppress(Exception):  # the state is gone or broken: nothing more to free
                _dre.delete_state(self._handles[k], self._sids[k])
        self._sids[k] = uuid.uuid4().hex
        self._used[k] = False

    def close(self) -> None:
        """Free the sids and delete the compiled rulesets (waits for an in-flight evaluation)."""
        with self._lock:
            for k, handle in enumerate(self._handles):
                if self._used[k]:
                    _dre.delete_state(handle, self._sids[k])
                _dre.delete_ruleset(handle)
            self._handles = []

