"""Facts -> one flat, typed context dict: the only input evaluators see (docs/architecture.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine._attributes import ContextError, validate_context
from engine.errors import FactValueError
from facts.archetype import ISA_ORDER
from facts.memory import GIB
from facts.modelclass import model_class, normalise_quant, precision, size_class
from facts.models import Archetype, HardwareFacts, ModelFacts

# keys facts.memory.fit_context may return, with their context types
_FIT_KEYS: Mapping[str, type] = {
    "fit_full_offload": bool,
    "fit_max_ctx": int,
    "fit_max_gpu_layers": int,
    "gpu_budget_gib": float,
    "fit_devices": int,
}


def recipe_backends(hw: HardwareFacts, recipe: str) -> tuple[str, ...]:
    """Available backends for `recipe`, in Lemonade's preference order where known.

    From HardwareFacts.backends ("recipe:backend") when the source listed any; otherwise the
    recipe's platform defaults from facts.backends.supported_backends (empty when unknown).
    """
    prefix = recipe + ":"
    listed = tuple(b[len(prefix):] for b in hw.backends if b.startswith(prefix))
    if listed or hw.backends:
        return listed
    from facts.backends import supported_backends

    return tuple(supported_backends(hw).get(recipe, ()))


def _carveout(hw: HardwareFacts, archetype: Archetype) -> int | None:
    """The BIOS carve-out of a unified AMD GPU the archetype describes (what ROCm sees as VRAM), when known."""
    for i in archetype.primary_gpus:
        g = hw.gpus[i] if i < len(hw.gpus) else None
        if g is not None and g.vendor == "amd" and (g.unified or g.integrated) and g.dedicated_bytes:
            return g.dedicated_bytes
    return None


def build_context(hw: HardwareFacts, archetype: Archetype, model: ModelFacts, *, scenario: str,
                  fit: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One flat dict of str/int/float/bool (set-valued: frozenset); unknown facts are omitted."""
    ctx: dict[str, Any] = {}

    def put(key: str, value: Any) -> None:
        if value is not None:
            ctx[key] = value

    if hw.os.name != "unknown":
        ctx["os"] = hw.os.name
    # archetype: exact id and every back-off id (a rule's `archetype:` eq matches any of them)
    ctx["archetype"] = frozenset((archetype.id, *archetype.backoff))
    ctx["vendor"] = archetype.vendor
    put("family", archetype.family)
    put("arch", archetype.arch)
    ctx["memclass"] = archetype.memclass
    ctx["unified"] = archetype.memclass == "unified"
    ctx["mem_bucket_gb"] = int(archetype.bucket_gb)
    ctx["bw_tier"] = int(archetype.bw_tier)
    ctx["gpu_count"] = int(archetype.count) if archetype.memclass != "cpu" else 0
    ctx["confidence"] = archetype.confidence

    cpu = hw.cpu
    if cpu.arch != "unknown":
        ctx["cpu_arch"] = cpu.arch
    if cpu.isa:
        ctx["cpu_isa"] = next((isa for isa in ISA_ORDER if isa in cpu.isa), "none")
    put("cpu_physical_cores", cpu.physical_cores)
    put("cpu_performance_cores", cpu.performance_cores)
    put("cpu_threads", cpu.threads)
    if hw.memory.total_bytes is not None:
        ctx["ram_gb"] = round(hw.memory.total_bytes / GIB, 2)

    recipe = model.recipe
    backends = recipe_backends(hw, recipe)
    if backends:
        ctx["backends"] = frozenset(backends)
    prefix = recipe + ":"
    installed = frozenset(b[len(prefix):] for b in hw.installed_backends if b.startswith(prefix))
    if installed:
        ctx["installed"] = installed
    put("lemonade_default", hw.default_backends.get(recipe) or None)

    ctx["recipe"] = recipe
    put("architecture", model.architecture)
    put("quant", normalise_quant(model.quant))
    put("precision", precision(model.quant))
    put("size_class", size_class(model.params_b))
    put("model_class", model_class(model))
    if model.params_b is not None:
        ctx["params_b"] = float(model.params_b)
    if model.active_params_b is not None:
        ctx["active_params_b"] = float(model.active_params_b)
    if model.file_bytes is not None:
        ctx["file_gib"] = round(model.file_bytes / GIB, 3)
    ctx["moe"] = bool(model.is_moe)
    ctx["embedding"] = bool(model.embedding)
    ctx["reranker"] = bool(model.reranker)
    put("trained_ctx", model.trained_ctx)
    carveout = _carveout(hw, archetype)
    if carveout is not None and model.file_bytes is not None:
        ctx["weights_exceed_carveout"] = model.file_bytes > carveout

    for key, kind in _FIT_KEYS.items():
        value = (fit or {}).get(key)
        if value is None:
            continue
        ctx[key] = kind(value)

    ctx["scenario"] = scenario
    _check_facts(ctx)
    return ctx


def _check_facts(ctx: Mapping[str, Any]) -> None:
    """The evaluators' own context check, on facts: a value they cannot compare exactly (a string over the limit
    or not valid Unicode, a number past +-2**53) came from an input, so it is the user's FactValueError (exit 2),
    not the ContextError a bug in building the context would be."""
    try:
        validate_context(ctx)
    except ContextError as err:
        raise FactValueError(f"an impossible fact: {str(err).removeprefix('invalid context: ')}: fix the input it "
                             "came from (a model-facts JSON, a GGUF header, a system-info document or a device "
                             "report)") from None
