"""Fit decisions: context facts for the rules (fit_context) and the final memory guard (guard)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from cachetools import LRUCache

from facts._estimate import (
    CACHE_TYPES,
    MIB,
    Config,
    Estimate,
    Layout,
    cache_refusals,
    estimate_with,
    layer_count,
    layout,
    validate,
)
from facts.models import GIB, HardwareFacts, ModelFacts

FLOOR_CTX, EMBEDDING_FLOOR_CTX, UNKNOWN_MAX_CTX = 4096, 8192, 32768
ALL_LAYERS = 999
DEFAULTS = {"batch": 2048, "ubatch": 512}
_cache: LRUCache[tuple[str, str], dict[str, int | float | bool]] = LRUCache(maxsize=256)
_cache_lock = threading.Lock()  # cachetools caches are not thread-safe (a hit reorders the LRU)


@dataclass(frozen=True)
class Fit:
    """The guard's result: concrete parameters whose estimate fits the budget, and why."""

    params: dict[str, Any]
    changed: dict[str, tuple[Any, Any, str]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    estimate: Estimate | None = None
    estimated: bool = False
    fits: bool = True
    budget_bytes: int | None = None


def _budgets(hw: HardwareFacts, cpu_only: bool) -> tuple[Any, Any]:
    from facts.memory import gpu_budget, ram_budget

    gpu = None if cpu_only else gpu_budget(hw)
    return gpu, ram_budget(hw)


def _floor(model: ModelFacts) -> int:
    return EMBEDDING_FLOOR_CTX if model.embedding or model.reranker else FLOOR_CTX


def _cap(model: ModelFacts) -> int:
    cap = model.trained_ctx or UNKNOWN_MAX_CTX
    return max(_floor(model), cap // 256 * 256 if cap >= 256 else cap)


class _Checker:
    """Estimates for one model (each configuration once) against the budgets (GPU part vs GPU budget,
    the rest vs RAM)."""

    def __init__(self, hw: HardwareFacts, model: ModelFacts, cpu_only: bool):
        self.model = model
        self.gpu, self.ram = _budgets(hw, cpu_only)
        self.unified = self.gpu is not None and self.gpu.device == "unified"
        self._layouts: dict[tuple[str, str, bool], Layout] = {}
        self._estimates: dict[Config, Estimate] = {}

    def estimate(self, cfg: Config) -> Estimate:
        """estimate(model, cfg), memoised: the searches revisit configurations and share the model's layout."""
        e = self._estimates.get(cfg)
        if e is None:
            validate(self.model, cfg)
            key = (cfg.cache_type_k, cfg.cache_type_v, cfg.flash_attn)
            lay = self._layouts.get(key)
            if lay is None:
                lay = self._layouts[key] = layout(self.model, *key)
            e = self._estimates[cfg] = estimate_with(self.model, cfg, lay)
        return e

    def gpu_ok(self, e: Estimate) -> bool:
        """The GPU part fits the GPU budget (monotone in GPU layers and in experts kept on the GPU)."""
        return self.gpu is None or e.gpu_bytes <= self.gpu.bytes

    def host_ok(self, e: Estimate) -> bool:
        """What stays in system RAM fits it (unified memory: everything comes out of RAM)."""
        if self.ram.bytes <= 0:
            return True
        if self.gpu is None or self.unified:
            return e.total_bytes <= self.ram.bytes
        return e.cpu_bytes <= self.ram.bytes

    def ok(self, e: Estimate) -> bool:
        return self.gpu_ok(e) and self.host_ok(e)


def _max_ctx(check: _Checker, cfg: Config, lo: int, hi: int) -> int | None:
    """Largest multiple of 256 in [lo, hi] that fits under cfg (None when lo does not fit)."""
    if not check.ok(check.estimate(replace(cfg, ctx_size=lo))):
        return None
    a, b = lo // 256, hi // 256
    if a < b and check.ok(check.estimate(replace(cfg, ctx_size=b * 256))):
        return b * 256  # the common case on a roomy machine: the cap fits, no search needed
    b -= 1 if a < b else 0
    while a < b:
        mid = (a + b + 1) // 2
        if check.ok(check.estimate(replace(cfg, ctx_size=mid * 256))):
            a = mid
        else:
            b = mid - 1
    return max(lo, a * 256)


def _bisect(lo: int, hi: int, good: Callable[[int], bool], want_max: bool) -> int | None:
    """Smallest (want_max False) or largest (True) value in [lo, hi] with good(v), for monotone good."""
    if want_max:
        if not good(lo):
            return None
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if good(mid) else (lo, mid - 1)
        return lo
    if not good(hi):
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if good(mid) else (mid + 1, hi)
    return lo


def fit_context(hw: HardwareFacts, model: ModelFacts) -> dict[str, int | float | bool]:
    """Fit facts for the rule context: fit_full_offload, fit_max_ctx, fit_max_gpu_layers, gpu_budget_gib."""
    key = (hw.model_dump_json(), model.model_dump_json())
    with _cache_lock:
        hit = _cache.get(key)
    if hit is not None:
        return dict(hit)
    check = _Checker(hw, model, cpu_only=False)
    cfg = Config()
    n_layer = layer_count(model)
    floor, cap = _floor(model), _cap(model)
    out: dict[str, int | float | bool] = {}
    if check.gpu is not None:
        out["gpu_budget_gib"] = round(check.gpu.gib, 2)
        full = check.ok(check.estimate(replace(cfg, ctx_size=FLOOR_CTX)))
        out["fit_full_offload"] = full
        best = _max_ctx(check, cfg, floor, cap)
        out["fit_max_ctx"] = best if best is not None else floor
        layers = _bisect(0, n_layer + 1,
                         lambda n: check.gpu_ok(check.estimate(replace(cfg, ctx_size=floor, n_gpu_layers=n))), True)
        out["fit_max_gpu_layers"] = min(n_layer, layers or 0)
    elif check.ram.bytes > 0:
        cpu = replace(cfg, n_gpu_layers=0)
        best = _max_ctx(check, cpu, floor, cap)
        out["fit_full_offload"] = False
        out["fit_max_ctx"] = best if best is not None else floor
        out["fit_max_gpu_layers"] = 0
    with _cache_lock:
        _cache[key] = out
    return dict(out)


def _config(params: Mapping[str, Any], model: ModelFacts, changed: dict[str, tuple[Any, Any, str]],
            concrete: dict[str, Any]) -> Config:
    """Resolve llama-server defaults and make the cache/flash-attn combination one llama.cpp accepts."""
    par = params.get("parallel", "default")
    uni = params.get("kv_unified", "default")
    parallel = 4 if par in (None, "default", "auto") else int(par)
    unified = (par in (None, "default", "auto")) if uni in (None, "default") else uni in ("on", True)
    fa = params.get("flash_attn", "auto") not in ("off", False)
    tk = params.get("cache_type_k") or "f16"
    tv = params.get("cache_type_v") or "f16"
    for name, t in (("cache_type_k", tk), ("cache_type_v", tv)):
        if t == "default":
            t = "f16"
        if t not in CACHE_TYPES:
            changed[name] = (t, "f16", f"unknown KV cache type {t!r}")
            t = "f16"
        concrete[name] = t
    for r in cache_refusals(model, concrete["cache_type_k"], concrete["cache_type_v"], fa):
        changed[r.parameter] = (r.value, r.fix, r.reason)
        concrete[r.parameter] = r.fix
    batch = params.get("batch", "default")
    ubatch = params.get("ubatch", "default")
    return Config(ctx_size=FLOOR_CTX,
                  batch=DEFAULTS["batch"] if batch in (None, "default") else int(batch),
                  ubatch=DEFAULTS["ubatch"] if ubatch in (None, "default") else int(ubatch),
                  cache_type_k=concrete["cache_type_k"], cache_type_v=concrete["cache_type_v"],
                  flash_attn=fa, parallel=parallel, kv_unified=unified,
                  swa_full=params.get("swa_full") in ("on", True))


def guard(hw: HardwareFacts, model: ModelFacts, params: Mapping[str, Any]) -> Fit:
    """Make ctx_size / n_gpu_layers / n_cpu_moe concrete so the estimate fits the budget (never above it)."""
    changed: dict[str, tuple[Any, Any, str]] = {}
    concrete: dict[str, Any] = dict(params)
    cfg = _config(params, model, changed, concrete)
    cpu_only = params.get("backend") == "cpu"
    check = _Checker(hw, model, cpu_only)
    n_layer = layer_count(model)
    floor, cap = _floor(model), _cap(model)

    ctx_in = params.get("ctx_size", "auto")
    ngl_in = params.get("n_gpu_layers", "auto")
    moe_in = params.get("n_cpu_moe", "auto")
    want_ngl = ALL_LAYERS if ngl_in in (None, "auto", "all", "default") else int(ngl_in)
    want_moe = 0 if moe_in in (None, "auto", "default") or not model.is_moe else int(moe_in)
    if check.gpu is None:
        want_ngl = want_moe = 0
    cfg = replace(cfg, n_gpu_layers=want_ngl, n_cpu_moe=want_moe)
    target = cap if ctx_in in (None, "auto", "default") else max(int(ctx_in), 256)
    lo = min(floor, target)

    ctx = _max_ctx(check, cfg, lo, max(lo, target))
    placement_note = ""
    if ctx is None and check.gpu is not None:
        ctx = lo
        base = replace(cfg, ctx_size=ctx)
        if model.is_moe and moe_in in (None, "auto", "default"):
            moe = _bisect(0, n_layer, lambda n: check.gpu_ok(check.estimate(replace(base, n_cpu_moe=n))), False)
            if moe is not None:
                cfg = replace(base, n_cpu_moe=moe)
                placement_note = f"experts of the first {moe} layers on the CPU (--n-cpu-moe {moe})"
            else:
                cfg = replace(base, n_cpu_moe=n_layer)
        if not check.ok(check.estimate(replace(cfg, ctx_size=ctx))):
            top = min(cfg.n_gpu_layers, n_layer + 1)
            layers = _bisect(0, top, lambda n: check.gpu_ok(check.estimate(replace(cfg, ctx_size=ctx,
                                                                                     n_gpu_layers=n))), True)
            cfg = replace(cfg, n_gpu_layers=layers or 0)
            placement_note = f"{layers or 0} of {n_layer} layers on the GPU" + (
                f", {placement_note}" if placement_note else "")
    if ctx is None:
        ctx = lo
    cfg = replace(cfg, ctx_size=ctx)
    est = check.estimate(cfg)
    fits = check.ok(est)

    ngl_out = ALL_LAYERS if cfg.n_gpu_layers > n_layer else cfg.n_gpu_layers
    concrete["ctx_size"] = ctx
    concrete["n_gpu_layers"] = ngl_out
    concrete["n_cpu_moe"] = cfg.n_cpu_moe if model.is_moe and cfg.n_gpu_layers > 0 else 0
    if ctx_in not in (None, "auto", "default") and int(ctx_in) != ctx:
        changed["ctx_size"] = (ctx_in, ctx, f"{ctx_in} tokens do not fit; the largest that fits is {ctx}")
    elif ctx_in in (None, "auto", "default"):
        changed["ctx_size"] = (ctx_in, ctx, "the largest context that fits (capped at the trained context)")
    if ngl_in not in (None, "auto", "default") and ngl_in != "all" and int(ngl_in) != ngl_out:
        changed["n_gpu_layers"] = (ngl_in, ngl_out, placement_note or "layers that fit the GPU budget")
    elif ngl_in in (None, "auto", "default", "all") and (ngl_in != "all" or ngl_out != ALL_LAYERS):
        changed["n_gpu_layers"] = (ngl_in, ngl_out, "CPU backend" if check.gpu is None
                                   else placement_note or "all layers fit the GPU budget")
    moved = concrete["n_cpu_moe"]
    if model.is_moe and moe_in != moved and (moved > 0 or moe_in not in (None, "auto", "default")):
        # "auto"/"default" -> 0 is not a change: no expert on the CPU is llama.cpp's own default
        changed["n_cpu_moe"] = (moe_in, concrete["n_cpu_moe"], placement_note or "all experts fit the GPU budget")
    notes = _notes(est, check, fits, placement_note)
    return Fit(params=concrete, changed=changed, notes=notes, estimate=est, estimated=est.estimated, fits=fits,
               budget_bytes=(check.gpu or check.ram).bytes)


def _notes(e: Estimate, check: _Checker, fits: bool, placement: str) -> tuple[str, ...]:
    g = lambda n: f"{n / GIB:.1f} GiB"  # noqa: E731
    per_cell = e.kv_bytes_per_cell
    kv = f"KV {g(e.kv_bytes)} ({e.kv_cells * e.n_stream} cells × {per_cell / 1024:.0f} KiB)"
    parts = [f"weights {g(e.weights_bytes)}", kv]
    if e.swa_kv_bytes:
        parts.append(f"SWA KV {g(e.swa_kv_bytes)} ({e.swa_cells * e.n_stream} cells)")
    if e.recurrent_bytes:
        parts.append(f"recurrent state {e.recurrent_bytes / MIB:.0f} MiB")
    parts.append(f"compute {g(e.compute_bytes)}")
    if e.mmproj_bytes:
        parts.append(f"projector {g(e.mmproj_bytes)}")
    if e.draft_bytes:
        parts.append(f"draft {g(e.draft_bytes)}")
    budget = check.gpu or check.ram
    used = e.gpu_bytes if check.gpu is not None else e.total_bytes
    rel = "≤" if fits else ">"
    lines = [" + ".join(parts) + f" = {g(e.total_bytes)}",
             f"{'GPU part ' + g(used) if check.gpu is not None and used != e.total_bytes else g(used)} {rel} "
             f"budget {g(budget.bytes)} ({budget.explain})"]
    if placement:
        lines.append(placement)
    if e.estimated:
        lines.append("estimated: the model's architecture is not known from a GGUF header (size/name based)")
    if not fits:
        lines.append("does not fit even at the smallest context with no GPU layers")
    return tuple(lines)
