"""The durable-rules evaluator: rules compiled to sharded rulesets, matched in one isolated sid per call.

Defensive recipe from ../shared/research/rules-engine.md §3.2-3.3: one flattened context fact, every
pattern an `$and` behind the guard {"t": "ctx"}, an end-marker rule (pri 65535) so an action always
runs before delete_state, the C `assert_facts` + `do_actions` (no background thread), fresh
definition dicts, salience range-checked (pri is uint16; lower fires first = ascending salience),
and pre-flight capacity checks so durable's numeric errors (106, 108, 303, hangs) never happen.
"""

from __future__ import annotations

import itertools
import json
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import durable_rules_engine as _dre
from durable.engine import Host

from engine import ir
from engine._attributes import CONTEXT_ATTRIBUTES, Attribute, validate_context
from engine.errors import EngineError

END_PRI = 65535
SHARD_RULES = 1000  # well under the 4,096 cap and the ~4,065-rule cliff
MAX_PATTERN_RULES = 200  # rules ending on one identical pattern (durable: 255)
MAX_CHILDREN = 400  # distinct tests under one node (durable: 511, then registration hangs)
MAX_STACK = 56  # worst-case simultaneously matched nodes on one path (durable: 64, error 303)
MAX_VARIANTS = 64  # `in` conditions expand into at most this many equality-only patterns per rule
NEVER = object()


