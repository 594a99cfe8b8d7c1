"""The pure-Python evaluator: the reference semantics (ir.holds), with an equality index for speed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine import ir
from engine._attributes import CONTEXT_ATTRIBUTES, Attribute, validate_context


def _bucket_key(attr: str, value: Any) -> tuple[str, str, Any]:
    """Hash key consistent with ir._same: bools never equal numbers, ints equal floats."""
    if isinstance(value, bool):
        return (attr, "bool", value)
    if isinstance(value, (int, float)):
        return (attr, "num", value)
    return (attr, type(value).__name__, value)


class PythonEvaluator:
    """Matches by scanning only the rules whose indexed equality can hold, then checking every condition.

    Each rule is filed under one `eq`/`in` condition on the attribute with the most distinct values
    across the rulebook (the most selective); rules without one are always candidates.
    """

    name = "python"

    def __init__(self, rulebook: ir.Rulebook, attributes: Mapping[str, Attribute] | None = None) -> None:
        self.rulebook = rulebook
        self.attributes = CONTEXT_ATTRIBUTES if attributes is None else attributes
        rules = rulebook.rules
        self._order = sorted(range(len(rules)), key=lambda i: (rules[i].salience, rules[i].index, i))
        self._rank = {pos: r for r, pos in enumerate(self._order)}
        distinct: dict[str, set[Any]] = {}
        for rule in rulebook.rules:
            for c in rule.when:
                if c.op == "eq":
                    distinct.setdefault(c.attr, set()).add(_bucket_key(c.attr, c.value))
                elif c.op == "in":
                    distinct.setdefault(c.attr, set()).update(_bucket_key(c.attr, v) for v in c.value)
        self._buckets: dict[tuple[str, str, Any], list[int]] = {}
        self._always: list[int] = []
        self._indexed_attrs: set[str] = set()
        for pos, rule in enumerate(rulebook.rules):
            keyed = [c for c in rule.when if c.op in ("eq", "in")]
            if not keyed:
                self._always.append(pos)
                continue
            best = max(keyed, key=lambda c: (len(distinct[c.attr]), c.op == "eq"))
            values = (best.value,) if best.op == "eq" else best.value
            for v in dict.fromkeys(_bucket_key(best.attr, v) for v in values):
                self._buckets.setdefault(v, []).append(pos)
            self._indexed_attrs.add(best.attr)

    def _candidates(self, ctx: Mapping[str, Any]) -> set[int]:
        found = set(self._always)
        for attr in self._indexed_attrs:
            if attr not in ctx:
                continue
            got = ctx[attr]
            values = got if isinstance(got, (frozenset, set, tuple, list)) else (got,)
            for v in values:
                hit = self._buckets.get(_bucket_key(attr, v))
                if hit:
                    found.update(hit)
        return found

    def match(self, context: Mapping[str, Any]) -> tuple[ir.Rule, ...]:
        ctx = validate_context(context, self.attributes)
        rules = self.rulebook.rules
        hits = [pos for pos in self._candidates(ctx) if ir.matches(rules[pos], ctx)]
        hits.sort(key=self._rank.__getitem__)
        return tuple(rules[pos] for pos in hits)

    def close(self) -> None:
        """Nothing to release (symmetry with DurableEvaluator)."""
