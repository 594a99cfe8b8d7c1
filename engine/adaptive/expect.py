"""What a Recommendation expects: generation tokens/s, prompt tokens/s and time to first token for its scenario.

Each figure is an `Estimate` with an interval (one spread either side on the log scale, about the middle two
thirds of what was measured) and its basis:

- generation: the evidence of the rule that chose the backend (`evidence`: n benchmark rows of this model class or
  hardware) or the performance model's prediction (`performance model`: this GPU's roof x a calibrated efficiency);
- prompt: generation x the prompt/generation ratio of this backend and GPU group (engine.adaptive.ratios); its
  spread combines both;
- TTFT: the scenario's prompt tokens over the prompt speed (a short prompt's fixed overheads are not modelled).

No figure is made up: without a generation figure (no evidence, a placement with CPU layers, a configuration that
does not fit) every figure is None and `reason` says why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.recommend import Expected

# typical prompt sizes (tokens) of our scenario names: an assumption, stated in the answer
PROMPT_TOKENS = {"chat": 512, "coding": 2048, "long-context": 32768, "embed": 512, "imagegen": 77}
CHARS_PER_TOKEN = 4  # for a bench scenario's messages (no tokenizer here)
PER_MESSAGE = 4  # chat-template tokens per message


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float
    unit: str  # "tokens/s" | "ms"
    basis: str  # "evidence" | "performance model" | "ratio" | "prompt / prompt speed"
    n: int | None  # rows behind it (evidence rows, calibration pairs)
    note: str

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "low": self.low, "high": self.high, "unit": self.unit, "basis": self.basis,
                "n": self.n, "note": self.note}


@dataclass(frozen=True)
class Performance:
    generation_tps: Estimate | None
    prompt_tps: Estimate | None
    ttft_ms: Estimate | None
    prompt_tokens: int
    prompt_tokens_basis: str
    reason: str | None = None  # why a figure is missing

    def to_dict(self) -> dict[str, Any]:
        return {"generation_tps": self.generation_tps.to_dict() if self.generation_tps else None,
                "prompt_tps": self.prompt_tps.to_dict() if self.prompt_tps else None,
                "ttft_ms": self.ttft_ms.to_dict() if self.ttft_ms else None,
                "prompt_tokens": self.prompt_tokens, "prompt_tokens_basis": self.prompt_tokens_basis,
                "reason": self.reason}


def prompt_tokens(scenario: str) -> tuple[int, str]:
    """(tokens, how known) of the scenario's prompt."""
    from engine import scenarios

    for s in scenarios.bench_scenarios():
        if s["name"] == scenario:
            ctx = (s.get("context") or {}).get("target_tokens")
            if isinstance(ctx, int) and ctx > 0:
                return ctx, "the bench scenario's context.target_tokens"
            msgs = s.get("messages") or []
            chars = sum(len(str(m.get("content") or "")) for m in msgs)
            return max(1, chars // CHARS_PER_TOKEN + PER_MESSAGE * len(msgs)), \
                "the bench scenario's messages at ~4 characters a token"
    cat = next((s.get("category") for s in scenarios.bench_scenarios() if s.get("category") == scenario), scenario)
    return PROMPT_TOKENS.get(cat, PROMPT_TOKENS["chat"]), f"a typical {cat} prompt (assumed)"


def _interval(value: float, log_sd: float) -> tuple[float, float]:
    return round(value / math.exp(log_sd), 2), round(value * math.exp(log_sd), 2)


def _log_sd(spread: float | None, fallback: float = 0.5) -> float:
    """A relative spread (MAD / median, or a log sd) as a log sd: log(1 + s) (s = 0.2 -> 0.18)."""
    s = fallback if spread is None or spread <= 0 else float(spread)
    return math.log1p(s)


def performance(expected: Expected | None, backend: str | None, context: Mapping[str, Any], scenario: str, *,
                missing: str | None = None, table: Mapping[str, Any] | None = None) -> Performance:
    """The three figures for a recommendation (`missing`: why there is no generation figure, when known)."""
    from engine.adaptive import ratios

    tokens, tokens_basis = prompt_tokens(scenario)
    if expected is None or backend is None:
        return Performance(None, None, None, tokens, tokens_basis,
                           missing or "no benchmark evidence or performance-model figure for this choice")
    if expected.scope == "performance model":
        basis, n = "performance model", expected.n
        note = f"{expected.metric}: this GPU's roof x the efficiency calibrated on the data (rule {expected.rule_id})"
    else:
        basis, n = "evidence", expected.n
        scope = "models of this class" if expected.scope == "model class" else "every model measured here"
        note = f"{expected.metric or 'metric unknown'}, median of {n or '?'} rows on {scope} (rule {expected.rule_id})"
    # the model's spread is a log sd already. Measured evidence: how much the tests behind the median differ
    # (dispersion, MAD / median); its run-to-run noise (spread) is a floor, never the width on its own
    if basis == "performance model":
        sd = float(expected.spread or 0.5)
    else:
        sd = _log_sd(None if expected.dispersion is None else max(expected.dispersion, expected.spread or 0.0))
    measured = Estimate(round(expected.tokens_per_s, 2), *_interval(expected.tokens_per_s, sd), "tokens/s", basis, n,
                        note)
    prompt_phase = _phase(expected.metric) == "pp"
    r = ratios.lookup(table if table is not None else ratios.shipped(), backend, context.get("vendor"),
                      context.get("family"), context.get("precision"))
    if r is None:
        gen, prompt = (None, measured) if prompt_phase else (measured, None)
        why = f"no prompt/generation ratio calibrated for backend {backend}"
        ttft = _ttft(prompt, sd, tokens, tokens_basis) if prompt else None
        return Performance(gen, prompt, ttft, tokens, tokens_basis, why)
    both = math.hypot(sd, r.spread)
    how = f"pp/tg of {r.n} same-machine pairs, {r.level} {r.key}"
    if prompt_phase:
        g = expected.tokens_per_s / r.ratio
        gen = Estimate(round(g, 2), *_interval(g, both), "tokens/s", "ratio", r.n, f"prompt / {r.ratio:.1f} ({how})")
        prompt = measured
        p_sd = sd
    else:
        gen = measured
        pp = expected.tokens_per_s * r.ratio
        prompt = Estimate(round(pp, 2), *_interval(pp, both), "tokens/s", "ratio", r.n,
                          f"generation x {r.ratio:.1f} ({how})")
        p_sd = both
    first = _ttft(prompt, p_sd, tokens, tokens_basis)
    return Performance(gen, prompt, first, tokens, tokens_basis)


def _phase(metric: str | None) -> str:
    """"pp" for a prompt-processing metric (pp512, pp1024, predicted pp, predicted ppd), else "tg"."""
    m = (metric or "").lower().replace("predicted ", "")
    return "pp" if m.startswith("pp") else "tg"


def _ttft(prompt: Estimate, log_sd: float, tokens: int, tokens_basis: str) -> Estimate:
    ttft = tokens / prompt.value * 1000.0
    return Estimate(round(ttft, 1), *_interval(ttft, log_sd), "ms", "prompt / prompt speed", prompt.n,
                    f"{tokens} prompt tokens ({tokens_basis}) / prompt tokens/s")


def text_lines(perf: Performance | None, indent: str = "") -> list[str]:
    """`expected performance` lines for explain / recommend text."""
    if perf is None:
        return []
    lines = [f"{indent}expected performance ({perf.prompt_tokens}-token prompt: {perf.prompt_tokens_basis})"]
    for label, e in (("generation", perf.generation_tps), ("prompt", perf.prompt_tps), ("TTFT", perf.ttft_ms)):
        if e is None:
            continue
        lines.append(f"{indent}  {label:<10} {e.value:g} {e.unit} (interval {e.low:g}..{e.high:g}; "
                     f"basis {e.basis}{f', n={e.n}' if e.n is not None else ''}: {e.note})")
    if perf.reason:
        lines.append(f"{indent}  {perf.reason}")
    return lines
