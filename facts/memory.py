"""llama.cpp memory model, per-device budgets and fit decisions (public API of the memory package)."""

from __future__ import annotations

from facts._budget import DEFAULT_MARGIN, Budget, device_budgets, gpu_budget, ram_budget
from facts._estimate import (
    CACHE_TYPES,
    MIB,
    QUANTISED,
    Config,
    Estimate,
    Refusal,
    cache_refusals,
    compute_bytes,
    estimate,
    pad,
    row_bytes,
    validate,
)
from facts.fit import DevicePlan, Fit, Placement, fit_context, guard
from facts.models import GIB

__all__ = [
    "CACHE_TYPES",
    "DEFAULT_MARGIN",
    "GIB",
    "MIB",
    "QUANTISED",
    "Budget",
    "Config",
    "DevicePlan",
    "Estimate",
    "Fit",
    "Placement",
    "Refusal",
    "cache_refusals",
    "device_budgets",
    "compute_bytes",
    "estimate",
    "fit_context",
    "gpu_budget",
    "guard",
    "pad",
    "ram_budget",
    "row_bytes",
    "validate",
]
