"""Small helpers the recipe guards share: who set a value, replacing a value with a recorded reason."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.errors import DoesNotFitError
from engine.resolve import USER_OVERRIDE_ID, Decision, guard_change
from engine.verdict import MemoryVerdict

if TYPE_CHECKING:
    from engine.recipes.base import Guarded
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


def refuse_unless_forced(verdict: MemoryVerdict | None, force: bool) -> Guarded:
    """A recipe's memory verdict as the guard's report; a "no" is a DoesNotFitError (exit 2) unless forced."""
    from engine.recipes.base import Guarded

    if verdict is None or verdict.fits != "no":
        return Guarded(verdict)
    message = verdict.reason or "the model does not fit this machine"
    if not force:
        raise DoesNotFitError(message)
    return Guarded(verdict, (message + " (kept: --force)",))