class CompileError(EngineError, ValueError):
    """A rulebook durable-rules cannot hold (salience outside 0..65534, a rule too complex)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("cannot compile the rulebook for durable-rules:\n" + "\n".join(problems))


class _Host(Host):
    """A Host without the dispatcher threads (they steal actions and give wrong results)."""

    def _run(self) -> None:
        return None


# ---------------------------------------------------------------------------------------- patterns

Test = tuple[str, str, Any]  # (durable op or "=", key, value); hashed when op == "="


def _compatible(attr: Attribute, value: Any) -> bool:
    if attr.kind in ("str", "set"):
        return isinstance(value, str)
    if attr.kind == "bool":
        return isinstance(value, bool)
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class _Keys:
    """Fact keys: scalars keep their name; a set attribute `a` becomes `a` (present) plus `a__<n>`."""

    def __init__(self) -> None:
        self.members: dict[str, dict[str, str]] = {}

    def member(self, attr: str, value: str) -> str:
        table = self.members.setdefault(attr, {})
        return table.setdefault(value, f"{attr}__{len(table)}")


def _alternatives(cond: ir.Condition, attr: Attribute, keys: _Keys) -> Any:
    """Each condition -> a list of alternative test tuples (OR of ANDs), or NEVER."""
    op, a, v = cond.op, cond.attr, cond.value
    if op == "exists":
        return [(("$ex", a, 1),)]
    if op == "missing":
        return [(("$nex", a, 1),)]
    values = tuple(v) if op in ("in", "not_in") else (v,)
    ok = [x for x in values if _compatible(attr, x)]
    if attr.kind == "float":
        ok = [float(x) for x in ok]
    if attr.kind == "set":
        if op in ("eq", "contains", "in"):
            return [(("=", keys.member(a, x), True),) for x in dict.fromkeys(ok)] or NEVER
        if op in ("ne", "not_in"):
            return [(("=", a, True), *(("$nex", keys.member(a, x), 1) for x in dict.fromkeys(ok)))]
        return NEVER  # ordering on a set never holds
    if op in ("eq", "in"):
        return [(("=", a, x),) for x in dict.fromkeys(ok)] or NEVER
    if op in ("ne", "not_in"):
        return [(("$ex", a, 1), *(("$neq", a, x) for x in dict.fromkeys(ok)))]
    if op == "contains" or attr.kind not in ("int", "float") or not ok:
        return NEVER
    return [((f"${'lte' if op == 'le' else 'gte' if op == 'ge' else op}", a, ok[0]),)]


def _variants(rule: ir.Rule, attrs: Mapping[str, Attribute], keys: _Keys, rank: Mapping[str, int]) -> Any:
    """The rule as a list of test sequences (equalities first, in a global order), or NEVER."""
    per_cond = []
    for cond in rule.when:
        attr = attrs.get(cond.attr)
        if attr is None:
            return NEVER if cond.op != "missing" else None
        alts = _alternatives(cond, attr, keys)
        if alts is NEVER:
            return NEVER
        per_cond.append(alts)
    total = 1
    for alts in per_cond:
        total *= len(alts)
    if total > MAX_VARIANTS:
        raise CompileError([f"{rule.source} {rule.id}: `in` lists expand to {total} patterns "
                            f"(durable limit here: {MAX_VARIANTS}); split the rule"])
    out = []
    for combo in itertools.product(*per_cond):
        tests = dict.fromkeys(t for alt in combo for t in alt)
        out.append(tuple(sorted(tests, key=lambda t: (t[0] != "=", rank.get(t[1].split("__")[0], 99),
                                                      t[1], t[0], repr(t[2])))))
    return out


def _pattern(tests: tuple[Test, ...]) -> dict[str, Any]:
    items: list[dict[str, Any]] = [{"t": "ctx"}]
    for op, key, value in tests:
        items.append({key: value} if op == "=" else {op: {key: value}})
    return {"$and": items} if len(items) > 1 else items[0]


# ---------------------------------------------------------------------------------------- sharding

@dataclass
class _Node:
    """A test node of the shard's network (patterns share prefixes, as durable's alpha network does)."""

    children: dict[Test, _Node] = field(default_factory=dict)
    attrs: set[str] = field(default_factory=set)  # keys of hashed children (one value per key matches)
    others: int = 0  # non-hashed children (all may match at once)
    maxchild: int = 0  # max `best` over the children
    best: int = 0  # worst-case matched nodes on a path from here down (durable's stack)
    rules: int = 0  # rules whose pattern ends here


@dataclass
class _Shard:
    """One ruleset: at most SHARD_RULES patterns, each node and path inside durable's limits."""

    root: _Node = field(default_factory=_Node)
    entries: list[tuple[int, tuple[Test, ...]]] = field(default_factory=list)

    def fits(self, tests: tuple[Test, ...]) -> bool:
        if len(self.entries) >= SHARD_RULES:
            return False
        nodes: list[_Node | None] = []
        node: _Node | None = self.root
        for t in tests:
            nodes.append(node)
            node = node.children.get(t) if node is not None else None
        if node is not None and node.rules >= MAX_PATTERN_RULES:
            return False
        child_best = node.best if node is not None else 0
        for n, t in zip(reversed(nodes), reversed(tests), strict=True):
            if n is None:  # a new node: its only child is the next test
                child_best += 1
                continue
            new = t not in n.children
            if new and len(n.children) >= MAX_CHILDREN:
                return False
            hashed = len(n.attrs) + (1 if new and t[0] == "=" and t[1] not in n.attrs else 0)
            others = n.others + (1 if new and t[0] != "=" else 0)
            child_best = hashed + others + max(n.maxchild, child_best)
        return child_best <= MAX_STACK

    def add(self, pos: int, tests: tuple[Test, ...]) -> None:
        path, node = [self.root], self.root
        for t in tests:
            child = node.children.get(t)
            if child is None:
                child = node.children[t] = _Node()
                if t[0] == "=":
                    node.attrs.add(t[1])
                else:
                    node.others += 1
            node = child
            path.append(node)
        node.rules += 1
        below = node.best
        for n in reversed(path[:-1]):
            n.maxchild = max(n.maxchild, below)
            n.best = below = len(n.attrs) + n.others + n.maxchild
        self.entries.append((pos, tests))


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
        self._keys = _Keys()
        self._always: list[int] = []  # rules without a durable pattern (a `missing` on an unknown key)
        self._shards = self._compile(rulebook)
        self._host = _Host()
        self._rulesets: list[Any] = []
        for k, shard in enumerate(self._shards):
            rs_name = f"{rulebook.name}.{k}"
            self._host.register_rulesets({rs_name: self._definition(shard)})
            self._rulesets.append(self._host.get_ruleset(rs_name))

    @property
    def shard_count(self) -> int:
        return len(self._shards)

    def _compile(self, rulebook: ir.Rulebook) -> list[_Shard]:
        problems = [f"{r.source} {r.id}: salience {r.salience} outside 0..{ir.SALIENCE_MAX}"
                    for r in rulebook.rules if not 0 <= r.salience <= ir.SALIENCE_MAX]
        if problems:
            raise CompileError(problems)
        card: dict[str, set[Any]] = {}
        for r in rulebook.rules:
            for c in r.when:
                card.setdefault(c.attr, set()).add(repr(c.value))
        rank = {a: i for i, a in enumerate(sorted(card, key=lambda a: (len(card[a]), a)))}
        shards: list[_Shard] = []
        for pos, rule in enumerate(rulebook.rules):
            variants = _variants(rule, self.attributes, self._keys, rank)
            if variants is None:
                self._always.append(pos)
                continue
            if variants is NEVER:
                continue
            for tests in variants:
                for shard in shards:  # first fit: deterministic
                    if shard.fits(tests):
                        break
                else:
                    shard = _Shard()
                    if not shard.fits(tests):
                        raise CompileError([f"{rule.source} {rule.id}: pattern too wide for durable-rules"])
                    shards.append(shard)
                shard.add(pos, tests)
        return shards or [_Shard()]

    def _action(self, pos: int) -> Any:
        def action(c: Any) -> None:  # one argument: two would make it an async action
            try:
                self._collect[c.s.sid].append(pos)
            except BaseException as err:  # durable would swallow it into the state
                self._errors.setdefault(str(c.s["sid"]), []).append(repr(err))
        return action

    def _definition(self, shard: _Shard) -> dict[str, Any]:
        """A fresh ruleset definition (registration deletes `run` from each rule)."""
        rules = self.rulebook.rules
        out: dict[str, Any] = {}
        for n, (pos, tests) in enumerate(shard.entries):
            out[f"r{pos}_{n}"] = {"pri": rules[pos].salience, "all": [{"m": _pattern(tests)}],
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
