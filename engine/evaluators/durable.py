"""The durable-rules evaluator: rules compiled to sharded rulesets, matched in one isolated sid per call.

Defensive recipe from ../shared/research/rules-engine.md §3.2-3.3: one flattened context fact, every
pattern an `$and` behind the guard {"t": "ctx"}, an end-marker rule (pri 65535) so an action always
runs before delete_state, the C `assert_facts` + `do_actions` (no background thread), fresh
definition dicts, salience range-checked (pri is uint16; lower fires first = ascending salience),
and pre-flight capacity checks so durable's numeric errors (106, 108, 303, hangs) never happen.
"""

from __future__ import annotations

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

__all__ = ["CompileError", "DurableEvaluator"]


class _Host(Host):
    """A Host without the dispatcher threads (they steal actions and give wrong results)."""

    def _run(self) -> None:
        return None


# ---------------------------------------------------------------------------------------- evaluator

class DurableEvaluator:
    """Evaluator on durable-rules 2.0.28 (CPython <= 3.12); same results as PythonEvaluator."""

    name = "durable"

    def __init__(self, rulebook: ir.Rulebook, attributes: Mapping[str, Attribute] | None = None) -> None:
        self.rulebook = rulebook
        self.attributes = CONTEXT_ATTRIBUTES if attributes is None else attributes
        self._lock = threading.Lock()
        self._collect: dict[str, list[int]] = {}
        self._errors: dict[str, list[str]] = {}
        compiled = plan(rulebook, self.attributes)
        self._keys = compiled.keys
        self._always = compiled.always  # rules without a durable pattern (a `missing` on an unknown key)
        self._shards = compiled.shards
        self._host = _Host()
        self._rulesets: list[Any] = []
        for k, shard in enumerate(self._shards):
            rs_name = f"{rulebook.name}.{k}"
            self._host.register_rulesets({rs_name: self._definition(shard)})
            self._rulesets.append(self._host.get_ruleset(rs_name))

    @property
    def shard_count(self) -> int:
        return len(self._shards)

    def _action(self, pos: int) -> Any:
        def action(c: Any) -> None:  # one argument: two would make it an async action
            try:
                self._collect[c.s.sid].append(pos)
            except BaseException as err:  # durable would swallow it into the state
                self._errors.setdefault(str(c.s["sid"]), []).append(repr(err))
        return action

    def _definition(self, shard: Shard) -> dict[str, Any]:
        """A fresh ruleset definition (registration deletes `run` from each rule)."""
        rules = self.rulebook.rules
        out: dict[str, Any] = {}
        for n, (pos, tests) in enumerate(shard.entries):
            out[f"r{pos}_{n}"] = {"pri": rules[pos].salience, "all": [{"m": pattern(tests)}],
                                  "run": self._action(pos)}
        out["zz_end"] = {"pri": END_PRI, "all": [{"m": {"t": "$end"}}], "run": self._action(-1)}
        return out

    def _fact(self, ctx: Mapping[str, Any]) -> dict[str, Any]:
        fact: dict[str, Any] = {}
        for key, value in ctx.items():
            if isinstance(value, frozenset):
                fact[key] = True
                table = self._keys.members.get(key, {})
                for member in value:
                    if member in table:
                        fact[table[member]] = True
            else:
                fact[key] = value
        return fact

    def match(self, context: Mapping[str, Any]) -> tuple[ir.Rule, ...]:
        ctx = validate_context(context, self.attributes)
        fact = self._fact(ctx)
        hits = set(pos for pos in self._always if ir.matches(self.rulebook.rules[pos], ctx))
        with self._lock:
            for ruleset in self._rulesets:
                hits.update(self._run_one(ruleset, fact))
        rules = self.rulebook.rules
        return tuple(sorted((rules[p] for p in hits), key=lambda r: (r.salience, r.index)))

    def _run_one(self, ruleset: Any, fact: dict[str, Any]) -> list[int]:
        sid = uuid.uuid4().hex
        self._collect[sid] = []
        payload = json.dumps([{**fact, "t": "ctx", "sid": sid}, {"t": "$end", "sid": sid}],
                             ensure_ascii=False, allow_nan=False)
        failure: list[Any] = []
        try:
            code, offset = _dre.assert_facts(ruleset._handle, payload)
            if code == 2:
                raise EngineError("durable-rules: context already observed in a fresh sid (bug)")
            ruleset.do_actions(offset, lambda err, _state: failure.append(err) if err else None)
        finally:
            got = self._collect.pop(sid)
            errors = self._errors.pop(sid, [])
            if got and got[-1] == -1:
                ruleset.delete_state(sid)  # safe: the end-marker action ran in this sid
        if errors or failure or not got or got[-1] != -1:
            raise EngineError(f"durable-rules evaluation failed: {errors or failure or 'end marker did not fire'}")
        return got[:-1]

    def close(self) -> None:
        """Delete the compiled rulesets (after in-flight evaluations: takes the lock)."""
        with self._lock:
            for ruleset in self._rulesets:
                _dre.delete_ruleset(ruleset._handle)
            self._rulesets = []
