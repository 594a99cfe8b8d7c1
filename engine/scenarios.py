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
