"""Fit decisions: context facts for the rules (fit_context) and the memory guard (guard).

The guard decides what llama.cpp's own `--fit` cannot: the context size (Lemonade always passes one), the KV
cache type, and whether the model loads at all. Layer and expert placement stays llama.cpp's (`--fit`, on by
default in every build Lemonade pins) unless a rule or the user set it; the guard still predicts it, to say
whether the configuration fits. Context is traded in this order (docs/memory.md): the scenario's need with an
f16 KV cache on the GPU; the need with a q8_0 KV cache; for a long-context need, MoE experts on the CPU; else
the largest context that still runs fully on the GPU; when not even the floor does, a MoE model keeps the need
with experts on the CPU (it spills anyway), a dense model gets the floor with layers on the CPU.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from cachetools import LRUCache

from facts._estimate import CACHE_TYPES, MIB, Config, Estimate, cache_refusals, layer_count
from facts._loaded import loaded_components
from facts._placement import (
    ALL_LAYERS,
    EMBEDDING_FLOOR_CTX,
    FLOOR_CTX,
    UNKNOWN_MAX_CTX,
    Checker,
    DevicePlan,
    Placement,
    bisect,
    cap_ctx,
    floor_ctx,
    max_ctx,
    place,
    plan_devices,
)
from facts.models import GIB, HardwareFacts, ModelFacts

__all__ = ["ALL_LAYERS", "EMBEDDING_FLOOR_CTX", "FLOOR_CTX", "UNKNOWN_MAX_CTX", "DevicePlan", "Fit", "Placement",
           "fit_context", "guard"]

DEFAULTS = {"batch": 2048, "ubatch": 512}
_UNSET = (None, "auto", "default")
_cache: LRUCache[tuple[str, str], dict[str, int | float | bool]] = LRUCache(maxsize=256)
_cache_lock = threading.Lock()  # cachetools caches are not thread-safe (a hit reorders the LRU)


@dataclass(frozen=True)
class Fit:
    """The guard's result: concrete parameters, why each changed, and whether the estimate fits.

    `changed` maps a parameter to (old, new, reason); `conflicts` names the user's values that cannot be
    honoured (the configuration they ask for does not fit or is refused); `placement` is where the layers go
    (predicted for llama.cpp's fit, or as set); `fits` is None when the memory is unknown.
    """

    params: dict[str, Any]
    changed: dict[str, tuple[Any, Any, str]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    estimate: Estimate | None = None
    estimated: bool = False
    fits: bool | None = True
    budget_bytes: int | None = None
    placement: Placement | None = None
    placed_by: str = "fit"  # "fit" (llama.cpp --fit), "flags" (-ngl / --n-cpu-moe emitted), "cpu"
    need: int | None = None  # the context the scenario needs (capped by the trained context)
    trades: tuple[str, ...] = ()  # what was given up to reach the context, in order
    conflicts: tuple[str, ...] = ()
    plan: DevicePlan | None = None  # the GPUs the model is placed on (None: the CPU backend, no GPU)
    device_parts: tuple[int, ...] = ()  # the estimate's bytes on each device of the plan

    def devices(self) -> list[dict[str, Any]]:
        """Per-device placement: name, label, bytes and budget (for `engine memory` and explain)."""
        if self.plan is None:
            return []
        names = self.plan.names or ("",) * len(self.plan.devices)
        return [{"name": n or None, "label": d.label, "bytes": b, "budget_bytes": d.bytes, "fits": b <= d.bytes,
                 "share": round(f, 4), "index": d.index}
                for n, d, b, f in zip(names, self.plan.devices, self.device_parts, self.plan.fractions, strict=True)]


def fit_context(hw: HardwareFacts, model: ModelFacts) -> dict[str, int | float | bool]:
    """Fit facts for the rule context: fit_full_offload, fit_max_ctx, fit_max_gpu_layers, gpu_budget_gib."""
    key = (hw.model_dump_json(), model.model_dump_json())
    with _cache_lock:
        hit = _cache.get(key)
    if hit is not None:
        return dict(hit)
    cfg = Config()
    n_layer = layer_count(model)
    floor, cap = floor_ctx(model), cap_ctx(model)
    model, _ = loaded_components(model, replace(cfg, ctx_size=floor))
    plan = plan_devices(hw, model, None, replace(cfg, ctx_size=floor))
    check = Checker(hw, model, cpu_only=False, plan=plan)
    out: dict[str, int | float | bool] = {}
    if check.gpu is not None:
        out["gpu_budget_gib"] = round(check.gpu.gib, 2)
        out["fit_devices"] = max(1, len(check.devices))
        out["fit_full_offload"] = check.ok(check.estimate(replace(cfg, ctx_size=FLOOR_CTX)))
        best = max_ctx(check, cfg, floor, cap)
        out["fit_max_ctx"] = best if best is not None else floor
        layers = bisect(0, n_layer + 1,
                        lambda n: check.gpu_ok(check.estimate(replace(cfg, ctx_size=floor, n_gpu_layers=n))), True)
        out["fit_max_gpu_layers"] = min(n_layer, layers or 0)
    elif check.ram.bytes > 0:
        best = max_ctx(check, replace(cfg, n_gpu_layers=0), floor, cap)
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
    parallel = 4 if par in _UNSET else int(par)
    unified = (par in _UNSET) if uni in (None, "default") else uni in ("on", True)
    fa = params.get("flash_attn", "auto") not in ("off", False)
    for name in ("cache_type_k", "cache_type_v"):
        t = params.get(name) or "f16"
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


def _kv_options(cfg: Config, params: Mapping[str, Any], model: ModelFacts, user: frozenset[str]) -> list[Config]:
    """The cache configurations the guard may use: as resolved, then q8_0 K and V (with flash attention on)
    when neither the cache types nor flash attention were chosen by a rule or the user, and llama.cpp takes
    q8_0 for this model."""
    out = [cfg]
    free = all(params.get(p) in (None, "default") and p not in user for p in ("cache_type_k", "cache_type_v"))
    fa_free = params.get("flash_attn") in (None, "default", "auto", "on") and "flash_attn" not in user
    if free and fa_free and cfg.cache_type_k == cfg.cache_type_v == "f16" and \
            not cache_refusals(model, "q8_0", "q8_0", True):
        out.append(replace(cfg, cache_type_k="q8_0", cache_type_v="q8_0", flash_attn=True))
    return out


def _fixed(value: Any) -> bool:
    return value not in _UNSET


class _Search:
    """The context / KV / placement search for one guard() call (see the module docstring for the order)."""

    def __init__(self, check: Checker, model: ModelFacts, options: list[Config], explicit: tuple[int, int] | None):
        self.check, self.model, self.options, self.explicit = check, model, options, explicit
        self.n_layer = layer_count(model)

    def at(self, cfg: Config, ctx: int) -> Placement:
        cfg = replace(cfg, ctx_size=ctx)
        if self.explicit is None:
            return place(self.check, cfg, self.model)
        ngl, moe = self.explicit if self.check.gpu is not None else (0, 0)
        est = self.check.estimate(replace(cfg, n_gpu_layers=ngl, n_cpu_moe=moe))
        return Placement(ngl, self.n_layer, moe, self.check.ok(est), est)

    def whole(self, p: Placement) -> bool:
        """Runs as wanted: fully on the GPU (or as set, or on the CPU backend)."""
        return p.fits and (p.full or self.explicit is not None or self.check.gpu is None)

    def run(self, want: int, lo: int, *, spill_at_need: bool, keep_ctx: bool) -> tuple[Config, int, Placement] | None:
        for cfg in self.options:  # 1-2: the need as wanted, f16 then q8_0 KV
            p = self.at(cfg, want)
            if self.whole(p):
                return cfg, want, p
        if spill_at_need and self.explicit is None:  # 3: experts (then layers, for the user's ctx) on the CPU
            for cfg in self.options:
                p = self.at(cfg, want)
                if p.fits and (p.gpu_layers > self.n_layer or keep_ctx):
                    return cfg, want, p
        if keep_ctx:
            return None
        best: tuple[Config, int] | None = None  # 4: the largest context below the need that runs as wanted
        for cfg in self.options:
            c = bisect(lo // 256, max(lo // 256, want // 256 - 1), lambda k, cfg=cfg: self.whole(self.at(cfg, k * 256)),
                       True) if want - 256 >= lo else None
            if c is not None and (best is None or c * 256 > best[1]):
                best = (cfg, max(lo, c * 256))
        if best is not None:
            return best[0], best[1], self.at(*best)
        if self.model.is_moe and self.explicit is None:  # 5: it spills anyway: MoE experts on the CPU, at the
            for cfg in self.options:                        # need (its KV is small next to the experts it moves)
                p = self.at(cfg, want)
                if p.fits and p.gpu_layers > self.n_layer:
                    return cfg, want, p
        for cfg in self.options:  # 6: spill at the floor (layers on the CPU)
            p = self.at(cfg, lo)
            if p.fits:
                return cfg, lo, p
        return None


def guard(hw: HardwareFacts, model: ModelFacts, params: Mapping[str, Any], *, need: int | None = None,
          hard_need: bool = False, placement: str = "fit", user: frozenset[str] | set[str] = frozenset()) -> Fit:
    """Concrete ctx_size (and KV cache type) whose estimate fits the budgets, and the predicted placement.

    `need`: the context the scenario needs (None: the trained context); `hard_need`: a long-context scenario,
    where MoE experts may move to the CPU to reach it. `placement`: "fit" = llama.cpp's --fit places layers
    and experts (n_gpu_layers / n_cpu_moe stay unset unless a rule or the user set them); "flags" = the guard
    makes them concrete (a llama.cpp without --fit). `user`: parameters the user set; they are never changed:
    a user value that cannot work is reported in `conflicts`.
    """
    user = frozenset(user)
    changed: dict[str, tuple[Any, Any, str]] = {}
    concrete: dict[str, Any] = dict(params)
    base = _config(params, model, changed, concrete)
    model, loaded = loaded_components(model, replace(base, ctx_size=_want(params, model, need)))
    backend = params.get("backend")
    cpu_only = backend == "cpu"
    plan = None if cpu_only else plan_devices(hw, model, backend, replace(base, ctx_size=_want(params, model, need)),
                                              names=tuple(params.get("device") or ()) if "device" in user else ())
    check = Checker(hw, model, cpu_only, plan)
    if check.gpu is None:
        plan = None
    n_layer = layer_count(model)
    floor, cap = floor_ctx(model), cap_ctx(model)
    ctx_in, ngl_in, moe_in = (params.get(p, "auto") for p in ("ctx_size", "n_gpu_layers", "n_cpu_moe"))
    keep_ctx = "ctx_size" in user
    if _fixed(ctx_in):
        want = max(256, int(ctx_in))
        lo = want if keep_ctx else min(floor, want)
    else:
        want = min(need or cap, cap)
        lo = min(floor, want)
        if not base.kv_unified and base.parallel > 1:  # -np N without -kvu: each slot gets ctx / N
            want *= base.parallel
            loaded.append(f"{base.parallel} slots with a KV cache each (-np {base.parallel}, no -kvu): the "
                          f"context is {base.parallel} x {want // base.parallel} so that every slot gets the need")
    want = max(want, lo)
    options = _kv_options(base, params, model, user)
    explicit = None
    if _fixed(ngl_in) or (model.is_moe and _fixed(moe_in)):  # a placement a rule or the user set
        explicit = (ALL_LAYERS if ngl_in in _UNSET or ngl_in == "all" else int(ngl_in),
                    int(moe_in) if model.is_moe and _fixed(moe_in) else 0)
    split = plan is not None and plan.pinned and plan.mode == "split"  # --tensor-split turns llama.cpp's fit off

    def placed(explicit: tuple[int, int] | None) -> str:
        return "cpu" if check.gpu is None else "flags" if explicit or placement == "flags" or split else "fit"

    placed_by = placed(explicit)
    notes_pre: list[str] = []
    chosen = _Search(check, model, options, explicit).run(want, lo, spill_at_need=hard_need or keep_ctx,
                                                          keep_ctx=keep_ctx)
    if chosen is None and explicit is not None and not ({"n_gpu_layers", "n_cpu_moe"} & user):
        # a rule's placement that does not fit: drop it and let llama.cpp's fit (or our flags) place the model
        notes_pre.append("the rule's GPU layers / MoE placement does not fit; placement left to llama.cpp's fit")
        explicit = None
        placed_by = placed(explicit)
        for name, value in (("n_gpu_layers", ngl_in), ("n_cpu_moe", moe_in)):
            if _fixed(value):
                changed[name] = (value, "default", "does not fit; llama.cpp's --fit places it")
                concrete[name] = ngl_in = moe_in = "default"
        chosen = _Search(check, model, options, None).run(want, lo, spill_at_need=hard_need or keep_ctx,
                                                          keep_ctx=keep_ctx)
    fits = chosen is not None
    search = _Search(check, model, options, explicit)
    if chosen is None:  # not even the floor: the smallest configuration's numbers
        chosen = (options[-1], lo, search.at(options[-1], lo))
    cfg, ctx, p = chosen
    conflicts: list[str] = []
    trades: list[str] = []
    if cfg.cache_type_k != base.cache_type_k:
        trades.append("a q8_0 KV cache (half the f16 size; needs flash attention)")
        for name in ("cache_type_k", "cache_type_v"):
            changed[name] = (params.get(name, "default"), "q8_0", f"a q8_0 KV cache to reach {ctx} tokens")
            concrete[name] = "q8_0"
        if params.get("flash_attn") != "on":
            changed["flash_attn"] = (params.get("flash_attn", "default"), "on", "a q8_0 V cache needs flash attention")
            concrete["flash_attn"] = "on"
    if p.experts_cpu and p.gpu_layers > n_layer:
        trades.append(f"MoE experts of {p.experts_cpu} layers on the CPU")
    elif 0 < p.gpu_layers <= n_layer:
        trades.append(f"{n_layer - p.gpu_layers} of {n_layer} layers on the CPU")
    concrete["ctx_size"] = ctx
    if not _fixed(ctx_in):
        why = "the scenario needs" if need else "the trained context is"
        changed["ctx_size"] = (ctx_in, ctx, f"{why} {want} tokens" + ("" if ctx == want else f"; {ctx} fit"))
    elif int(ctx_in) != ctx:
        changed["ctx_size"] = (ctx_in, ctx, f"{ctx_in} tokens do not fit; the largest that fits is {ctx}")
    if not fits:
        what = f"{_g(p.estimate.total_bytes)} needed, budget {_g((check.gpu or check.ram).bytes)}"
        conflicts += [f"{name}={params[name]} does not fit ({what})" for name in sorted(user)
                      if name in ("ctx_size", "n_gpu_layers", "n_cpu_moe", "parallel")]
    _placement_params(concrete, changed, params, p, placed_by, model, user)
    _device_params(concrete, changed, params, plan, user)
    est = p.estimate
    parts = check.parts(est) if plan is not None else ()
    notes = (*notes_pre, *_notes(est, check, fits, p, placed_by, trades), *loaded, *_device_notes(check, plan, parts))
    return Fit(params=concrete, changed=changed, notes=notes, estimate=est, estimated=est.estimated, fits=fits,
               budget_bytes=(check.gpu or check.ram).bytes, placement=p, placed_by=placed_by, need=want,
               trades=tuple(trades), conflicts=tuple(conflicts), plan=plan, device_parts=parts)


def _want(params: Mapping[str, Any], model: ModelFacts, need: int | None) -> int:
    """The context the device choice is made for: the one set, else the scenario's need (capped)."""
    ctx = params.get("ctx_size", "auto")
    cap = cap_ctx(model)
    return max(256, int(ctx)) if _fixed(ctx) else max(min(floor_ctx(model), cap), min(need or cap, cap))


def _device_params(concrete: dict[str, Any], changed: dict[str, tuple[Any, Any, str]], params: Mapping[str, Any],
                   plan: DevicePlan | None, user: frozenset[str]) -> None:
    """device / split_mode / tensor_split: set only where llama.cpp's defaults cannot place the model well
    (mixed GPUs with known device names); a value set is kept."""
    if plan is None or not plan.pinned:
        return
    want: dict[str, Any] = {"device": plan.names}
    if plan.mode == "split":
        want.update(split_mode="layer", tensor_split=plan.tensor_split())
    for name, value in want.items():
        old = params.get(name, "default")
        if name in user or old not in (None, "default", (), []):
            continue
        concrete[name] = value
        changed[name] = (old, value, plan.reason)


def _device_notes(check: Checker, plan: DevicePlan | None, parts: tuple[int, ...]) -> tuple[str, ...]:
    if plan is None or (len(plan.devices) <= 1 and not plan.reason):
        return ()
    names = plan.names or ("",) * len(plan.devices)
    per = "; ".join(f"{n or d.label} ({d.label}) {_g(b)} {'≤' if b <= d.bytes else '>'} {_g(d.bytes)}"
                    for n, d, b in zip(names, plan.devices, parts, strict=False))
    lines = [f"devices: {per}"] if len(plan.devices) > 1 or plan.mode == "choose" else []
    if plan.reason:
        lines.append(f"device choice: {plan.reason}")
    return tuple(lines)


def _placement_params(concrete: dict[str, Any], changed: dict[str, tuple[Any, Any, str]], params: Mapping[str, Any],
                      p: Placement, placed_by: str, model: ModelFacts, user: frozenset[str]) -> None:
    """n_gpu_layers / n_cpu_moe: unset for llama.cpp's fit (and on the CPU, where there is nothing to place: a
    -ngl 0 could only hide a GPU the facts missed), the predicted values as flags; a value set is kept."""
    ngl_in, moe_in = concrete.get("n_gpu_layers", "auto"), concrete.get("n_cpu_moe", "auto")
    if placed_by in ("fit", "cpu"):  # llama.cpp places them (or there is no GPU): nothing is emitted
        for name, value in (("n_gpu_layers", ngl_in), ("n_cpu_moe", moe_in)):
            concrete[name] = "default" if value in _UNSET else value
            if value == "auto":
                changed[name] = (value, "default", f"left to llama.cpp's --fit (predicted: {p.describe()})"
                                 if placed_by == "fit" else "no GPU to place layers on")
        return
    ngl = ALL_LAYERS if p.gpu_layers > p.n_layer else p.gpu_layers
    moe = p.experts_cpu if model.is_moe and p.gpu_layers > 0 else 0
    for name, old, new in (("n_gpu_layers", ngl_in, ngl), ("n_cpu_moe", moe_in, moe)):
        if name in user or old == new or (old == "all" and new == ALL_LAYERS) or \
                (name == "n_cpu_moe" and old in _UNSET and new == 0):
            concrete[name] = old if old not in _UNSET else new
            continue
        concrete[name] = new
        changed[name] = (old, new, p.describe())


def _g(n: int) -> str:
    return f"{n / GIB:.1f} GiB"


def _notes(e: Estimate, check: Checker, fits: bool, p: Placement, placed_by: str,
           trades: list[str]) -> tuple[str, ...]:
    per_cell = e.kv_bytes_per_cell
    kv = f"KV {_g(e.kv_bytes)} ({e.kv_cells * e.n_stream} cells × {per_cell / 1024:.0f} KiB)"
    parts = [f"weights {_g(e.weights_bytes)}", kv]
    if e.swa_kv_bytes:
        parts.append(f"SWA KV {_g(e.swa_kv_bytes)} ({e.swa_cells * e.n_stream} cells)")
    if e.recurrent_bytes:
        parts.append(f"recurrent state {e.recurrent_bytes / MIB:.0f} MiB")
    parts.append(f"compute {_g(e.compute_bytes)}")
    if e.mmproj_bytes:
        parts.append(f"projector {_g(e.mmproj_bytes)}")
    if e.draft_bytes:
        parts.append(f"draft {_g(e.draft_bytes)}")
    budget = check.gpu or check.ram
    used = e.gpu_bytes if check.gpu is not None else e.total_bytes
    rel = "≤" if fits else ">"
    lines = [" + ".join(parts) + f" = {_g(e.total_bytes)}",
             f"{'GPU part ' + _g(used) if check.gpu is not None and used != e.total_bytes else _g(used)} {rel} "
             f"budget {_g(budget.bytes)} ({budget.explain})"]
    if placed_by == "fit":
        lines.append(f"placement left to llama.cpp's --fit; predicted: {p.describe()}")
    elif placed_by == "flags":
        lines.append(f"placement as flags: {p.describe()}")
    if trades:
        lines.append("to reach the context: " + "; ".join(trades))
    if e.estimated:
        lines.append("estimated: some of the model's facts are not from its GGUF header (size/name based)")
    if not fits:
        lines.append("does not fit even at the smallest context with no GPU layers")
    return tuple(lines)

