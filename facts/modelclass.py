"""Model classes: the coarse, stable grouping of models that rules and curation condition on."""

from __future__ import annotations

import re

from facts.models import ModelFacts

# (upper bound in billions of parameters, exclusive) -> size class name
SIZE_CLASSES: tuple[tuple[float, str], ...] = (
    (2.0, "tiny"),
    (6.0, "small"),
    (16.0, "medium"),
    (40.0, "large"),
    (100.0, "xlarge"),
    (float("inf"), "huge"),
)

_SIXTEEN = {"F16", "BF16", "F32", "FP16", "FP32"}


def size_class(params_b: float | None) -> str | None:
    """Size class of a parameter count in billions (None when unknown)."""
    if params_b is None:
        return None
    for bound, name in SIZE_CLASSES:
        if params_b < bound:
            return name
    return SIZE_CLASSES[-1][1]


def normalise_quant(quant: str | None) -> str | None:
    """Canonical quant tag: upper case, vendor prefixes dropped ("UD-Q4_K_XL" -> "Q4_K_XL")."""
    if not quant:
        return None
    q = quant.strip().upper().replace("-", "_")
    q = re.sub(r"^(UD_|IMAT_|I1_)", "", q)
    return q or None


def precision(quant: str | None) -> str | None:
    """'16bit' for F16/BF16/F32 weights, 'quantized' for everything else known, None if unknown."""
    q = normalise_quant(quant)
    if q is None:
        return None
    return "16bit" if q in _SIXTEEN else "quantized"


def class_name(is_moe: bool, params_b: float | None, quant: str | None) -> str | None:
    """`{dense|moe}-{size class}-{precision}` e.g. 'moe-large-quantized'; None when size or quant is unknown.
    The one spelling of a model class, for rules (ModelFacts) and curation (benchmark rows) alike."""
    sc = size_class(params_b)
    pr = precision(quant)
    if sc is None or pr is None:
        return None
    return f"{'moe' if is_moe else 'dense'}-{sc}-{pr}"


def model_class(model: ModelFacts) -> str | None:
    """The model class of `model` (see class_name)."""
    return class_name(model.is_moe, model.params_b, model.quant)
