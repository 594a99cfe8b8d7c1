"""Text renderings of a Recommendation: the `recommend` table and the indented `explain` trace."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.render import why_not
from engine.resolve import Decision
from engine.trace import check_level

if TYPE_CHECKING:
    from engine.recommend import Recommendation


def _fmt(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return "[" + " ".join(map(str, value)) + "]" if value else "[]"
    if isinstance(value, (frozenset, set)):
        return "{" + ", ".join(sorted(map(str, value))) + "}"
    return str(value)


def _table(rows: list[tuple[str, ...]], indent: str = "") -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def _options_lines(rec: Recommendation, indent: str) -> list[str]:
    opts = rec.recipe_options()
    width = max(len(k) for k in opts) if opts else 0
    return [f"{indent}{k.ljust(width)}  {v if v != '' else '(empty)'}" for k, v in opts.items()]


def _expected_line(rec: Recommendation) -> str:
    e = rec.expected
    if rec.memory is not None and rec.memory.fits == "no":
        return "expected: none: the configuration does not fit"
    if rec.memory is not None and rec.memory.full_offload is False:
        return "expected: none: layers or experts run on the CPU, and no benchmark covers that placement"
    if e is None:
        d = rec.decisions.get("backend")
        rule = next((r for r in rec.rules if d is not None and r.id == d.rule_id), None)
        ev = rule.evidence if rule is not None else None
        if ev is not None and not ev.none and ev.sources:  # measured, but not in tokens/s (e.g. realtime factor)
            n = f", n={ev.n}" if ev.n is not None else ""
            return (f"expected: no tokens/s figure; the backend's rule {rule.id} has evidence "
                    f"({ev.metric or 'metric unknown'}{n}; {', '.join(ev.sources)})")
        return "expected: no benchmark evidence for this choice"
    n = f", n={e.n}" if e.n is not None else ""
    if e.scope == "performance model":
        alt = f"; {e.runner_up['value']} {e.runner_up['median_tps']:g}" if e.runner_up else ""
        return (f"expected: {e.tokens_per_s:g} tokens/s ({e.metric}, performance model: this GPU's roof x the "
                f"efficiency calibrated on the data, spread {e.spread or 0:.0%}{alt}) from rule {e.rule_id}")
    scope = "" if e.scope == "model class" else ", median over all models measured on this hardware"
    return f"expected: {e.tokens_per_s:g} tokens/s ({e.metric or 'metric unknown'}{n}{scope}) from rule {e.rule_id}"


def _performance_lines(rec: Recommendation, indent: str) -> list[str]:
    from engine.adaptive.expect import text_lines

    return text_lines(rec.performance, indent)


def _memory_lines(rec: Recommendation, indent: str) -> list[str]:
    """Whether it fits (said loudly when it does not), what was traded for the context, guessed facts, warnings."""
    v = rec.memory
    lines = []
    if v is not None:
        lines.append(indent + v.line())
        if v.context is not None and v.need is not None and v.context < v.need:
            lines.append(f"{indent}  context {v.context} of the {v.need} tokens the scenario needs: more does not fit")
        if v.trades:
            lines.append(f"{indent}  to reach the context: " + "; ".join(v.trades))
        if v.estimated:
            lines.append(f"{indent}  estimated from the name or size (not a GGUF header): {', '.join(v.estimated)}")
    lines += [f"{indent}WARNING: {w}" for w in rec.warnings]
    return lines


def recommendation_text(rec: Recommendation) -> str:
    """archetype, the recipe options, then a compact per-parameter table (value, layer, rule)."""
    a = rec.archetype
    lines = [f"archetype: {a.id} (confidence {a.confidence})",
             f"recipe: {rec.recipe}  scenario: {rec.scenario}", "", "recipe options:"]
    lines += _options_lines(rec, "  ")
    memory = _memory_lines(rec, "")
    lines += ["", *memory] if memory else []
    lines += ["", "decisions:"]
    rows = [("parameter", "value", "layer", "rule")]
    rows += [(p, _fmt(d.value), d.layer, d.rule_id) for p, d in rec.decisions.items()]
    lines += _table(rows, "  ")
    lines += ["", _expected_line(rec), *_performance_lines(rec, ""),
              f"rulebook: {rec.rulebook}  engine: {rec.evaluator}"]
    return "\n".join(lines) + "\n"


def _decision_lines(d: Decision, full: bool) -> list[str]:
    lines = [f"  {d.parameter} = {_fmt(d.value)}",
             f"    from {d.layer} rule {d.rule_id} (salience {d.salience}, {d.source})"]
    if full and d.chain:
        lines.append("    overrode:")
        lines += [f"      {c.rule_id} = {_fmt(c.value)} ({c.layer}, salience {c.salience}, {c.source})"
                  for c in d.chain]
    return lines


def _evidence_lines(rule: Any) -> list[str]:
    """What a deciding rule rests on: a performance-model prediction or a reported failure, with its sources."""
    ev = rule.evidence if rule is not None else None
    if ev is None or ev.none or not (ev.sources or ev.kind == "model"):
        return []
    if ev.kind == "model":
        return [f"    evidence: {ev.note or 'performance model'}"]
    if ev.median_tps is None:  # a known failure (or a measurement without tokens/s): what and where reported
        return [f"    evidence: {ev.note or ev.metric or 'reported'}; sources: {', '.join(ev.sources)}"]
    return []


def explain_text(rec: Recommendation, level: str = "decisions") -> str:
    """The indented explanation; `full` adds matches, overridden candidates and notes; `why-not` adds misses."""
    check_level(level)
    full = level != "decisions"
    a = rec.archetype
    lines = [f"explain ({level})",
             f"  archetype {a.id} (confidence {a.confidence})",
             f"  recipe {rec.recipe} · scenario {rec.scenario} · {rec.rulebook} · engine {rec.evaluator}",
             "recipe options"]
    lines += _options_lines(rec, "  ")
    lines += _memory_lines(rec, "  ")
    lines.append("decisions")
    by_id = {r.id: r for r in rec.rules}
    for d in rec.decisions.values():
        lines += _decision_lines(d, full)
        lines += _evidence_lines(by_id.get(d.rule_id))
    lines.append(_expected_line(rec))
    lines += _performance_lines(rec, "")
    if full:
        lines.append("context")
        lines += [f"  {k} = {_fmt(v)}" for k, v in sorted(rec.context.items())]
        lines.append("matched rules (firing order)")
        lines += [f"  {e.rule_id} (salience {e.salience}, {e.source})" for e in rec.trace if e.op == "match"]
        rejected = [e for e in rec.trace if e.op == "reject"]
        if rejected:
            lines.append("rejected")
            lines += [f"  {e.rule_id}: {e.parameter} = {_fmt(e.value)}: {e.message}" for e in rejected]
        notes = [e for e in rec.trace if e.op == "note"]
        if notes:
            lines.append("notes")
            lines += [f"  {e.rule_id or 'engine'}: {e.message}" for e in notes]
    if level == "why-not":
        skipped = [e for e in rec.trace if e.op == "skip"]
        lines.append("matched but unused")
        lines += [f"  {e.rule_id}: {e.message}" for e in skipped] or ["  (none)"]
        lines.append("did not match")
        misses = why_not(rec)
        for m in misses:
            f = m["failed"]
            reason = "no failing condition in the recorded context" if f is None else (
                f"{f['condition']} failed (context: "
                f"{'missing' if f['attr'] not in rec.context else _fmt(f['got'])})")
            lines.append(f"  {m['rule']} ({m['layer']}, salience {m['salience']}, {m['source']})")
            lines.append(f"    {reason}")
        if not misses:
            lines.append("  (none)")
    return "\n".join(lines) + "\n"
