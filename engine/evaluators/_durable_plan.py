"""Compile rule IR to durable-rules patterns and shards, without importing durable (lint uses it too).

The capacity model follows ../shared/research/rules-engine.md §1.5 and measurements made for this
module: a ruleset holds at most 4,096 rules (we use 1,000), at most 255 rules may end on one
identical pattern, at most 511 distinct tests may hang under one node, and while one fact is
asserted at most 64 matched nodes may be pending on durable's depth-first stack (error 303): a node
pushes every matched child (hashed equality children: at most one per distinct key; every
non-equality test: ne, ranges, exists, missing), so siblings along a path add up while a chain of
single tests does not (measured: 40 keys under 40 keys fails, a chain of 200 `$neq` works).
`in` lists become one derived boolean key each (or, past MAX_IN_KEYS, equality-only variants).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine import ir
from engine._attributes import CONTEXT_ATTRIBUTES, Attribute
from engine.errors import CompileError

END_PRI = 65535
SHARD_RULES = 1000  # well under the 4,096 cap and the ~4,065-rule cliff
MAX_PATTERN_RULES = 200  # rules ending on one identical pattern (durable: 255)
MAX_CHILDREN = 400  # distinct tests under one node (durable: 511, then registration hangs)
MAX_STACK = 56  # worst-case simultaneously matched nodes on one path (durable: 64, error 303)
MAX_VARIANTS = 64  # `in` conditions expand into at most this many equality-only patterns per rule
MAX_IN_KEYS = 64  # `in` lists compiled to one derived key each (beyond: expanded into variants)
MAX_TRUE_KEYS = 16  # derived keys of one family true in one fact (more: that context is matched in Python)
NEVER: Any = object()


# ---------------------------------------------------------------------------------------- patterns

Test = tuple[str, str, Any]  # (durable op or "=", key, value); hashed when op == "="


class DerivedKeys:
    """Derived fact keys: set members (`a__<n>`) and `in` lists (`a__in<n>`, true when the value is in it).

    An `in` list of two or more values becomes one hashed test on a derived key instead of one pattern per
    value; at most MAX_IN_KEYS such keys (so a fact stays far below durable's 255 properties).
    """

    def __init__(self) -> None:
        self.members: dict[str, dict[str, str]] = {}
        self.in_keys: dict[str, dict[tuple[str, Any], list[str]]] = {}
        self._in_ids: dict[tuple[str, frozenset[Any]], str] = {}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able copy (the compiled cache stores it with the ruleset definitions)."""
        return {"members": self.members,
                "in_keys": {a: [[list(b), ks] for b, ks in t.items()] for a, t in self.in_keys.items()}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DerivedKeys:
        keys = cls()
        keys.members = {str(a): {str(v): str(k) for v, k in t.items()} for a, t in d["members"].items()}
        keys.in_keys = {str(a): {tuple(b): [str(k) for k in ks] for b, ks in t} for a, t in d["in_keys"].items()}
        return keys

    def member(self, attr: str, value: str) -> str:
        table = self.members.setdefault(attr, {})
        return table.setdefault(value, f"{attr}__{len(table)}")

    def in_list(self, attr: str, values: list[Any]) -> str | None:
        buckets = frozenset(ir.eq_key(v) for v in values)
        key = self._in_ids.get((attr, buckets))
        if key is None:
            if len(self._in_ids) >= MAX_IN_KEYS:
                return None
            key = self._in_ids[(attr, buckets)] = f"{attr}__in{len(self._in_ids)}"
            table = self.in_keys.setdefault(attr, {})
            for b in buckets:
                table.setdefault(b, []).append(key)
        return key

    def overflows(self, keys: list[str]) -> bool:
        """More derived keys of one family true at once than the capacity model allows."""
        counts: dict[str, int] = {}
        for k in keys:
            fam = family(k)
            counts[fam] = counts.get(fam, 0) + 1
        return any(n > MAX_TRUE_KEYS for n in counts.values())

    def derived(self, attr: str, value: Any) -> list[str]:
        """Derived keys that are true for one context attribute value (a frozenset for set attributes)."""
        out: list[str] = []
        members = self.members.get(attr)
        lists = self.in_keys.get(attr)
        if isinstance(value, frozenset):
            for m in value:
                if members and m in members:
                    out.append(members[m])
                if lists:
                    out.extend(lists.get(ir.eq_key(m), ()))
        elif lists:
            out.extend(lists.get(ir.eq_key(value), ()))
        return out


def _alternatives(cond: ir.Condition, attr: Attribute, keys: DerivedKeys) -> Any:
    """Each condition -> a list of alternative test tuples (OR of ANDs), or NEVER."""
    op, a, v = cond.op, cond.attr, cond.value
    if op == "exists":
        return [(("$ex", a, 1),)]
    if op == "missing":
        return [(("$nex", a, 1),)]
    values = tuple(v) if op in ("in", "not_in") else (v,)
    ok = [x for x in values if attr.comparable(x)]  # plan() rejected non-finite numbers
    if attr.kind == "float":
        ok = [float(x) for x in ok]
    ok = list(dict.fromkeys(ok))
    if op == "in" and len(ok) > 1:
        key = keys.in_list(a, ok)
        if key is not None:
            return [(("=", key, True),)]
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


class _Expander:
    """Rule -> ordered test sequences, memoised per condition and per test (rulebooks repeat them)."""

    def __init__(self, attrs: Mapping[str, Attribute], keys: DerivedKeys, rank: Mapping[str, int]) -> None:
        self.attrs, self.keys, self.rank = attrs, keys, rank
        self._alts: dict[ir.Condition, Any] = {}
        self._order: dict[Test, tuple[Any, ...]] = {}

    def _sort_key(self, t: Test) -> tuple[Any, ...]:
        key = self._order.get(t)
        if key is None:
            key = self._order[t] = (t[0] != "=", self.rank.get(t[1].split("__")[0], 99), t[1], t[0], repr(t[2]))
        return key

    def variants(self, rule: ir.Rule) -> Any:
        """The rule as a list of test sequences (equalities first, in a global order), NEVER, or None
        (None: a `missing` on an attribute outside the schema; the rule is matched in Python)."""
        per_cond = []
        for cond in rule.when:
            alts = self._alts.get(cond)
            if alts is None:
                attr = self.attrs.get(cond.attr)
                if attr is None:
                    return NEVER if cond.op != "missing" else None
                alts = self._alts[cond] = _alternatives(cond, attr, self.keys)
            if alts is NEVER:
                return NEVER
            per_cond.append(alts)
        total = 1
        for alts in per_cond:
            total *= len(alts)
        if total > MAX_VARIANTS:
            raise CompileError([f"{rule.source} {rule.id}: `in` lists expand to {total} patterns "
                                f"(durable limit here: {MAX_VARIANTS}); split the rule"], [rule])
        if total == 1:
            tests = dict.fromkeys(t for alts in per_cond for t in alts[0])
            return [tuple(sorted(tests, key=self._sort_key))]
        return [tuple(sorted(dict.fromkeys(t for alt in combo for t in alt), key=self._sort_key))
                for combo in itertools.product(*per_cond)]


def number(x: int | float) -> str:
    """A JSON number durable's C parser reads: it rejects an exponent without a dot (`1e-05`, `1e+20`)."""
    if isinstance(x, float):
        text = repr(x)
        if "e" in text and "." not in text.split("e")[0]:
            mantissa, exp = text.split("e")
            text = f"{mantissa}.0e{exp}"
        return text
    return str(x)


def dumps(obj: Any) -> str:
    """Compact JSON for durable (flat facts and patterns: dicts, lists, str, bool, int, float)."""
    if isinstance(obj, str):
        return json.dumps(obj, ensure_ascii=False)
    if isinstance(obj, bool) or obj is None:
        return "true" if obj else ("false" if obj is False else "null")
    if isinstance(obj, (int, float)):
        return number(obj)
    if isinstance(obj, dict):
        return "{" + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{dumps(v)}" for k, v in obj.items()) + "}"
    return "[" + ",".join(dumps(v) for v in obj) + "]"


def pattern(tests: tuple[Test, ...]) -> dict[str, Any]:
    items: list[dict[str, Any]] = [{"t": "ctx"}]
    for op, key, value in tests:
        items.append({key: value} if op == "=" else {op: {key: value}})
    return {"$and": items} if len(items) > 1 else items[0]


# ---------------------------------------------------------------------------------------- sharding

def family(key: str) -> str:
    """Keys of one family can be true together only up to a cap: a plain attribute is one fact property
    (one value matches), set members `a__<n>` and `in` keys `a__in<n>` up to MAX_TRUE_KEYS each."""
    if "__" not in key:
        return key
    attr, rest = key.split("__", 1)
    return f"{attr}__in" if rest.startswith("in") else f"{attr}__"


def _hashed_width(families: Mapping[str, set[str]], new_key: str | None) -> int:
    """How many hashed children of a node one fact can match at once (durable looks them up per property)."""
    width = 0
    new_family = family(new_key) if new_key is not None else None
    for fam, keys in families.items():
        n = len(keys) + (1 if fam == new_family and new_key not in keys else 0)
        width += min(n, 1 if "__" not in fam else MAX_TRUE_KEYS)
    if new_family is not None and new_family not in families:
        width += 1
    return width


def _stack(width: int, child: int) -> int:
    """Peak pending nodes below a node that pushes `width` matched children (durable walks depth first:
    it pushes every matched child, pops one and descends, so siblings wait on the stack)."""
    return max(width, width - 1 + child) if width else 0


@dataclass
class _Node:
    """A test node of the shard's network (patterns share prefixes, as durable's alpha network does)."""

    children: dict[Test, _Node] = field(default_factory=dict)
    families: dict[str, set[str]] = field(default_factory=dict)  # hashed children's keys per family
    others: int = 0  # non-hashed children (all may match at once)
    maxchild: int = 0  # max `best` over the children
    best: int = 0  # worst-case pending matched nodes from here down (durable's stack)
    rules: int = 0  # rules whose pattern ends here


@dataclass
class Shard:
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
                child_best = _stack(1, child_best)
                continue
            new = t not in n.children
            if new and len(n.children) >= MAX_CHILDREN:
                return False
            hashed = _hashed_width(n.families, t[1] if new and t[0] == "=" else None)
            others = n.others + (1 if new and t[0] != "=" else 0)
            child_best = _stack(hashed + others, max(n.maxchild, child_best))
        return child_best <= MAX_STACK

    def add(self, pos: int, tests: tuple[Test, ...]) -> None:
        path, node = [self.root], self.root
        for t in tests:
            child = node.children.get(t)
            if child is None:
                child = node.children[t] = _Node()
                if t[0] == "=":
                    node.families.setdefault(family(t[1]), set()).add(t[1])
                else:
                    node.others += 1
            node = child
            path.append(node)
        node.rules += 1
        below = node.best
        for n in reversed(path[:-1]):
            n.maxchild = max(n.maxchild, below)
            n.best = below = _stack(_hashed_width(n.families, None) + n.others, n.maxchild)
        self.entries.append((pos, tests))


# ---------------------------------------------------------------------------------------- plan

@dataclass
class Plan:
    """Shards of (rule position, tests); `always` = rules matched in Python; `keys` = set-member keys."""

    shards: list[Shard]
    always: list[int]
    keys: DerivedKeys


def plan(rulebook: ir.Rulebook, attributes: Mapping[str, Attribute] | None = None) -> Plan:
    """Range-check salience, expand and order every rule's tests, and shard within durable's limits."""
    attrs = CONTEXT_ATTRIBUTES if attributes is None else attributes
    bad = [r for r in rulebook.rules if not 0 <= r.salience <= ir.SALIENCE_MAX]
    if bad:
        raise CompileError([f"{r.source} {r.id}: salience {r.salience} outside 0..{ir.SALIENCE_MAX}" for r in bad],
                           bad)
    from engine.evaluators import check_rule_values

    check_rule_values(rulebook)
    card: dict[str, set[Any]] = {}
    for r in rulebook.rules:
        for c in r.when:
            card.setdefault(c.attr, set()).add(repr(c.value))
    rank = {a: i for i, a in enumerate(sorted(card, key=lambda a: (len(card[a]), a)))}
    keys = DerivedKeys()
    expander = _Expander(attrs, keys, rank)
    shards: list[Shard] = []
    always: list[int] = []
    failed: list[CompileError] = []
    for pos, rule in enumerate(rulebook.rules):
        try:
            variants = expander.variants(rule)
        except CompileError as err:
            failed.append(err)
            continue
        if variants is None:
            always.append(pos)
            continue
        if variants is NEVER:
            continue
        for tests in variants:
            for shard in shards:  # first fit: deterministic
                if shard.fits(tests):
                    break
            else:
                shard = Shard()
                if not shard.fits(tests):
                    raise CompileError([f"{rule.source} {rule.id}: pattern too wide for durable-rules"], [rule])
                shards.append(shard)
            shard.add(pos, tests)
    if failed:
        raise CompileError([p for e in failed for p in e.problems], [r for e in failed for r in e.rules])
    return Plan(shards=shards or [Shard()], always=always, keys=keys)
