"""Where a configuration's memory goes: budgets, devices, a memoised checker, context and placement searches.

The placement search predicts what llama.cpp's `--fit` does with a context size (every layer on the GPU;
MoE experts of the first layers to the CPU before whole layers; then whole layers, last ones on the GPU),
so the guard can say whether a configuration fits without emitting the placement itself. With several GPUs
the layers are split over them as llama.cpp's layer split does (contiguous blocks in proportion to each
device's memory, the output layer on the last one), and each device's part must fit its own budget.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, replace

from facts._budget import Budget, device_budgets, gpu_budget, ram_budget
from facts._estimate import Config, Estimate, Layout, estimate_with, layer_count, layout, validate
from facts.models import GIB, HardwareFacts, ModelFacts

FLOOR_CTX, EMBEDDING_FLOOR_CTX, UNKNOWN_MAX_CTX = 4096, 8192, 32768
ALL_LAYERS = 999
# llama.cpp's device names per backend (`llama-server --list-devices`): Vulkan0, ROCm0, CUDA0, MTL0
DEVICE_PREFIX = {"vulkan": "Vulkan", "rocm": "ROCm", "cuda": "CUDA", "metal": "MTL"}
_VENDORS = {"cuda": ("nvidia",), "rocm": ("amd",), "metal": ("apple",)}  # vulkan: any GPU
SAME_BUDGET = 0.05  # identical GPUs: same architecture and budgets within 5 %


@dataclass(frozen=True)
class DevicePlan:
    """The GPUs one model is placed on and how its layers are split over them.

    `mode`: "one" (a single GPU), "default" (llama.cpp's own layer split over the GPUs it uses by default,
    --fit places the layers: identical GPUs), "choose" (one GPU of several chosen with `llamacpp_device`),
    "split" (mixed GPUs: `llamacpp_device`, --split-mode layer and --tensor-split proportional to usable
    memory; a tensor split turns --fit off, so the layers become flags). `names` are llama.cpp's device
    names for the backend ("" where unknown: then nothing is pinned)."""

    devices: tuple[Budget, ...]
    fractions: tuple[float, ...]
    mode: str = "one"
    names: tuple[str, ...] = ()
    reason: str = ""

    @property
    def pinned(self) -> bool:
        """llamacpp_device (and for "split" the split flags) are emitted."""
        return self.mode in ("choose", "split") and bool(self.names) and all(self.names)

    def tensor_split(self) -> tuple[str, ...]:
        """--tensor-split values: each device's usable GiB (llama.cpp normalises them)."""
        return tuple(f"{max(1, round(d.bytes / GIB))}" for d in self.devices)


def device_name(hw: HardwareFacts, b: Budget, backend: str | None) -> str:
    """llama.cpp's name for the GPU of budget `b` under `backend` ("" when the device report did not say)."""
    prefix = DEVICE_PREFIX.get(backend or "")
    if not prefix or b.index is None:
        return ""
    names = hw.gpus[b.index].llama_devices
    return next((n for n in names if n.startswith(prefix) and n[len(prefix):].isdigit()), "")


def _usable(hw: HardwareFacts, backend: str | None, budgets: tuple[Budget, ...]) -> list[Budget]:
    """The GPUs `backend` can run on; unified GPUs share one pool of RAM, so only the largest of them counts."""
    vendors = _VENDORS.get(backend or "")
    out = [b for b in budgets if b.index is not None and (vendors is None or hw.gpus[b.index].vendor in vendors)]
    shared = [b for b in out if b.device == "unified"]
    if len(shared) > 1:
        keep = max(shared, key=lambda b: (b.bytes, -(b.index or 0)))
        out = [b for b in out if b.device != "unified" or b is keep]
    return out


def _llama_default(hw: HardwareFacts, backend: str | None, usable: list[Budget]) -> list[Budget]:
    """The GPUs llama.cpp uses when no --device is given: Vulkan skips integrated GPUs when a discrete one is
    present; ROCm and CUDA use every GPU of their vendor."""
    if backend == "vulkan":
        dgpus = [b for b in usable if b.device == "gpu"]
        return dgpus or usable
    return usable


