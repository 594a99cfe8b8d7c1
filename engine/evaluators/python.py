"""The pure-Python evaluator: the reference semantics (ir.holds), with an equality index for speed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine import ir
from engine._attributes import CONTEXT_ATTRIBUTES, Attribute, validate_context
from engine.evaluators import check_rule_values, firing_order


class PythonEvaluator:
    """Matches by scanning only the rules whose indexed equality can hold, then checking every condition.

    Each rule is filed under one `eq`/`in` condition on the attribute with the most distinct values
    across the rulebook (the most selective); rules without one are always candidates. Rules are kept
    in firing order, so a rule's position is its rank.
    """

    name = "python"

    def __init__(self, rulebook: ir.Rulebook, attributes: Mapping[str, Attribute] | None = None) -> None:
        check_rule_values(rulebook)
        self.rulebook = rulebook
        self.attributes = CONTEXT_ATTRIBUTES if attributes is None else attributes
        self._rules = sorted(rulebook.rules, key=firing_order)
        distinct: dict[str, set[Any]] = {}
        for rule in self._rules:
            for c in rule.when:
                if c.op == "eq":
                    distinct.setdefault(c.attr, set()).add(ir.eq_key(c.value))
                elif c.op == "in":
                    distinct.setdefault(c.attr, set()).update(ir.eq_key(v) for v in c.value)
        self._buckets: dict[tuple[str, tuple[str, Any]], list[int]] = {}
        self._always: list[int] = []
        self._indexed_attrs: set[str] = set()
        for pos, rule in enumerate(self._rules):
            keyed = [c for c in rule.when if c.op in ("eq", "in")]
            if not keyed:
                self._always.append(pos)
                continue
            best = max(keyed, key=lambda c: (len(distinct[c.attr]), c.op == "eq"))
            values = (best.value,) if best.op == "eq" else best.value
            for key in dict.fromkeys(ir.eq_key(v) for v in values):
                self._buckets.setdefault((best.attr, key), []).append(pos)
            self._indexed_attrs.add(best.attr)

    def _candidates(self, ctx: Mapping[str, Any]) -> set[int]:
        found = set(self._always)
        for attr in self._indexed_attrs:
            if attr not in ctx:
                continue
            got = ctx[attr]
            values = got if isinstance(got, frozenset) else (got,)  # set attributes: validate_context
            for v in values:
                hit = self._buckets.get((attr, ir.eq_key(v)))
                if hit:
                    found.update(hit)
        return found

    def match(self, context: Mapping[str, Any]) -> tuple[ir.Rule, ...]:
        ctx = validate_context(context, self.attributes)
        rules = self._rules
        return tuple(rules[pos] for pos in sorted(self._candidates(ctx)) if ir.matches(rules[pos], ctx))

    def close(self) -> None:
        """Nothing to release (symmetry with DurableEvaluator)."""
