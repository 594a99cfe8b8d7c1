"""How decisions are made and explained: rulebooks, evaluators, resolution, recommend()."""

from __future__ import annotations

import importlib
from typing import Any

# Public name -> defining module. Imported on first use (PEP 562), so that `engine <verb>` starts fast
# and `engine facts` never pays for the evaluators.
_EXPORTS = {
    "Candidate": "engine.resolve",
    "Decision": "engine.resolve",
    "Evaluator": "engine.evaluators",
    "Recommendation": "engine.recommend",
    "RulebookError": "engine.rulebook",
    "load_rulebook": "engine.rulebook",
    "make_evaluator": "engine.evaluators",
    "recommend": "engine.recommend",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