def _identical(hw: HardwareFacts, devs: list[Budget]) -> bool:
    archs = {hw.gpus[b.index].arch or hw.gpus[b.index].name for b in devs if b.index is not None}
    lo, hi = min(b.bytes for b in devs), max(b.bytes for b in devs)
    return len(archs) == 1 and hi <= lo * (1 + SAME_BUDGET) and len({b.device for b in devs}) == 1


def _bandwidth(hw: HardwareFacts, b: Budget) -> float:
    return (hw.gpus[b.index].bandwidth_gbs or 0.0) if b.index is not None else 0.0


def _plan(hw: HardwareFacts, devs: list[Budget], mode: str, backend: str | None, reason: str) -> DevicePlan:
    total = sum(b.bytes for b in devs) or 1
    return DevicePlan(tuple(devs), tuple(b.bytes / total for b in devs), mode,
                      tuple(device_name(hw, b, backend) for b in devs), reason)


def plan_devices(hw: HardwareFacts, model: ModelFacts, backend: str | None, cfg: Config, *,
                 names: tuple[str, ...] = ()) -> DevicePlan:
    """The GPUs for `model` under `backend` at `cfg` (its context and cache types).

    One GPU: that one. Identical GPUs: all of them, split as llama.cpp does by default. Mixed GPUs (different
    memory or architecture, an iGPU beside a dGPU): the fastest single GPU on which the model runs wholly at
    this context; else a layer split over the GPUs that can run together (ROCm: one gfx target, its builds are
    per target) in proportion to their usable memory. A choice needs llama.cpp's device names (a device
    report); without them llama.cpp's default devices are kept and the note says what would be better.
    `names`: devices the user chose (`llamacpp_device`)."""
    budgets = device_budgets(hw)
    usable = _usable(hw, backend, budgets)
    if names:
        chosen = [b for n in names for b in usable if device_name(hw, b, backend) == n]
        if chosen:
            return _plan(hw, chosen, "split" if len(chosen) > 1 else "choose", backend, "the devices set")
    if len(usable) <= 1:
        return _plan(hw, usable, "one", backend, "")
    default = _llama_default(hw, backend, usable)
    if len(default) == len(usable) and _identical(hw, usable):
        return _plan(hw, usable, "default", backend,
                     f"{len(usable)} identical GPUs: llama.cpp splits the layers over them (its default layer split)")
    best: DevicePlan | None = None
    for b in sorted(usable, key=lambda b: (-_bandwidth(hw, b), -b.bytes, b.index)):
        one = _plan(hw, [b], "choose", backend, f"{b.label}: the fastest GPU that holds the model and its context")
        p = place(Checker(hw, model, False, one), cfg, model)
        if p.fits and p.full:
            best = one
            break
    if best is None:
        group = usable
        if backend == "rocm":  # one ROCm build serves one gfx target (Lemonade #2609: a second target crashes)
            by_arch: dict[str, list[Budget]] = {}
            for b in usable:
                by_arch.setdefault(hw.gpus[b.index].arch or "", []).append(b)  # type: ignore[index]
            group = max(by_arch.values(), key=lambda g: (sum(b.bytes for b in g), -min(b.index or 0 for b in g)))
        best = (_plan(hw, group, "split", backend, "no single GPU holds the model and its context: a layer split "
                      "in proportion to usable memory") if len(group) > 1 else
                _plan(hw, group, "choose", backend, f"{group[0].label}: the GPUs ROCm can use together"))
    if best.pinned or (best.mode == "choose" and len(default) == 1 and default[0] is best.devices[0]):
        return best if best.pinned else _plan(hw, default, "one", backend, best.reason)
    fallback = _plan(hw, default, "default" if len(default) > 1 else "one", backend, "")
    want = ", ".join(b.label for b in best.devices)
    stay = ", ".join(b.label for b in default)
    return replace(fallback, reason=f"better: {want} ({best.reason}); llama.cpp's device names for "
                   f"{backend or 'the backend'} are unknown (give `llama-server --list-devices` output), so "
                   f"llama.cpp's default devices stay: {stay}")


