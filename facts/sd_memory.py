"""stable-diffusion.cpp's memory for one image model: every component's weights plus the compute buffers at the
model's default resolution, against the GPU and RAM budgets.

Facts: sd-server loads the diffusion model, text encoder and VAE together (Lemonade's registry `size` is their
sum, in GB); `--offload-to-cpu` keeps weights in RAM and stages them to the GPU when needed; flash attention in
the diffusion model saves hundreds of MB of compute buffer (sd.cpp docs/performance.md: ~600 MB for flux at
768x768); VAE tiling bounds the decoder's buffer. The compute-buffer size is an estimate.
"""

from __future__ import annotations

from dataclasses import dataclass

from facts.models import GIB, HardwareFacts, ModelFacts

MIB = 1 << 20
COMPUTE_BASE = 768 * MIB  # [estimated] context, text encoder and sampler buffers
COMPUTE_PER_MPIX = int(2.5 * GIB)  # [estimated] diffusion + VAE-decode buffers per megapixel without tiling
DEFAULT_SIZE = (512, 512)  # Lemonade's width/height defaults


def resolution(model: ModelFacts) -> tuple[int, int]:
    """The model's default image size (registry image_defaults), else Lemonade's 512x512."""
    from facts.registry import load_registry

    entry = load_registry().get(model.name or "", {})
    d = entry.get("image_defaults") if isinstance(entry, dict) else None
    if isinstance(d, dict) and isinstance(d.get("width"), int) and isinstance(d.get("height"), int):
        return d["width"], d["height"]
    return DEFAULT_SIZE


@dataclass(frozen=True)
class SdFit:
    weights: int
    compute: int
    gpu_budget: int | None  # None: no GPU
    ram_budget: int
    unified: bool

    @property
    def need(self) -> int:
        return self.weights + self.compute

    @property
    def fits_gpu(self) -> bool:
        return self.gpu_budget is not None and self.need <= self.gpu_budget

    @property
    def fits_anywhere(self) -> bool:
        """With weights offloaded to RAM (discrete) or in the shared pool (unified, CPU)."""
        if self.gpu_budget is None or self.unified:
            return self.need <= max(self.ram_budget, self.gpu_budget or 0)
        return self.weights <= self.ram_budget and self.compute <= self.gpu_budget

    def describe(self) -> str:
        g = lambda n: f"{n / GIB:.1f} GiB"  # noqa: E731
        where = "no GPU" if self.gpu_budget is None else f"GPU budget {g(self.gpu_budget)}"
        return (f"weights {g(self.weights)} + compute {g(self.compute)} (estimated) = {g(self.need)}; {where}, "
                f"RAM budget {g(self.ram_budget)}")


def fit(hw: HardwareFacts, model: ModelFacts, weights: int | None = None) -> SdFit:
    from facts.memory import gpu_budget, ram_budget

    w, h = resolution(model)
    compute = COMPUTE_BASE + int(COMPUTE_PER_MPIX * (w * h) / (1024 * 1024))
    gpu = gpu_budget(hw)
    return SdFit(weights=(model.file_bytes or 0) if weights is None else weights, compute=compute,
                 gpu_budget=gpu.bytes if gpu is not None else None, ram_budget=ram_budget(hw).bytes,
                 unified=gpu is not None and gpu.device == "unified")


def fit_context(hw: HardwareFacts, model: ModelFacts) -> dict[str, int | float | bool]:
    """Fit facts for the rule context: gpu_budget_gib and fit_full_offload (everything fits the GPU; false
    without a GPU)."""
    f = fit(hw, model)
    if f.gpu_budget is None:
        return {"fit_full_offload": False} if f.ram_budget > 0 else {}
    return {"gpu_budget_gib": round(f.gpu_budget / GIB, 2), "fit_full_offload": f.fits_gpu}
