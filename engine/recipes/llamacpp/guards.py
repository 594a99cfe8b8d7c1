"""Guards that keep a resolved llama.cpp configuration runnable: cache types, batches, arguments, threads, memory.

A guard replaces a rule's value and records why; a value the user set (`--set`) is never changed silently:
when llama.cpp would refuse it, the other side of the conflict moves, or the answer is an error naming it.
"""

from __future__ import annotations

from engine.errors import UsageError
from engine.recipes.llamacpp.flags import EXTRA_ARGS, extra_args_problems
from engine.resolve import USER_OVERRIDE_ID, Decision, guard_change
from engine.trace import TraceRecorder
from facts.memory import CACHE_TYPES, cache_refusals
from facts.models import HardwareFacts, ModelFacts

LLAMA_DEFAULT_BATCH = 2048  # llama.cpp's -b default
_SELF = "engine/recipes/llamacpp/guards.py"
# bits per cached element, from the memory model's (block, bytes per block) table
_KV_BITS = {t: 8 * size / block for t, (block, size) in CACHE_TYPES.items()}


def _user(d: Decision | None) -> bool:
    return d is not None and d.rule_id == USER_OVERRIDE_ID


def _cache_type(d: Decision | None) -> str:
    """The cache type llama.cpp uses for a decision (`default` and anything unknown: f16)."""
    return "f16" if d is None or d.value not in CACHE_TYPES else d.value


def vulkan_kv_match(decisions: dict[str, Decision], rec: TraceRecorder) -> None:
    """Vulkan's flash attention needs matching K/V types (`default` is f16): with flash attention on, keep the
    more precise type, or the user's."""
    backend, fa = decisions.get("backend"), decisions.get("flash_attn")
    ctk, ctv = decisions.get("cache_type_k"), decisions.get("cache_type_v")
    if (backend is None or backend.value != "vulkan" or fa is None or fa.value != "on" or ctk is None
            or ctv is None or _cache_type(ctk) == _cache_type(ctv)):
        return
    k, v = _cache_type(ctk), _cache_type(ctv)
    if _user(ctk) and _user(ctv):
        rec.emit("note", rule_id="vulkan-kv-match", message=f"kept the user's K/V cache types {k}/{v}: Vulkan's "
                 "flash attention needs them equal and takes a slower path")
        return
    if _user(ctk) or _user(ctv):
        keep, move = (ctk, ctv) if _user(ctk) else (ctv, ctk)
    else:
        move, keep = (ctk, ctv) if _KV_BITS[k] < _KV_BITS[v] else (ctv, ctk)
    want = _cache_type(keep)
    decisions[move.parameter] = guard_change(
        move, want, "vulkan-kv-match", _SELF, rec,
        f"vulkan's flash attention needs matching K/V cache types ({k} vs {v}); using {want}")


def _refuse(message: str, force: bool, warnings: list[str] | None) -> None:
    """A user's value llama.cpp would refuse: an error naming the conflict, or with --force a warning."""
    if not force or warnings is None:
        raise UsageError(message)
    warnings.append(message + " (kept: --force)")


def cache_guard(decisions: dict[str, Decision], model: ModelFacts, rec: TraceRecorder, *, force: bool = False,
                warnings: list[str] | None = None) -> None:
    """Fix the cache-type / flash-attention combinations llama.cpp refuses (facts.memory.cache_refusals).

    A quantised V cache is kept only with flash attention explicitly on (`auto` may resolve to off).
    """
    fa = decisions.get("flash_attn")
    ctk, ctv = decisions.get("cache_type_k"), decisions.get("cache_type_v")
    if ctk is None and ctv is None:
        return
    fa_on = fa is not None and fa.value == "on"
    for r in cache_refusals(model, _cache_type(ctk), _cache_type(ctv), fa_on):
        d = decisions[r.parameter]
        if r.needs_flash_attn and fa is not None and _user(d) and not _user(fa):
            decisions["flash_attn"] = fa = guard_change(fa, "on", "kv-quant-needs-fa", _SELF, rec,
                                                        f"the requested {r.parameter}={d.value}: {r.reason}")
            continue
        if _user(d):
            also = " with flash_attn=" + str(fa.value) if r.needs_flash_attn and fa is not None else ""
            _refuse(f"--set {r.parameter}={d.value}{also}: {r.reason}; llama.cpp refuses this combination (use "
                    f"{r.fix!r}" + (" or flash_attn=on)" if r.needs_flash_attn else ")"), force, warnings)
            continue
        decisions[r.parameter] = guard_change(d, r.fix, "kv-quant-needs-fa" if r.needs_flash_attn else "kv-refused",
                                              _SELF, rec, f"{r.reason}; falling back to {r.fix}")