def split_parts(lay: Layout, e: Estimate, cfg: Config, fractions: tuple[float, ...]) -> tuple[int, ...]:
    """Bytes per device under llama.cpp's layer split: layer il >= n_layer - ngl goes to the first device whose
    cumulative share exceeds (il - start) / min(ngl, n_layer + 1); the output layer is il = n_layer; each device
    holding layers has a compute buffer; the projector and a draft model go to the main (first) device."""
    n, nd = lay.n_layer, len(fractions)
    ngl = max(0, min(cfg.n_gpu_layers, n + 1))
    if ngl == 0 or nd == 0:
        return (0,) * nd
    start, act = n - min(ngl, n), ngl
    total, acc, cum = sum(fractions) or 1.0, 0.0, []
    for f in fractions:
        acc += f / total
        cum.append(acc)

    def dev(il: int) -> int:
        return min(nd - 1, bisect_right(cum, (il - start) / act))

    kv_share = (0, e.kv_bytes // (lay.cache.count(1) or 1), e.swa_kv_bytes // (lay.cache.count(2) or 1))
    rec_share = e.recurrent_bytes // max(1, sum(lay.recurrent))
    parts = [0] * nd
    for il in range(start, n):
        parts[dev(il)] += (lay.layer_bytes[il] - (lay.expert_bytes[il] if il < cfg.n_cpu_moe else 0)
                           + kv_share[lay.cache[il]] + (rec_share if lay.recurrent[il] else 0))
    if ngl > n:
        parts[dev(n)] += lay.out_bytes
    for d in range(nd):
        if parts[d]:
            parts[d] += e.compute_bytes
    parts[0] += e.mmproj_bytes + e.draft_bytes
    return tuple(parts)


class Checker:
    """Estimates for one model (each configuration once) against the budgets (GPU part vs GPU budget,
    the rest vs RAM)."""

    def __init__(self, hw: HardwareFacts, model: ModelFacts, cpu_only: bool, plan: DevicePlan | None = None):
        self.model = model
        self.gpu, self.ram = budgets(hw, cpu_only)
        self.plan = None if cpu_only or self.gpu is None else plan
        if self.plan is not None and self.plan.devices:
            devs = self.plan.devices
            kind = devs[0].device if len({d.device for d in devs}) == 1 else "gpu"
            self.gpu = devs[0] if len(devs) == 1 else Budget(
                sum(d.bytes for d in devs), kind, " + ".join(f"{d.label} {d.gib:.1f} GiB" for d in devs))
        self.devices: tuple[Budget, ...] = self.plan.devices if self.plan is not None and self.plan.devices else (
            (self.gpu,) if self.gpu is not None else ())
        self.unified = self.gpu is not None and self.gpu.device == "unified"
        self._layouts: dict[tuple[str, str, bool], Layout] = {}
        self._estimates: dict[Config, Estimate] = {}
        self._parts: dict[int, tuple[int, ...]] = {}  # id(estimate) -> bytes per device

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
            if len(self.devices) > 1:
                self._parts[id(e)] = split_parts(lay, e, cfg, self.plan.fractions)  # type: ignore[union-attr]
        return e

    def parts(self, e: Estimate) -> tuple[int, ...]:
        """Bytes on each device of the plan (one device: the estimate's GPU part)."""
        return self._parts.get(id(e), (e.gpu_bytes,) if self.devices else ())

    def gpu_ok(self, e: Estimate) -> bool:
        """Each device's part fits its budget (monotone in GPU layers and in experts kept on the GPU)."""
        if self.gpu is None:
            return True
        if len(self.devices) == 1:
            return e.gpu_bytes <= self.gpu.bytes
        return all(p <= d.bytes for p, d in zip(self.parts(e), self.devices, strict=True))

    def host_ok(self, e: Estimate) -> bool:
        """What stays in system RAM fits it (unified memory: everything comes out of RAM, an iGPU beside a
        dGPU: its part too)."""
        if self.ram.bytes <= 0:
            return True
        if self.gpu is None or self.unified:
            return e.total_bytes <= self.ram.bytes
        if len(self.devices) > 1:
            shared = sum(p for p, d in zip(self.parts(e), self.devices, strict=True) if d.device == "unified")
            return e.cpu_bytes + shared <= self.ram.bytes
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
