"""Frozen trace events recorded during resolution, and filtering them by explain level."""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

TraceOp = Literal["match", "skip", "propose", "reject", "choose", "note"]
TRACE_OPS: tuple[str, ...] = ("match", "skip", "propose", "reject", "choose", "note")

# Explain levels (CONVENTIONS.md): winners only; + matched rules, overridden candidates and notes;
# + rules that did not match with the first condition that failed.
LEVELS: tuple[str, ...] = ("decisions", "full", "why-not")
_OPS_BY_LEVEL = {
    "decisions": frozenset({"choose"}),
    "full": frozenset({"match", "propose", "reject", "choose", "note"}),
    "why-not": frozenset(TRACE_OPS),
}


class TraceEvent(NamedTuple):
    """One step of a resolution: what happened, to which rule and parameter, and why.

    A NamedTuple (immutable): a recommend() records about 60 of them, and a tuple builds ~3x faster
    than a frozen dataclass.
    """

    op: TraceOp
    rule_id: str | None = None
    parameter: str | None = None
    salience: int | None = None
    value: Any = None
    source: str | None = None
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.op}
        for key in ("rule_id", "parameter", "salience", "value", "source"):
            got = getattr(self, key)
            if got is not None:
                out[key] = list(got) if isinstance(got, tuple) else got
        if self.message:
            out["message"] = self.message
        return out


def check_level(level: str) -> None:
    """ValueError unless `level` is one of LEVELS."""
    if level not in _OPS_BY_LEVEL:
        raise ValueError(f"unknown explain level {level!r}; expected one of {', '.join(LEVELS)}")


def filter_events(events: tuple[TraceEvent, ...], level: str) -> tuple[TraceEvent, ...]:
    """The events an explain level shows, in recorded order."""
    check_level(level)
    keep = _OPS_BY_LEVEL[level]
    return tuple(e for e in events if e.op in keep)


class TraceRecorder:
    """Collects events during one resolution (not shared between threads)."""

    __slots__ = ("events",)

    def __init__(self) -> None:
        self.events: list[TraceEvent] = []

    def emit(self, op: TraceOp, *, rule_id: str | None = None, parameter: str | None = None,
             salience: int | None = None, value: Any = None, source: str | None = None,
             message: str = "") -> None:
        self.events.append(TraceEvent(op, rule_id, parameter, salience, value, source, message))

    def freeze(self) -> tuple[TraceEvent, ...]:
        return tuple(self.events)
