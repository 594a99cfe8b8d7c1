"""Measurements against expectations, flagged with the thresholds of Lemonade's nightly CI.

Two kinds of expectation:

- a **baseline** (an earlier measurement of the same model, configuration and scenario: a bench file, or a
  compare file's own `tps_pct_change` / `ttft_pct_change`): the change is flagged as it is, tokens/s -5 %
  warning, -15 % critical, TTFT +10 % warning;
- the Recommendation's **prediction** (engine.adaptive.expect): it has an interval, so only the part of a
  shortfall beyond the interval's edge counts (tokens/s below `low`, TTFT above `high`), with the same thresholds.

Each finding carries its evidence (the numbers, the runs, the source, the rule behind the prediction) and, when it
is not ok, what to do: re-benchmark, or review the profile rule that made the prediction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.adaptive.expect import Performance
    from engine.adaptive.measure import Measurement

TPS_WARNING, TPS_CRITICAL, TTFT_WARNING = -5.0, -15.0, 10.0
# below this a predicted TTFT is mostly the fixed per-request cost (tokenising, the template, a first
# decode step) that the prompt-speed prediction leaves out: it is not compared
MIN_PREDICTED_TTFT_MS = 25.0
SEVERITIES = ("ok", "unknown", "info", "warning", "critical")


@dataclass(frozen=True)
class Finding:
    model: str
    scenario: str
    metric: str  # "generation_tps" | "ttft_ms" | "options"
    severity: str  # one of SEVERITIES
    against: str  # "baseline" | "compare file" | "prediction" | "recommendation"
    measured: float | None = None
    expected: float | None = None
    low: float | None = None
    high: float | None = None
    change_pct: float | None = None  # measured vs expected (or the compare file's change)
    beyond_pct: float | None = None  # vs a prediction: beyond the interval's edge
    message: str = ""
    suggestion: str | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "scenario": self.scenario, "metric": self.metric, "severity": self.severity,
                "against": self.against, "measured": self.measured, "expected": self.expected, "low": self.low,
                "high": self.high, "change_pct": _r(self.change_pct), "beyond_pct": _r(self.beyond_pct),
                "message": self.message, "suggestion": self.suggestion, "evidence": dict(self.evidence)}


def _r(v: float | None) -> float | None:
    return round(v, 1) if v is not None else None


def tps_severity(change_pct: float) -> str:
    return "critical" if change_pct <= TPS_CRITICAL else "warning" if change_pct <= TPS_WARNING else "ok"


def ttft_severity(change_pct: float) -> str:
    return "warning" if change_pct >= TTFT_WARNING else "ok"


def _pct(measured: float, expected: float) -> float:
    return (measured / expected - 1.0) * 100.0


def _runs(m: Measurement) -> dict[str, Any]:
    return {"source": m.source, "runs": m.runs, "tps_min": m.tps_min, "tps_max": m.tps_max,
            "ttft_min": m.ttft_min, "ttft_max": m.ttft_max, "backend": m.backend, "args": m.args,
            "ctx_size": m.ctx_size}


def _rebench(m: Measurement) -> str:
    return (f"re-benchmark {m.model} (lemonade bench, several runs, or `engine probe {m.model}`) to confirm; "
            "check what changed since: driver, backend build, power or thermal limits")


def against_baseline(m: Measurement, base: Measurement) -> list[Finding]:
    out = []
    ev = {"measured": _runs(m), "baseline": _runs(base)}
    if m.tps and base.tps:
        ch = _pct(m.tps, base.tps)
        sev = tps_severity(ch)
        out.append(Finding(m.model, m.scenario, "generation_tps", sev, "baseline", m.tps, base.tps, change_pct=ch,
                           message=f"{m.tps:.1f} tokens/s against {base.tps:.1f} in the baseline ({ch:+.1f} %)",
                           suggestion=_rebench(m) if sev != "ok" else None, evidence=ev))
    if m.ttft_ms and base.ttft_ms:
        ch = _pct(m.ttft_ms, base.ttft_ms)
        sev = ttft_severity(ch)
        out.append(Finding(m.model, m.scenario, "ttft_ms", sev, "baseline", m.ttft_ms, base.ttft_ms, change_pct=ch,
                           message=f"TTFT {m.ttft_ms:.1f} ms against {base.ttft_ms:.1f} ms in the baseline "
                                   f"({ch:+.1f} %)", suggestion=_rebench(m) if sev != "ok" else None, evidence=ev))
    return out


def from_compare(m: Measurement) -> list[Finding]:
    """A Lemonade compare file's own changes against its baseline."""
    out = []
    ev = {"measured": _runs(m)}
    if m.tps_change_pct is not None:
        sev = tps_severity(m.tps_change_pct)
        out.append(Finding(m.model, m.scenario, "generation_tps", sev, "compare file", m.tps,
                           change_pct=m.tps_change_pct, message=f"tokens/s {m.tps_change_pct:+.1f} % against the "
                           "compare file's baseline", suggestion=_rebench(m) if sev != "ok" else None, evidence=ev))
    if m.ttft_change_pct is not None:
        sev = ttft_severity(m.ttft_change_pct)
        out.append(Finding(m.model, m.scenario, "ttft_ms", sev, "compare file", m.ttft_ms,
                           change_pct=m.ttft_change_pct, message=f"TTFT {m.ttft_change_pct:+.1f} % against the "
                           "compare file's baseline", suggestion=_rebench(m) if sev != "ok" else None, evidence=ev))
    return out


