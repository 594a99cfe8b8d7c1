"""Satisfiability of conditions on one attribute: the overlap and subsumption tests behind lint."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from engine import ir
from engine._attributes import CONTEXT_ATTRIBUTES, Attribute

_NEGATE = {"eq": "ne", "ne": "eq", "in": "not_in", "not_in": "in", "lt": "ge", "ge": "lt", "le": "gt",
           "gt": "le", "exists": "missing", "missing": "exists", "contains": "ne"}


def satisfiable(attr: Attribute, conds: Iterable[ir.Condition]) -> bool:
    """Can one context value (or its absence) satisfy every condition (all on `attr`)?"""
    conds = list(conds)
    if any(c.op == "missing" for c in conds):
        return all(c.op == "missing" for c in conds)
    if attr.kind == "set":
        return _set_sat(conds)
    return _scalar_sat(attr, conds)


def _set_sat(conds: list[ir.Condition]) -> bool:
    required = {c.value for c in conds if c.op in ("eq", "contains")}
    excluded = {c.value for c in conds if c.op == "ne"} | {v for c in conds if c.op == "not_in" for v in c.value}
    if any(c.op in ("lt", "le", "gt", "ge") for c in conds) or required & excluded:
        return False
    return all(set(c.value) - excluded for c in conds if c.op == "in")


def _scalar_sat(attr: Attribute, conds: list[ir.Condition]) -> bool:
    if any(c.op == "contains" for c in conds):
        return False
    allowed: list[Any] | None = None
    for c in conds:
        if c.op in ("eq", "in"):
            vals = [c.value] if c.op == "eq" else list(c.value)
            allowed = vals if allowed is None else [v for v in allowed if any(ir.same(v, w) for w in vals)]
    excluded = [c.value for c in conds if c.op == "ne"] + [v for c in conds if c.op == "not_in" for v in c.value]
    ranges = [c for c in conds if c.op in ("lt", "le", "gt", "ge")]
    if ranges and attr.kind not in ("int", "float"):
        return False

    def fits(v: Any) -> bool:
        if any(ir.same(v, x) for x in excluded):
            return False
        return all(ir.holds(c, {attr.name: v}) for c in ranges)  # ordering holds for numbers only

    if allowed is not None:
        return any(fits(v) for v in allowed)
    if attr.kind == "bool":
        return any(fits(v) for v in (True, False))
    if attr.kind == "str":
        return True  # an open set of strings: finite exclusions never exhaust it
    lo, lo_open, hi, hi_open = -math.inf, True, math.inf, True
    for c in ranges:
        v = c.value
        if c.op in ("gt", "ge") and (v > lo or (v == lo and c.op == "gt")):
            lo, lo_open = v, c.op == "gt"
        if c.op in ("lt", "le") and (v < hi or (v == hi and c.op == "lt")):
            hi, hi_open = v, c.op == "lt"
    if lo > hi or (lo == hi and (lo_open or hi_open)):
        return False
    if attr.kind == "int":
        first = -(2**53) if lo == -math.inf else (math.floor(lo) + 1 if lo_open else math.ceil(lo))
        last = 2**53 if hi == math.inf else (math.ceil(hi) - 1 if hi_open else math.floor(hi))
        if first > last:
            return False
        return last - first + 1 > len(excluded) or any(fits(v) for v in range(first, last + 1))
    if lo == hi:
        return fits(lo)
    return True  # a real interval: finitely many exclusions leave values


def by_attr(conds: Iterable[ir.Condition]) -> dict[str, list[ir.Condition]]:
    out: dict[str, list[ir.Condition]] = {}
    for c in conds:
        out.setdefault(c.attr, []).append(c)
    return out


def _attribute(name: str, attributes: Mapping[str, Attribute]) -> Attribute:
    return attributes.get(name) or Attribute(name, "str")


def reachable(rule: ir.Rule, attributes: Mapping[str, Attribute] = CONTEXT_ATTRIBUTES) -> bool:
    return all(satisfiable(_attribute(a, attributes), cs) for a, cs in by_attr(rule.when).items())


def overlap(a: ir.Rule, b: ir.Rule, attributes: Mapping[str, Attribute] = CONTEXT_ATTRIBUTES) -> bool:
    """Can one context match both rules?"""
    return all(satisfiable(_attribute(name, attributes), cs) for name, cs in by_attr((*a.when, *b.when)).items())


def implies(a: ir.Rule, b: ir.Rule, attributes: Mapping[str, Attribute] = CONTEXT_ATTRIBUTES) -> bool:
    """Does every context matching `a` also match `b` (b's region contains a's)?"""
    mine = by_attr(a.when)
    for c in b.when:
        attr = _attribute(c.attr, attributes)
        have = mine.get(c.attr, [])
        negations = [ir.Condition(c.attr, _NEGATE[c.op], c.value)]  # type: ignore[arg-type]
        if c.op not in ("missing", "exists"):
            negations.append(ir.Condition(c.attr, "missing"))
        if any(satisfiable(attr, [*have, n]) for n in negations):
            return False
    return True
