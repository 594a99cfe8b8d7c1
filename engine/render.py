"""Renderings of a Recommendation: Lemonade recipe options, JSON documents, text tables and traces."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from engine.ir import first_failure
from engine.recipes import AUTO_CTX
from engine.resolve import Candidate, Decision
from engine.trace import TraceEvent, check_level, filter_events

if TYPE_CHECKING:
    from engine.recommend import Recommendation

__all__ = ["AUTO_CTX", "explain_dict", "recipe_options", "recommendation_dict", "why_not"]


def recipe_options(recipe: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Lemonade recipe options for resolved values: exactly the recipe's keys (engine.recipes renders them)."""
    from engine.recipes import get

    return get(recipe).render(values)


def _json_value(value: Any) -> Any:
    if isinstance(value, (tuple, frozenset, set)):
        return sorted(value) if isinstance(value, (frozenset, set)) else list(value)
    return value


def candidate_dict(c: Candidate) -> dict[str, Any]:
    return {"rule": c.rule_id, "layer": c.layer, "salience": c.salience, "value": _json_value(c.value),
            "source": c.source}


def decision_dict(d: Decision, *, overridden: bool = True) -> dict[str, Any]:
    out = {"value": _json_value(d.value), "rule": d.rule_id, "layer": d.layer, "salience": d.salience,
           "source": d.source}
    if overridden:
        out["overridden"] = [candidate_dict(c) for c in d.chain]
    return out


def archetype_dict(rec: Recommendation) -> dict[str, Any]:
    a = rec.archetype
    return {"id": a.id, "backoff": list(a.backoff), "confidence": a.confidence}


def recommendation_dict(rec: Recommendation) -> dict[str, Any]:
    """Payload of the `recommendation` JSON envelope."""
    return {
        "archetype": archetype_dict(rec),
        "recipe": rec.recipe,
        "scenario": rec.scenario,
        "recipe_options": rec.recipe_options(),
        "decisions": {p: decision_dict(d) for p, d in rec.decisions.items()},
        "expected": rec.expected.to_dict() if rec.expected else None,
        "performance": rec.performance.to_dict() if rec.performance else None,
        "evidence": _evidence(rec),
        "memory": rec.memory.to_dict() if rec.memory else None,
        "warnings": list(rec.warnings),
        "rulebook": rec.rulebook,
        "engine": rec.evaluator,
    }


# ---- why-not: rules that did not match, with the first condition that failed -------------------

def why_not(rec: Recommendation) -> list[dict[str, Any]]:
    """Every rule that did not match, its first failing condition and what the context held.

    A rule that sets `backend` is judged on the phase-1 context (without `backend`), as it was matched.
    Rules that matched but lost their backend are reported from the trace (`skip` events).
    """
    matched = set(rec.matched)
    phase1 = {k: v for k, v in rec.context.items() if k != "backend"}
    out: list[dict[str, Any]] = []
    for rule in sorted(rec.rules, key=lambda r: (-r.salience, r.id)):
        if rule.id in matched:
            continue
        ctx = phase1 if "backend" in rule.set else rec.context
        cond = first_failure(rule, ctx)
        entry: dict[str, Any] = {"rule": rule.id, "layer": rule.layer, "salience": rule.salience,
                                 "source": rule.source, "sets": sorted(rule.set)}
        if cond is None:
            entry["failed"] = None
        else:
            entry["failed"] = {"attr": cond.attr, "op": cond.op, "want": _json_value(cond.value),
                               "got": _json_value(ctx[cond.attr]) if cond.attr in ctx else None,
                               "condition": cond.describe()}
        out.append(entry)
    return out


def skip_events(rec: Recommendation) -> tuple[TraceEvent, ...]:
    """why-not as trace events (op `skip`), derived from the recorded context; nothing is re-resolved."""
    events = []
    for e in why_not(rec):
        f = e["failed"]
        if f is None:
            msg = "did not match"
        else:
            got = "missing" if f["attr"] not in rec.context else repr(f["got"])
            msg = f"first failed condition: {f['condition']} (context: {got})"
        events.append(TraceEvent("skip", e["rule"], None, e["salience"], None, e["source"], msg))
    return tuple(events)


def _evidence(rec: Recommendation) -> dict[str, Any]:
    """Per parameter: the deciding rule's evidence kind, note, sources and (performance model) basis."""
    by_id = {r.id: r for r in rec.rules}
    out: dict[str, Any] = {}
    for p, d in rec.decisions.items():
        rule = by_id.get(d.rule_id)
        ev = rule.evidence if rule is not None else None
        if ev is None or ev.none or not (ev.sources or ev.kind == "model"):
            continue
        out[p] = {"kind": ev.kind, "note": ev.note, "sources": list(ev.sources),
                  "basis": _json_value(dict(ev.basis)) if ev.basis else None}
    return out


def explain_dict(rec: Recommendation, level: str = "decisions") -> dict[str, Any]:
    """Payload of the `explanation` JSON envelope (research/rules-engine.md §3.4 shape)."""
    check_level(level)
    full = level != "decisions"
    out: dict[str, Any] = {
        "level": level,
        "engine": rec.evaluator,
        "rulebook": rec.rulebook,
        "rulebook_digest": rec.rulebook_digest,
        "archetype": archetype_dict(rec),
        "recipe": rec.recipe,
        "scenario": rec.scenario,
        "recipe_options": rec.recipe_options(),
        "params": {p: decision_dict(d, overridden=full) for p, d in rec.decisions.items()},
        "expected": rec.expected.to_dict() if rec.expected else None,
        "performance": rec.performance.to_dict() if rec.performance else None,
        "evidence": _evidence(rec),
        "memory": rec.memory.to_dict() if rec.memory else None,
        "warnings": list(rec.warnings),
    }
    if full:
        out["facts"] = {k: _json_value(v) for k, v in sorted(rec.context.items())}
        out["matched"] = [e.to_dict() for e in rec.trace if e.op == "match"]
        out["rejected"] = [e.to_dict() for e in rec.trace if e.op == "reject"]
        out["notes"] = [e.to_dict() for e in rec.trace if e.op == "note"]
    if level == "why-not":
        out["skipped"] = [e.to_dict() for e in rec.trace if e.op == "skip"]
        out["why_not"] = why_not(rec)
    return out


def events_for(rec: Recommendation, level: str) -> tuple[TraceEvent, ...]:
    """The trace an explain level shows: recorded events filtered, plus derived `skip`s for why-not."""
    events = filter_events(rec.trace, level)
    return events + skip_events(rec) if level == "why-not" else events
