"""Small helpers the recipe guards share: who set a value, replacing a value with a recorded reason."""

from __future__ import annotations

from typing import Any

from engine.resolve import USER_OVERRIDE_ID, Decision, guard_change
from engine.trace import TraceRecorder


def is_user(d: Decision | None) -> bool:
    """The user set this value (`--set`): a guard never changes it silently."""
    return d is not None and d.rule_id == USER_OVERRIDE_ID


def value(decisions: dict[str, Decision], parameter: str, fallback: Any = "default") -> Any:
    d = decisions.get(parameter)
    return fallback if d is None else d.value


def change(decisions: dict[str, Decision], parameter: str, new: Any, rule_id: str, source: str,
           rec: TraceRecorder, message: str) -> None:
    """Replace a decided value (no-op when it already holds `new`); the replaced winner joins the chain."""
    d = decisions.get(parameter)
    if d is None or d.value == new:
        return
    decisions[parameter] = guard_change(d, new, rule_id, source, rec, message)


def note(rec: TraceRecorder, rule_id: str, message: str, parameter: str | None = None) -> None:
    rec.emit("note", rule_id=rule_id, parameter=parameter, message=message)
