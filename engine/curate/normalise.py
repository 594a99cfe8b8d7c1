"""Normalise raw benchmark fields: model names -> model class, hardware strings -> archetype, dates, builds."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from facts.modelclass import class_name, normalise_quant, precision, size_class

_QUANT = re.compile(
    r"(?<![A-Za-z0-9])((?:UD[-_])?(?:I?Q[1-8](?:_[0-9A-Z]+)*|MXFP4(?:_MOE)?|BF16|F16|F32|FP16|FP32|TQ[12]_0))"
    r"(?![A-Za-z0-9])", re.IGNORECASE)
_QUANT_TYPE = re.compile(r"\b(I?Q[1-8]_[0-9A-Z]+)\s*-\s*(Small|Medium|Large|XS|XXS|S|M|L)\b", re.IGNORECASE)
_SIZE_SUFFIX = {"small": "S", "medium": "M", "large": "L", "xs": "XS", "xxs": "XXS", "s": "S", "m": "M", "l": "L"}
_TOTAL = re.compile(r"(?<![A-Za-z0-9.])(\d+(?:\.\d+)?)\s*[Bb](?![A-Za-z0-9])")
_ACTIVE = re.compile(r"(?:^|[-_.\s])A(\d+(?:\.\d+)?)[Bb](?![A-Za-z0-9])")
_EXPERTS = re.compile(r"(\d+(?:\.\d+)?)[Bb]x(\d+)E\b")
_BRACKET_ARCH = re.compile(r"\[([a-z0-9_.-]+)\s")
_MOE_ARCH = re.compile(r"moe|gpt-?oss|deepseek|mixtral|dots|minimax|llama4|scout|maverick|glm-4\.[57]|"
                       r"qwen3\.?[56]?-\d+b-a\d|granite.*-a\d", re.IGNORECASE)
_ARCH_WORDS = ("qwen3moe", "qwen3", "qwen2", "qwen35", "llama4", "llama", "gemma3", "gemma4", "gemma",
               "gpt-oss", "glm4moe", "glm4", "mistral3", "mistral", "deepseek2", "deepseek", "dots1",
               "hunyuan-moe", "minimax", "nemotron", "phi3", "granite")


@dataclass(frozen=True)
class ModelInfo:
    """What a benchmark's model string tells: size, MoE, quant and the derived model class."""

    key: str
    architecture: str | None
    params_b: float | None
    active_params_b: float | None
    moe: bool
    quant: str | None
    precision: str | None
    size_class: str | None
    model_class: str | None


def _quant_of(text: str) -> str | None:
    m = _QUANT_TYPE.search(text)  # llama.cpp model_type: "Q4_K - Medium"
    if m:
        return f"{m.group(1).upper()}_{_SIZE_SUFFIX[m.group(2).lower()]}"
    hits = _QUANT.findall(text)
    return normalise_quant(hits[0]) if hits else None


@functools.lru_cache(maxsize=4096)
def model_info(name: str, quant: str | None = None, params_b: float | None = None,
               size_gib: float | None = None) -> ModelInfo:
    """Parse a model string ('Qwen3.6-35B-A3B-UD-Q4_K_XL', 'llama 7B Q4_K - Medium', ...)."""
    text = name.strip()
    head = re.sub(r"\s*[\[(].*$", "", text) or text
    head_quant = _quant_of(head)
    q = normalise_quant(quant) or head_quant or _quant_of(text)
    total = params_b
    experts = _EXPERTS.search(text)
    if total is None and not experts:
        sizes = [float(x) for x in _TOTAL.findall(text.replace("A", " A"))
                 if not re.search(rf"A{re.escape(x)}[Bb]", text)]
        total = max(sizes) if sizes else None
    active_m = _ACTIVE.search(text) or re.search(r"\.A(\d+(?:\.\d+)?)B", text)
    active = float(active_m.group(1)) if active_m else None
    if experts and active is None:
        active = float(experts.group(1))
    bracket = _BRACKET_ARCH.search(text)
    lowered = text.lower()
    arch = bracket.group(1) if bracket else next((w for w in _ARCH_WORDS if w in lowered.replace(" ", "")), None)
    moe = bool(active is not None or experts or _MOE_ARCH.search(text) or (arch and "moe" in arch))
    if moe and active is not None and total is not None and active >= total:
        active = None
    prec = precision(q)
    sc = size_class(total)
    mclass = class_name(moe, total, q)
    key = head if head_quant or not q else f"{head} {q}"
    return ModelInfo(key=key, architecture=arch, params_b=total, active_params_b=active if moe else None,
                     moe=moe, quant=q, precision=prec, size_class=sc, model_class=mclass)


_BACKENDS = {"rocm": "rocm", "hip": "rocm", "cuda": "cuda", "vulkan": "vulkan", "metal": "metal", "mtl": "metal",
             "cpu": "cpu", "blas": "cpu", "sycl": "sycl", "opencl": "opencl", "system": "system"}


def backend_of(text: str) -> str | None:
    """Canonical backend of 'ROCm', 'HIP', 'Vulkan', 'Metal,BLAS', 'BLAS,MTL', 'CUDA' ... (None if unknown)."""
    parts = [p.strip().lower() for p in re.split(r"[,+/ ]", text) if p.strip()]
    found = [_BACKENDS[p] for p in parts if p in _BACKENDS]
    gpu = [b for b in found if b != "cpu"]
    if gpu:
        return gpu[0]
    return found[0] if found else None


_MONTHS = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)}


@functools.lru_cache(maxsize=65536)
def iso_date(text: str | None) -> str:
    """'16 May 2026' / '2025-08-04' / '20260804' / '2024-05' / '2025-04-24T11:57:09Z' -> 'YYYY-MM-DD' ('' if none)."""
    if not text:
        return ""
    t = text.strip()
    if m := re.match(r"^(\d{4})-(\d{2})-(\d{2})", t):
        return f"{m.group(1)}-{m.group(2)}-{m.group(3)}"
    if m := re.match(r"^(\d{4})(\d{2})(\d{2})(?:T|$)", t):
        return f"{m.group(1)}-{m.group(2)}-{m.group(3)}"
    if m := re.match(r"^(\d{4})-(\d{2})$", t):
        return f"{m.group(1)}-{m.group(2)}-01"
    if m := re.match(r"^(\d{1,2})\s+([A-Za-z]{3})[a-z]*\s+(\d{4})$", t):
        mon = _MONTHS.get(m.group(2).lower())
        if mon:
            return f"{m.group(3)}-{mon:02d}-{int(m.group(1)):02d}"
    return ""


@functools.lru_cache(maxsize=65536)
def build_of(text: str | None) -> tuple[str, int | None]:
    """'83bc2f28 (6077)' / '10217 (ddd4ec142)' / 'b6077' / '(6792)' -> ('b6077', 6077); commit only -> (commit, None)."""
    if not text:
        return "", None
    t = text.strip()
    nums = [int(x) for x in re.findall(r"(?<![0-9a-f])b?(\d{3,6})(?![0-9a-f])", t)]
    if nums:
        return f"b{nums[0]}", nums[0]
    commit = re.search(r"[0-9a-f]{7,40}", t)
    return (commit.group(0)[:9] if commit else t[:40]), None
