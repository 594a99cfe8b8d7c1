"""Per-device memory budgets for one model: VRAM, APU carve-out + GTT, Apple working set, RAM (one per GPU)."""

from __future__ import annotations

from dataclasses import dataclass

from facts.models import GIB, GPU, HardwareFacts

DEFAULT_MARGIN = GIB  # llama.cpp --fit-target default: 1024 MiB per device


@dataclass(frozen=True)
class Budget:
    """Bytes a device may use for one model, and how that number was reached (for notes)."""

    bytes: int
    device: str  # "gpu" | "unified" | "cpu"
    explain: str
    index: int | None = None  # the GPU's position in HardwareFacts.gpus (None: RAM, or a sum of GPUs)
    label: str = ""  # the GPU's name, for notes and `engine memory`

    @property
    def gib(self) -> float:
        return self.bytes / GIB


def _gib(n: int) -> str:
    return f"{n / GIB:.1f} GiB"


def ram_budget(hw: HardwareFacts, margin: int = DEFAULT_MARGIN) -> Budget:
    """System RAM for a CPU-only load: available (or total) RAM minus the margin."""
    mem = hw.memory
    if mem.available_bytes is not None:
        base, what = mem.available_bytes, f"available RAM {_gib(mem.available_bytes)}"
    elif mem.total_bytes is not None:
        base, what = mem.total_bytes, f"RAM {_gib(mem.total_bytes)}"
    else:
        return Budget(0, "cpu", "RAM unknown")
    return Budget(max(0, base - margin), "cpu", f"{what} − margin {_gib(margin)}")


def _primary_gpu(hw: HardwareFacts) -> GPU | None:
    gpus = [g for g in hw.gpus if (g.dedicated_bytes or g.shared_bytes)
            or ((g.unified or g.integrated) and hw.memory.total_bytes)]
    if not gpus:
        return None

    def key(g: GPU) -> tuple[int, int]:
        unified = bool(g.unified or g.integrated)
        pool = (g.dedicated_bytes or 0) + ((g.shared_bytes or 0) if unified else 0)
        return (0 if g.device_class == "display-igpu" else 1, pool)

    return max(gpus, key=key)


def gpu_budget(hw: HardwareFacts, margin: int = DEFAULT_MARGIN) -> Budget | None:
    """The GPU memory one model may use on the primary GPU: VRAM (discrete), carve-out + GTT (AMD APU),
    working set (Apple). Unified memory is capped by free system RAM; memory already in use (free_bytes) is
    respected. device_budgets gives every GPU's."""
    g = _primary_gpu(hw)
    if g is None:
        return None
    return budget_of(hw, g, margin)


def _has_memory(hw: HardwareFacts, g: GPU) -> bool:
    return bool(g.dedicated_bytes or g.shared_bytes) or bool((g.unified or g.integrated) and hw.memory.total_bytes)


def device_budgets(hw: HardwareFacts, margin: int = DEFAULT_MARGIN) -> tuple[Budget, ...]:
    """One budget per GPU a model may be placed on (llama.cpp's --fit-target margin on each), in the order
    of HardwareFacts.gpus. A display-only iGPU (a 2-CU desktop iGPU) is left out next to a GPU with memory."""
    gpus = [(i, g) for i, g in enumerate(hw.gpus) if _has_memory(hw, g)]
    if any(g.device_class != "display-igpu" for _, g in gpus):
        gpus = [(i, g) for i, g in gpus if g.device_class != "display-igpu"]
    return tuple(budget_of(hw, g, margin, index=i) for i, g in gpus)


def budget_of(hw: HardwareFacts, g: GPU, margin: int = DEFAULT_MARGIN, *, index: int | None = None) -> Budget:
    """One GPU's budget (see gpu_budget)."""
    if index is None:
        index = next((i for i, x in enumerate(hw.gpus) if x is g), None)
    label = g.marketing_name or g.name
    unified = bool(g.unified or g.integrated)
    if unified:
        if not g.dedicated_bytes and not g.shared_bytes:
            # an iGPU that reports no sizes (Windows): the OS lends it up to half of the RAM
            pool = (hw.memory.total_bytes or 0) // 2
            what = f"assumed shared GPU memory {_gib(pool)} (half the RAM)"
        elif g.vendor == "apple" or not g.dedicated_bytes:
            pool = g.shared_bytes or g.dedicated_bytes or 0
            what = f"GPU working set {_gib(pool)}" if g.vendor == "apple" else f"GPU-visible {_gib(pool)}"
        else:
            pool = (g.dedicated_bytes or 0) + (g.shared_bytes or 0)
            what = f"GTT {_gib(g.shared_bytes or 0)} + carve-out {_gib(g.dedicated_bytes or 0)}"
        if g.free_bytes is not None and g.free_bytes < pool:
            pool, what = g.free_bytes, f"GPU free {_gib(g.free_bytes)}"
        ram = hw.memory.available_bytes
        if ram is not None and ram + (g.dedicated_bytes or 0) < pool:
            pool, what = ram + (g.dedicated_bytes or 0), f"free RAM {_gib(ram)} + carve-out"
        return Budget(max(0, pool - margin), "unified", f"{what} − margin {_gib(margin)}", index, label)
    vram = g.dedicated_bytes or 0
    what = f"VRAM {_gib(vram)}"
    if g.free_bytes is not None and g.free_bytes < vram:
        vram, what = g.free_bytes, f"free VRAM {_gib(g.free_bytes)}"
    return Budget(max(0, vram - margin), "gpu", f"{what} − margin {_gib(margin)}", index, label)
