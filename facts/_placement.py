"""Where a configuration's memory goes: budgets, a memoised checker, context and placement searches.

The placement search predicts what llama.cpp's `--fit` does with a context size (every layer on the GPU;
MoE experts of the first layers to the CPU before whole layers; then whole layers, last ones on the GPU),
so the guard can say whether a configuration fits without emitting the placement itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from facts._budget import Budget, gpu_budget, ram_budget
from facts._estimate import Config, Estimate, Layout, estimate_with, layer_count, layout, validate
from facts.models import HardwareFacts, ModelFacts

FLOOR_CTX, EMBEDDING_FLOOR_CTX, UNKNOWN_MAX_CTX = 4096, 8192, 32768
ALL_LAYERS = 999


class Checker:
    """Estimates for one model (each configuration once) against the budgets (GPU part vs GPU budget,
    the rest vs RAM)."""

    def __init__(self, hw: HardwareFacts, model: ModelFacts, cpu_only: bool):
        self.model = model
        self.gpu, self.ram = budgets(hw, cpu_only)
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


def max_ctx(check: Checker, cfg: Config, lo: int, hi: int) -> int | None:
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


def bisect(lo: int, hi: int, good: Callable[[int], bool], want_max: bool) -> int | None:
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


@dataclass(frozen=True)
class Placement:
    """Layers on the GPU (of `n_layer`; `all` includes the output layer) and MoE layers whose experts stay
    on the CPU; `fits` = the estimate fits both budgets."""

    gpu_layers: int
    n_layer: int
    experts_cpu: int
    fits: bool
    estimate: Estimate

    @property
    def full(self) -> bool:
        return self.gpu_layers > self.n_layer and self.experts_cpu == 0

    def describe(self) -> str:
        if self.gpu_layers == 0:
            return "every layer on the CPU"
        layers = "every layer" if self.gpu_layers > self.n_layer else f"{self.gpu_layers} of {self.n_layer} layers"
        experts = f", the experts of the first {self.experts_cpu} layers on the CPU" if self.experts_cpu else ""
        return f"{layers} on the GPU{experts}"


def place(check: Checker, cfg: Config, model: ModelFacts) -> Placement:
    """The placement llama.cpp's fit would pick for `cfg` (its context and cache types): all layers; else
    (MoE) the fewest expert layers on the CPU; else the most layers on the GPU with every expert on the CPU."""
    n_layer = layer_count(model)

    def done(ngl: int, moe: int) -> Placement:
        est = check.estimate(replace(cfg, n_gpu_layers=ngl, n_cpu_moe=moe))
        return Placement(ngl, n_layer, moe, check.ok(est), est)

    if check.gpu is None:
        return done(0, 0)
    if check.gpu_ok(check.estimate(replace(cfg, n_gpu_layers=ALL_LAYERS, n_cpu_moe=0))):
        return done(ALL_LAYERS, 0)
    moe_all = n_layer if model.is_moe else 0
    if model.is_moe:
        n = bisect(0, n_layer, lambda k: check.gpu_ok(check.estimate(replace(cfg, n_gpu_layers=ALL_LAYERS,
                                                                               n_cpu_moe=k))), False)
        if n is not None:
            return done(ALL_LAYERS, n)
    layers = bisect(0, n_layer, lambda k: check.gpu_ok(check.estimate(replace(cfg, n_gpu_layers=k,
                                                                            n_cpu_moe=moe_all))), True)
    return done(layers or 0, moe_all if layers else 0)


def floor_ctx(model: ModelFacts) -> int:
    return EMBEDDING_FLOOR_CTX if model.embedding or model.reranker else FLOOR_CTX


def cap_ctx(model: ModelFacts) -> int:
    """The trained context (a multiple of 256), never below the floor; 32768 when unknown."""
    cap = model.trained_ctx or UNKNOWN_MAX_CTX
    return max(floor_ctx(model), cap // 256 * 256 if cap >= 256 else cap)


def budgets(hw: HardwareFacts, cpu_only: bool) -> tuple[Budget | None, Budget]:
    gpu = None if cpu_only else gpu_budget(hw)
    return gpu, ram_budget(hw)