def extra_args_guard(decisions: dict[str, Decision], rec: TraceRecorder, *, force: bool = False,
                     warnings: list[str] | None = None) -> None:
    """Drop extra arguments the chosen backend does not allow (e.g. a GPU-only flag on cpu); a user's
    argument the backend does not allow is an error."""
    d, backend = decisions.get("extra_args"), decisions.get("backend")
    if d is None or backend is None or not d.value:
        return
    args, kept, dropped, i = tuple(d.value), [], [], 0
    while i < len(args):
        kind = EXTRA_ARGS.get(args[i], (None, None))[0]
        chunk = args[i:i + (1 if kind is None else 2)]
        (dropped if extra_args_problems(chunk, backend.value) else kept).extend(chunk)
        i += len(chunk)
    if not dropped:
        return
    if _user(d):
        _refuse(f"--set extra_args: {' '.join(dropped)} not allowed with backend {backend.value}", force, warnings)
        return
    decisions["extra_args"] = guard_change(d, tuple(kept), "extra-args-allowlist", _SELF, rec,
                                           f"dropped {' '.join(dropped)}: not allowed with backend {backend.value}")


def batch_guard(decisions: dict[str, Decision], rec: TraceRecorder) -> None:
    """ubatch <= batch (llama.cpp silently uses the smaller): the rule's side moves, never the user's."""
    batch, ubatch = decisions.get("batch"), decisions.get("ubatch")
    if batch is None or ubatch is None or not isinstance(ubatch.value, int):
        return
    limit = batch.value if isinstance(batch.value, int) else LLAMA_DEFAULT_BATCH
    if ubatch.value <= limit:
        return
    if _user(ubatch) and not _user(batch):
        decisions["batch"] = guard_change(batch, ubatch.value, "ubatch-le-batch", _SELF, rec,
                                          f"the requested ubatch {ubatch.value} > batch {limit}; batch = ubatch")
    elif _user(ubatch):
        rec.emit("note", rule_id="ubatch-le-batch", message=f"kept the user's ubatch {ubatch.value} > batch "
                 f"{limit}: llama.cpp uses the smaller of the two")
    else:
        decisions["ubatch"] = guard_change(ubatch, limit, "ubatch-le-batch", _SELF, rec,
                                           f"ubatch {ubatch.value} > batch {limit}; ubatch = batch")


def threads_guard(decisions: dict[str, Decision], hw: HardwareFacts, rec: TraceRecorder) -> None:
    """`physical-cores` / `performance-cores` become a number (or `default` when unknown)."""
    d = decisions.get("threads")
    if d is None or d.value not in ("physical-cores", "performance-cores"):
        return
    cpu = hw.cpu
    n = cpu.performance_cores if d.value == "performance-cores" else None
    n = n or cpu.physical_cores
    if n:
        decisions["threads"] = guard_change(d, int(n), "threads-from-cores", _SELF, rec,
                                            f"{d.value} = {n} on this CPU")
    else:
        decisions["threads"] = guard_change(d, "default", "threads-from-cores", _SELF, rec,
                                            f"{d.value} unknown on this CPU; llama.cpp's default applies")


def consistency(decisions: dict[str, Decision], model: ModelFacts, rec: TraceRecorder, *, force: bool = False,
                warnings: list[str] | None = None) -> None:
    """Every guard that does not need the memory model, in order (K/V match first: it can make V quantised)."""
    vulkan_kv_match(decisions, rec)
    cache_guard(decisions, model, rec, force=force, warnings=warnings)
    extra_args_guard(decisions, rec, force=force, warnings=warnings)
    batch_guard(decisions, rec)
