"""The llama.cpp memory step of a recommendation: size the context for the scenario, keep placement with
llama.cpp's --fit, say whether it fits, and refuse (exit 2) what does not fit unless forced."""

from __future__ import annotations

from typing import Any

from engine.errors import DoesNotFitError
from engine.resolve import USER_OVERRIDE_ID, Decision, guard_change
from engine.trace import TraceRecorder
from engine.verdict import MemoryVerdict
from facts.models import GIB, HardwareFacts, ModelFacts

MEMORY_PARAMS = ("ctx_size", "n_gpu_layers", "n_cpu_moe", "cache_type_k", "cache_type_v", "flash_attn", "device",
                 "split_mode", "tensor_split")
EMBEDDING_CTX = 8192  # Lemonade's floor for embedding models (auto_tune.h EMBEDDING_CTX_SIZE)


def _g(n: int) -> str:
    return f"{n / GIB:.1f} GiB"


def gpu_memory_unknown(hw: HardwareFacts, backend: str) -> bool:
    """A GPU backend on a machine whose inference GPU reports no memory (an old llama.cpp log, a Windows
    iGPU without sizes is not this case: its pool is known to be shared RAM)."""
    from facts.memory import gpu_budget

    if backend == "cpu" or gpu_budget(hw) is not None:
        return False
    return any(g.device_class != "display-igpu" for g in hw.gpus)


def placement_mode(decisions: dict[str, Decision]) -> str:
    """"flags" when the arguments turn llama.cpp's --fit off (then the guard emits -ngl / --n-cpu-moe)."""
    extra = tuple((decisions.get("extra_args") or Decision("extra_args", (), "", "", 0, "")).value or ())
    return "flags" if any(a == "--fit" and b == "off" for a, b in zip(extra, extra[1:], strict=False)) else "fit"


def run(decisions: dict[str, Decision], hw: HardwareFacts, model: ModelFacts, rec: TraceRecorder, *,
        need: tuple[int, bool], force: bool, warnings: list[str]) -> MemoryVerdict:
    """facts.memory.guard on the resolved values; its changes replace the rules' values (never the user's)."""
    from facts.errors import FactsError
    from facts.memory import guard

    backend = decisions["backend"].value
    if gpu_memory_unknown(hw, backend):
        reason = "the GPU reports no memory: context and layer placement are left to Lemonade and llama.cpp"
        rec.emit("note", rule_id="memory-fit", message=reason)
        return MemoryVerdict("unknown", reason=reason, estimated=tuple(model.estimated))
    values = {p: d.value for p, d in decisions.items()}
    user = frozenset(p for p, d in decisions.items() if d.rule_id == USER_OVERRIDE_ID)
    tokens, hard = need
    if model.embedding or model.reranker:
        tokens, hard = EMBEDDING_CTX, False
    try:
        fit = guard(hw, model, values, need=tokens, hard_need=hard, placement=placement_mode(decisions), user=user)
    except FactsError as err:  # too little is known to size memory: the rules' values stand
        reason = f"memory guard skipped: {err}"
        rec.emit("note", rule_id="memory-fit", message=reason)
        return MemoryVerdict("unknown", reason=reason, estimated=tuple(model.estimated))
    for line in fit.notes:
        rec.emit("note", rule_id="memory-fit", message=line)
    for parameter in MEMORY_PARAMS:
        d = decisions.get(parameter)
        if d is None or parameter not in fit.changed or d.rule_id == USER_OVERRIDE_ID:
            continue
        _, value, reason = fit.changed[parameter]
        decisions[parameter] = guard_change(d, value, "memory-fit", "facts/fit.py", rec, str(reason))
    est, p = fit.estimate, fit.placement
    verdict = MemoryVerdict(
        fits="no" if not fit.fits else "estimated" if fit.estimated else "yes",
        total_bytes=est.total_bytes if est else None, gpu_bytes=est.gpu_bytes if est else None,
        budget_bytes=fit.budget_bytes, budget=fit.notes[1] if len(fit.notes) > 1 else None,
        placement=p.describe() if p else None, placed_by=fit.placed_by, need=fit.need,
        context=fit.params.get("ctx_size"), trades=fit.trades, estimated=tuple(model.estimated),
        full_offload=None if fit.placed_by == "cpu" or p is None else p.full)
    if not fit.fits:
        _refuse(verdict, fit, decisions, hw, model, force=force, warnings=warnings)
    return verdict


def _refuse(verdict: MemoryVerdict, fit: Any, decisions: dict[str, Decision], hw: HardwareFacts, model: ModelFacts,
            *, force: bool, warnings: list[str]) -> None:
    """Does not fit: the numbers and what would make it fit; an error unless forced (then a warning)."""
    what = model.name or "the model"
    if fit.conflicts:
        message = f"{what}: " + "; ".join(fit.conflicts)
    else:
        message = (f"{what} does not fit this machine even at {fit.params.get('ctx_size')} tokens: it needs "
                   f"{_g(verdict.total_bytes or 0)} ({fit.notes[0] if fit.notes else ''}), the budget is "
                   f"{_g(verdict.budget_bytes or 0)}")
    suggestions = []
    if model.name:
        from facts.registry import smaller_variants

        for name, size in smaller_variants(model.name)[:3]:
            suggestions.append(f"a smaller build of the model: {name} ({size:.1f} GB)")
    parallel = decisions.get("parallel")
    if parallel is not None and isinstance(parallel.value, int) and parallel.value > 1:
        suggestions.append("one server slot (--set parallel=1): each slot holds its own context")
    if any(c.startswith("ctx_size") for c in fit.conflicts):
        suggestions.append("a smaller context (drop --set ctx_size to get the largest that fits)")
    if decisions["backend"].value == "cpu" and hw.gpus:
        suggestions.append("a GPU backend: the CPU backend keeps everything in system RAM")
    if force:
        warnings.append(message + " (kept: --force)")
        return
    raise DoesNotFitError(message, suggestions)


def embedding_batch(decisions: dict[str, Decision], model: ModelFacts, rec: TraceRecorder) -> None:
    """Embedding and reranking models take a whole input in one micro-batch: -ub and -b as large as the
    context (llama.cpp refuses inputs over -ub otherwise; Lemonade #3591), unless the user set them."""
    if not (model.embedding or model.reranker):
        return
    ctx = decisions.get("ctx_size")
    want = ctx.value if ctx is not None and isinstance(ctx.value, int) else EMBEDDING_CTX
    for name in ("batch", "ubatch"):
        d = decisions.get(name)
        if d is None or d.rule_id == USER_OVERRIDE_ID or d.value == want:
            continue
        decisions[name] = guard_change(d, want, "embedding-batch", "engine/recipes/llamacpp/memory.py", rec,
                                       f"an embedding model reads each input in one micro-batch: -ub = -b = the "
                                       f"context {want} (https://github.com/lemonade-sdk/lemonade/issues/3591)")
