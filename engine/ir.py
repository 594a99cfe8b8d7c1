"""Engine-neutral rule representation (IR): what both evaluators match and the resolver reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

# Layers in fallback-chain order, lowest salience band first. Salience = band + priority.
LAYERS: tuple[str, ...] = ("recipe-default", "family", "archetype", "model-overlay", "local", "user")
LAYER_BAND: Mapping[str, int] = MappingProxyType({name: 1000 * (i + 1) for i, name in enumerate(LAYERS)})
PRIORITY_MAX = 999  # priority inside a layer: 0..999
SALIENCE_MAX = 65534  # durable-rules stores pri as uint16; 65535 is reserved for the end-marker rule

Op = Literal["eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "exists", "missing", "contains"]
OPS: tuple[str, ...] = ("eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "exists", "missing", "contains")


@dataclass(frozen=True)
class Condition:
    """One test on one context attribute.

    Semantics (shared by every evaluator; the Python evaluator is the reference):
    - a missing attribute makes every op false except `missing`;
    - `in` / `not_in` take a tuple of scalars; `contains` tests membership in a set-valued attribute
      (e.g. `backends`); the archetype attribute is set-valued too (exact id + back-off ids);
    - ordering ops compare numbers only (bools and strings never order).
    """

    attr: str
    op: Op
    value: Any = None

    def describe(self) -> str:
        if self.op in ("exists", "missing"):
            return f"{self.attr} {self.op}"
        value = list(self.value) if isinstance(self.value, tuple) else self.value
        return f"{self.attr} {_SYMBOLS[self.op]} {value!r}"


_SYMBOLS = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">=", "in": "in", "not_in": "not in",
            "contains": "contains"}


@dataclass(frozen=True)
class Evidence:
    """The benchmark data behind a rule; `none=True` means written from first principles."""

    none: bool = False
    n: int | None = None
    metric: str | None = None  # e.g. "tg128", "pp512", "chat-score"
    median_tps: float | None = None
    spread: float | None = None  # relative (MAD / median): the winner's run-to-run measurement noise
    dispersion: float | None = None  # relative (MAD / median) of the per-test values behind median_tps
    runner_up: Mapping[str, Any] | None = None  # {"value": ..., "median_tps": ..., "n": ...}
    sources: tuple[str, ...] = ()
    builds: str | None = None
    dates: str | None = None
    note: str | None = None
    kind: str = "measured"  # "model": derived from the performance model; `basis` says what calibrated it
    basis: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Rule:
    """One compiled rule. `index` is the global definition order (ties in salience keep it)."""

    id: str
    description: str
    layer: str
    priority: int
    when: tuple[Condition, ...]
    set: Mapping[str, Any]
    source: str  # "rulebook/defaults/llamacpp.yaml:12"
    index: int = 0
    evidence: Evidence | None = None
    salience: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "salience", LAYER_BAND[self.layer] + self.priority)
        if not isinstance(self.set, MappingProxyType):
            object.__setattr__(self, "set", MappingProxyType(dict(self.set)))


@dataclass(frozen=True)
class Rulebook:
    """A validated set of rules; `digest` names it (sha256 of the canonical content)."""

    rules: tuple[Rule, ...]
    digest: str
    root: str = "rulebook"
    files: tuple[str, ...] = ()
    # the digest is the sha256 of the files it was loaded from (engine.rulebook): caches may key on it
    from_files: bool = False

    @property
    def name(self) -> str:
        return f"rulebook@{self.digest[:12]}"


_MISSING = object()


def holds(cond: Condition, context: Mapping[str, Any]) -> bool:
    """Reference semantics of one condition on a flat context."""
    got = context.get(cond.attr, _MISSING)
    if got is _MISSING:
        return cond.op == "missing"
    if cond.op == "eq" and type(got) is type(cond.value):  # fast path: scalar equality of one type
        return got == cond.value
    if cond.op == "missing":
        return False
    if cond.op == "exists":
        return True
    if isinstance(got, (frozenset, set, tuple, list)):  # set-valued attribute (archetype, backends)
        if cond.op in ("eq", "contains"):
            return cond.value in got
        if cond.op == "in":
            return any(v in got for v in cond.value)
        if cond.op == "ne":
            return cond.value not in got
        if cond.op == "not_in":
            return not any(v in got for v in cond.value)
        return False
    if cond.op == "eq":
        return same(got, cond.value)
    if cond.op == "ne":
        return not same(got, cond.value)
    if cond.op == "in":
        return any(same(got, v) for v in cond.value)
    if cond.op == "not_in":
        return not any(same(got, v) for v in cond.value)
    if cond.op == "contains":
        return False
    if not _is_number(got) or not _is_number(cond.value):
        return False
    return {"lt": got < cond.value, "le": got <= cond.value,
            "gt": got > cond.value, "ge": got >= cond.value}[cond.op]


def matches(rule: Rule, context: Mapping[str, Any]) -> bool:
    for cond in rule.when:  # noqa: SIM110 - a plain loop: the hot path of the Python evaluator
        if not holds(cond, context):
            return False
    return True


def first_failure(rule: Rule, context: Mapping[str, Any]) -> Condition | None:
    """The first condition of `rule` that does not hold (for explain's why-not), or None."""
    for cond in rule.when:
        if not holds(cond, context):
            return cond
    return None


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def same(a: Any, b: Any) -> bool:
    """Equality without bool/number or str/number coercion (True != 1, "24" != 24)."""
    if type(a) is type(b):  # fast path: str/str, int/int, bool/bool, float/float
        return a == b
    return _is_number(a) and _is_number(b) and a == b  # int vs float; any other mix differs (bools too)


def eq_key(value: Any) -> tuple[str, Any]:
    """Hash key that agrees with `same`: bools never equal numbers, ints equal floats (equality indexes)."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float)):
        return ("num", value)
    return (type(value).__name__, value)
