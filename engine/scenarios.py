"""Scenarios: the workload a recommendation is for — ours (chat, coding, long-context) and Lemonade's bench."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

from engine.errors import UsageError

# ours, each standing for a family of Lemonade's bench scenarios
OURS: dict[str, str] = {
    "chat": "generation-weighted (Lemonade bench category chat)",
    "coding": "prompt-processing-weighted (category coding)",
    "long-context": "prompt-processing-weighted, long prompts (category long-context)",
}


@lru_cache(maxsize=1)
def bench_scenarios() -> tuple[dict, ...]:
    """Lemonade's bench scenarios (engine/data/bench_scenarios.json, a copy of Lemonade's resource file)."""
    text = resources.files("engine").joinpath("data", "bench_scenarios.json").read_text(encoding="utf-8")
    return tuple(json.loads(text)["scenarios"])


@lru_cache(maxsize=1)
def names() -> frozenset[str]:
    """Every scenario `--scenario` accepts: ours, Lemonade's scenario names and their categories."""
    out = set(OURS)
    for s in bench_scenarios():
        out.add(s["name"])
        if s.get("category"):
            out.add(s["category"])
    return frozenset(out)


def check(scenario: str) -> str:
    if scenario not in names():
        raise UsageError(f"unknown scenario {scenario!r}; expected one of {', '.join(sorted(names()))}")
    return scenario


# the context each family of scenarios needs (tokens); `hard`: a long-context workload, where speed may be
# traded (MoE experts on the CPU) to reach it. Ollama's coding-agent warning below 64k and Lemonade's own
# 32768 cap for unknown models set the soft ones.
_NEEDS = {"chat": (32768, False), "coding": (65536, False), "long-context": (131072, True),
          "embed": (8192, False), "imagegen": (4096, False)}


def need(scenario: str) -> tuple[int, bool]:
    """(tokens, hard) the scenario needs: a bench scenario's prompt (`context.target_tokens`) plus its
    output, rounded up to 256; else its category's (chat 32768, coding 65536, long-context 131072)."""
    for s in bench_scenarios():
        if s["name"] == scenario:
            ctx = (s.get("context") or {}).get("target_tokens")
            if isinstance(ctx, int) and ctx > 0:
                total = ctx + int(s.get("max_tokens") or 0)
                return -(-total // 256) * 256, True
            return _NEEDS.get(s.get("category") or "chat", _NEEDS["chat"])
    return _NEEDS.get(scenario, _NEEDS["chat"])
