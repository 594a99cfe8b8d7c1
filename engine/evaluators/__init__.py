"""Evaluators: which rules of a rulebook match a context, in firing order (durable-rules or Python)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from engine import ir
from engine._attributes import (
    CONTEXT_ATTRIBUTES,
    MAX_NUMBER,
    MAX_STRING_BYTES,
    ContextError,
    string_problem,
    validate_context,
)
from engine.errors import CompileError, EngineUnavailable, UsageError

ENGINE_ENV = "LEMONADE_AUTOTUNE_ENGINE"
ENGINES = ("durable", "python")

__all__ = ["ENGINES", "ENGINE_ENV", "ContextError", "EngineUnavailable", "Evaluator", "PythonEvaluator",
           "capacity_errors", "durable_available", "firing_order", "make_evaluator", "validate_context",
           "CONTEXT_ATTRIBUTES"]


@runtime_checkable
class Evaluator(Protocol):
    """Matches one flat, typed context against a rulebook.

    `match` validates the context (ContextError on None, NaN, string numbers, unknown keys) and returns
    the matching rules sorted by (salience, index): ascending, so the last writer per parameter wins.
    """

    name: str
    rulebook: ir.Rulebook

    def match(self, context: Mapping[str, Any]) -> tuple[ir.Rule, ...]: ...


def firing_order(rule: ir.Rule) -> tuple[int, int]:
    return (rule.salience, rule.index)


def _value_ok(value: Any) -> bool:
    if isinstance(value, tuple):
        return all(_value_ok(v) for v in value)
    if isinstance(value, str):
        return string_problem(value) is None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return True
    return abs(value) <= MAX_NUMBER  # False for NaN and inf; never overflows on a huge int


def check_rule_values(rulebook: ir.Rulebook) -> None:
    """Refuse condition values durable-rules cannot represent faithfully (strings over the limit or not valid
    Unicode, numbers not finite or beyond +-2**53). Every evaluator calls it, so on any rulebook they give the
    same answer or the same CompileError (the rulebook loader refuses the same values with file:line)."""
    bad = [r for r in rulebook.rules if not all(_value_ok(c.value) for c in r.when)]
    if bad:
        raise CompileError([f"{r.source} {r.id}: a value beyond what the rule engines compare exactly (a number "
                            f"not finite or beyond +-2**53, or a string over {MAX_STRING_BYTES:,} bytes or not "
                            f"valid Unicode)" for r in bad], bad)


def durable_available() -> bool:
    """True when durable-rules imports (it does not on Python >= 3.13)."""
    try:
        import durable.engine  # noqa: F401
        import durable_rules_engine  # noqa: F401
    except Exception:  # ImportError, or an undefined symbol surfacing as another error
        return False
    return True


def capacity_errors(rulebook: ir.Rulebook) -> CompileError | None:
    """What durable-rules could not hold in this rulebook (checked even where the python engine runs, so
    rulebooks stay portable); None when it fits."""
    from engine.evaluators._durable_plan import plan

    try:
        plan(rulebook)
    except CompileError as err:
        return err
    return None


def make_evaluator(rulebook: ir.Rulebook, engine: str | None = None) -> Evaluator:
    """An evaluator for `rulebook`: `engine` or $LEMONADE_AUTOTUNE_ENGINE (`durable` | `python`).

    Unset: durable when importable (Python < 3.13), else python. Naming `durable` where it cannot
    import raises EngineUnavailable; an unknown name raises UsageError.
    """
    choice = engine or os.environ.get(ENGINE_ENV) or None
    if choice is not None and choice not in ENGINES:
        raise UsageError(f"unknown rule engine {choice!r} (one of {', '.join(ENGINES)}; from "
                         f"{'the engine argument' if engine else ENGINE_ENV})")
    if choice is None:
        choice = "durable" if durable_available() else "python"
    if choice == "python":
        from engine.evaluators.python import PythonEvaluator as _Py

        return _Py(rulebook)
    if not durable_available():
        raise EngineUnavailable("durable-rules cannot be imported here (it supports Python <= 3.12); "
                                f"use the python engine ({ENGINE_ENV}=python)")
    from engine.evaluators.durable import DurableEvaluator

    return DurableEvaluator(rulebook)


def __getattr__(name: str) -> Any:  # lazy re-exports: keep `import engine.evaluators` light
    if name == "PythonEvaluator":
        from engine.evaluators.python import PythonEvaluator

        return PythonEvaluator
    if name == "DurableEvaluator":
        from engine.evaluators.durable import DurableEvaluator

        return DurableEvaluator
    raise AttributeError(name)