def against_prediction(m: Measurement, perf: Performance | None, rule: str | None = None,
                       reason: str | None = None) -> list[Finding]:
    """Measured figures against the Recommendation's intervals (TTFT scaled to the measured prompt size)."""
    ev = {"measured": _runs(m), "rule": rule}
    if perf is None or perf.generation_tps is None:
        why = reason or (perf.reason if perf is not None else None) or "no expectation for this model here"
        return [Finding(m.model, m.scenario, "generation_tps", "unknown", "prediction", m.tps,
                        message=f"{m.tps:.1f} tokens/s measured; nothing to compare with: {why}" if m.tps else why,
                        evidence=ev)]
    out = []
    g = perf.generation_tps
    ev_g = {**ev, "basis": g.basis, "n": g.n, "note": g.note}
    review = (f"review the profile{f' (rule {rule})' if rule else ''}: its prediction rests on {g.basis}"
              f"{f', n={g.n}' if g.n is not None else ''}; re-benchmark (lemonade bench) and contribute the result "
              "(docs/contributing-profiles.md) if it holds")
    if m.tps:
        beyond = _pct(m.tps, g.low) if m.tps < g.low else 0.0
        sev = tps_severity(beyond)
        out.append(Finding(m.model, m.scenario, "generation_tps", sev, "prediction", m.tps, g.value, g.low, g.high,
                           _pct(m.tps, g.value), beyond,
                           f"{m.tps:.1f} tokens/s, predicted {g.value:g} ({g.low:g}..{g.high:g})",
                           f"{_rebench(m)}; {review}" if sev != "ok" else None, ev_g))
    p = perf.prompt_tps
    if m.ttft_ms and p is not None and m.input_tokens:
        exp, lo, hi = (m.input_tokens / x * 1000.0 for x in (p.value, p.high, p.low))
        if exp < MIN_PREDICTED_TTFT_MS:
            out.append(Finding(m.model, m.scenario, "ttft_ms", "unknown", "prediction", m.ttft_ms, round(exp, 1),
                               message=f"TTFT {m.ttft_ms:.1f} ms for {m.input_tokens} prompt tokens: too short a "
                                       f"prompt to predict (predicted {exp:.1f} ms leaves out fixed per-request "
                                       "costs)", evidence=ev))
            return out
        beyond = _pct(m.ttft_ms, hi) if m.ttft_ms > hi else 0.0
        sev = ttft_severity(beyond)
        out.append(Finding(m.model, m.scenario, "ttft_ms", sev, "prediction", m.ttft_ms, round(exp, 1), round(lo, 1),
                           round(hi, 1), _pct(m.ttft_ms, exp), beyond,
                           f"TTFT {m.ttft_ms:.1f} ms for {m.input_tokens} prompt tokens, predicted {exp:.1f} ms "
                           f"({lo:.1f}..{hi:.1f}; prompt speed {p.value:g} tokens/s, basis {p.basis})",
                           f"{_rebench(m)}; {review}" if sev != "ok" else None, {**ev, "basis": p.basis, "n": p.n}))
    return out


def options_drift(model: str, running: Mapping[str, Any], recommended: Mapping[str, Any]) -> Finding | None:
    """An info finding when lemond runs the model with options other than the recommendation's."""
    from engine.adaptive.measure import args_map

    diff = {}
    for k, want in recommended.items():
        have = running.get(k)
        if k == "llamacpp_args":
            if args_map(str(have or "")) != args_map(str(want or "")):
                diff[k] = {"running": have, "recommended": want}
        elif have is not None and have != want:
            diff[k] = {"running": have, "recommended": want}
    if not diff:
        return None
    return Finding(model, "live", "options", "info", "recommendation",
                   message="lemond runs it with options other than the recommendation: "
                           + "; ".join(f"{k} {v['running']!r} (recommended {v['recommended']!r})"
                                       for k, v in diff.items()),
                   suggestion="`engine apply` writes the recommendation (the user's saved values stay theirs); the "
                              "prediction is for the recommended options", evidence={"options": diff})


def match_baseline(m: Measurement, baselines: Sequence[Measurement]) -> Measurement | None:
    """The baseline of the same model and scenario, preferring the same backend and args and context."""
    same = [b for b in baselines if b.model == m.model and b.scenario == m.scenario and b.tps]
    if not same:
        return None
    return max(same, key=lambda b: ((b.backend == m.backend) + (b.args == m.args) + (b.ctx_size == m.ctx_size)))


def worst(findings: Iterable[Finding]) -> str:
    return max((f.severity for f in findings), key=SEVERITIES.index, default="ok")
