"""Salience resolution: backend first, then every parameter; decisions carry their fallback chain."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from engine.errors import BackendUnavailableError, ResolutionError
from engine.ir import LAYER_BAND, PRIORITY_MAX, Rule
from engine.trace import TraceRecorder

USER_OVERRIDE_ID = "user-override"
# a user override beats every rule, including a user-layer rule at priority 999
OVERRIDE_SALIENCE = LAYER_BAND["user"] + PRIORITY_MAX + 1
GUARD_LAYER = "guard"


@dataclass(frozen=True)
class Candidate:
    """A value some rule (or the user, or a guard) proposed for one parameter."""

    rule_id: str
    layer: str
    salience: int
    value: Any
    source: str


@dataclass(frozen=True)
class Decision:
    """The value a parameter resolved to, who set it, and the candidates it overrode (best first)."""

    parameter: str
    value: Any
    rule_id: str
    layer: str
    salience: int
    source: str
    chain: tuple[Candidate, ...] = ()

    def winner(self) -> Candidate:
        return Candidate(self.rule_id, self.layer, self.salience, self.value, self.source)


def _order(c: Candidate) -> tuple[int, str]:
    # highest salience first; equal salience broken by rule id, never by rule or file order
    return (-c.salience, c.rule_id)


def candidates_for(parameter: str, rules: Iterable[Rule],
                   overrides: Mapping[str, Any]) -> list[Candidate]:
    """All candidates for one parameter, best first."""
    out = [Candidate(r.id, r.layer, r.salience, r.set[parameter], r.source)
           for r in rules if parameter in r.set]
    if parameter in overrides:
        out.append(Candidate(USER_OVERRIDE_ID, "user", OVERRIDE_SALIENCE, overrides[parameter], "--set"))
    out.sort(key=_order)
    return out


def _emit_matches(rec: TraceRecorder, rules: Iterable[Rule], phase: int, seen: set[str]) -> None:
    for r in rules:
        if r.id not in seen:
            seen.add(r.id)
            rec.emit("match", rule_id=r.id, salience=r.salience, source=r.source,
                     message=f"phase {phase}: all {len(r.when)} condition(s) hold")


def _propose(rec: TraceRecorder, parameter: str, cands: list[Candidate]) -> None:
    for c in cands:
        rec.emit("propose", rule_id=c.rule_id, parameter=parameter, salience=c.salience, value=c.value,
                 source=c.source, message=c.layer)


def _decide(rec: TraceRecorder, parameter: str, win: Candidate, rest: list[Candidate]) -> Decision:
    rec.emit("choose", rule_id=win.rule_id, parameter=parameter, salience=win.salience, value=win.value,
             source=win.source, message=f"{win.layer}; overrides {len(rest)} candidate(s)")
    return Decision(parameter, win.value, win.rule_id, win.layer, win.salience, win.source, tuple(rest))


def resolve_backend(match: Callable[[Mapping[str, Any]], tuple[Rule, ...]], context: Mapping[str, Any],
                    overrides: Mapping[str, Any], rec: TraceRecorder,
                    seen: set[str]) -> tuple[Decision, tuple[Rule, ...]]:
    """Phase 1: the highest-salience available backend; unavailable candidates are rejected."""
    matched = match(context)
    _emit_matches(rec, matched, 1, seen)
    cands = candidates_for("backend", matched, overrides)
    _propose(rec, "backend", cands)
    available = context.get("backends")
    recipe = context.get("recipe", "?")
    if available is None:
        rec.emit("note", parameter="backend",
                 message=f"available backends for {recipe} unknown: candidates are not filtered")
    kept: list[Candidate] = []
    for c in cands:
        if available is not None and c.value not in available:
            if c.rule_id == USER_OVERRIDE_ID:
                raise BackendUnavailableError(c.value, recipe, available)
            rec.emit("reject", rule_id=c.rule_id, parameter="backend", salience=c.salience, value=c.value,
                     source=c.source, message=f"{c.value} is not available for {recipe} here "
                     f"(available: {', '.join(sorted(available))})")
        else:
            kept.append(c)
    if not kept:
        raise ResolutionError("backend", f"no rule proposes an available backend for recipe {recipe!r} "
                              f"(available: {', '.join(sorted(available or ())) or 'unknown'})")
    return _decide(rec, "backend", kept[0], [c for c in cands if c is not kept[0]]), matched


def resolve_parameters(match: Callable[[Mapping[str, Any]], tuple[Rule, ...]], context: Mapping[str, Any],
                       parameters: Iterable[str], overrides: Mapping[str, Any], rec: TraceRecorder,
                       seen: set[str]) -> tuple[dict[str, Decision], tuple[Rule, ...]]:
    """Phase 2: every other parameter, with `backend` in the context.

    A matched rule that also sets `backend` to a backend that was not chosen contributes nothing:
    its other settings were written for that backend.
    """
    chosen = context["backend"]
    matched = match(context)
    _emit_matches(rec, matched, 2, seen)
    usable: list[Rule] = []
    for r in matched:
        if "backend" in r.set and r.set["backend"] != chosen:
            rec.emit("skip", rule_id=r.id, salience=r.salience, source=r.source,
                     message=f"sets backend {r.set['backend']}, but {chosen} was chosen")
        else:
            usable.append(r)
    decisions: dict[str, Decision] = {}
    for parameter in parameters:
        if parameter == "backend":
            continue
        cands = candidates_for(parameter, usable, overrides)
        if not cands:
            raise ResolutionError(parameter, "no matching rule sets it; every parameter needs a "
                                  "recipe-default rule (run `engine lint`)")
        _propose(rec, parameter, cands)
        decisions[parameter] = _decide(rec, parameter, cands[0], cands[1:])
    return decisions, matched


def guard_change(decision: Decision, value: Any, rule_id: str, source: str, rec: TraceRecorder,
                 message: str) -> Decision:
    """A guard replaces a decided value; the replaced winner moves to the head of the chain."""
    rec.emit("choose", rule_id=rule_id, parameter=decision.parameter, salience=0, value=value,
             source=source, message=f"{GUARD_LAYER}: {message}")
    return Decision(decision.parameter, value, rule_id, GUARD_LAYER, 0, source,
                    (decision.winner(), *decision.chain))
