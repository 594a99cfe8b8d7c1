"""The durable-rules evaluator: rules compiled to sharded rulesets, matched in one isolated sid per call.

Defensive recipe from ../shared/research/rules-engine.md §3.2-3.3: one flattened context fact, every
pattern an `$and` behind the guard {"t": "ctx"}, an end-marker rule (pri 65535) so an action always
runs before delete_state, the C `assert_facts` (no Host.assert_facts, no background thread), fresh
definition dicts, salience range-checked (pri is uint16; lower fires first = ascending salience),
pre-flight capacity checks so durable's numeric errors (106, 108, 303, hangs) never happen, and
one lock per evaluator around the multi-call sequence. Pins durable-rules==2.0.28 (private handles).
"""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from collections.abc import Mapping
from typing import Any

import durable_rules_engine as _dre
from durable.engine import Host

from engine import ir
from engine._attributes import CONTEXT_ATTRIBUTES, Attribute, validate_context
from engine.errors import EngineError
from engine.evaluators._durable_plan import END_PRI, CompileError, Shard, pattern, plan

END_NAME = "zz_end"

__all__ = ["CompileError", "DurableEvaluator"]


class _Host(Host):
    """A Host without the dispatcher threads (they steal actions and give wrong results)."""

    def _run(self) -> None:
        return None


# ---------------------------------------------------------------------------------------- evaluator

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
        compiled = plan(rulebook, self.attributes)
        self._keys = compiled.keys
        self._always = compiled.always  # rules without a durable pattern (a `missing` on an unknown key)
        self._shards = compiled.shards
        self._host = _Host()
        self._rulesets: list[Any] = []
        self._names: dict[str, int] = {END_NAME: -1}
        for k, shard in enumerate(self._shards):
            rs_name = f"{rulebook.name}.{k}"
            self._host.register_rulesets({rs_name: self._definition(shard)})
            self._rulesets.append(self._host.get_ruleset(rs_name))
        self._sids = [uuid.uuid4().hex for _ in self._rulesets]
        self._used = [False] * len(self._rulesets)  # an action ran in the sid: delete_state is safe

    @property
    def shard_count(self) -> int:
        return len(self._shards)

    def _definition(self, shard: Shard) -> dict[str, Any]:
        """A fresh ruleset definition (registration deletes `run` from each rule)."""
        rules = self.rulebook.rules
        out: dict[str, Any] = {}
        for n, (pos, tests) in enumerate(shard.entries):
            name = f"r{pos}_{n}"
            self._names[name] = pos
            out[name] = {"pri": rules[pos].salience, "all": [{"m": pattern(tests)}], "run": _no_action}
        out[END_NAME] = {"pri": END_PRI, "all": [{"m": {"t": "$end"}}], "run": _no_action}
        return out

    def _fact(self, ctx: Mapping[str, Any]) -> dict[str, Any]:
        """The flattened fact: scalars as they are; a set attribute becomes `a: true`; derived keys true."""
        fact: dict[str, Any] = {}
        derived = self._keys.derived
        for key, value in ctx.items():
            fact[key] = True if isinstance(value, frozenset) else value
            for k in derived(key, value):
                fact[k] = True
        return fact

    def match(self, context: Mapping[str, Any]) -> tuple[ir.Rule, ...]:
        ctx = validate_context(context, self.attributes)
        fact = self._fact(ctx)
        rules = self.rulebook.rules
        hits = {pos for pos in self._always if ir.matches(rules[pos], ctx)}
        with self._lock:
            if not self._rulesets:
                raise EngineError("this durable evaluator was closed")
            for k in range(len(self._rulesets)):
                hits.update(self._run_one(k, fact))
        return tuple(sorted((rules[p] for p in hits), key=lambda r: (r.salience, r.index)))

    def _run_one(self, k: int, fact: dict[str, Any]) -> list[int]:
        handle, sid = self._rulesets[k]._handle, self._sids[k]
        payload = json.dumps([{**fact, "t": "ctx", "sid": sid}, {"t": "$end", "sid": sid}],
                             ensure_ascii=False, allow_nan=False)
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
                _dre.delete_state(self._rulesets[k]._handle, self._sids[k])
        self._sids[k] = uuid.uuid4().hex
        self._used[k] = False

    def close(self) -> None:
        """Free the sids and delete the compiled rulesets (waits for an in-flight evaluation)."""
        with self._lock:
            for k, ruleset in enumerate(self._rulesets):
                if self._used[k]:
                    _dre.delete_state(ruleset._handle, self._sids[k])
                _dre.delete_ruleset(ruleset._handle)
            self._rulesets = []


def _no_action(c: Any) -> None:
    """Registration needs a `run`; evaluations walk the action queue in C and never call it."""
