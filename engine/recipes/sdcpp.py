"""The sd-cpp recipe (stable-diffusion.cpp's sd-server): `sd-cpp_backend` and memory/performance flags in
`sdcpp_args` so an image model fits: weights offloaded to RAM, VAE tiling, flash attention in the diffusion
model, graph segmentation to the free VRAM, and the weight type as a last-resort memory knob.

Facts (sd.cpp master-820 / master-789, Lemonade's pins; docs/performance.md): `--offload-to-cpu` keeps weights
in RAM and stages them to the GPU "without reducing generation speed"; `--diffusion-fa` saves memory and is
faster on CUDA, slower on most other backends; `--vae-tiling` decodes in tiles; `--max-vram -1` segments each
pass to the free VRAM (1 GiB spare); `--type T` converts weights at load. Lemonade itself passes
`--vae-tiling --diffusion-fa` on Vulkan and reserves `-m --model --diffusion-model --llm --vae -v
--listen-port` (sdcpp_server.cpp). steps / cfg_scale / width / height are quality: out of scope.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from engine.errors import ParamError
from engine.recipes._guard import change, is_user, note, refuse_unless_forced, value
from engine.recipes._spec import ParamSpec
from engine.recipes.base import Guarded, Recipe
from engine.verdict import MemoryVerdict

if TYPE_CHECKING:
    from engine.resolve import Decision
    from engine.trace import TraceRecorder
    from facts.models import HardwareFacts, ModelFacts

_SELF = "engine/recipes/sdcpp.py"
RESERVED_FLAGS: frozenset[str] = frozenset({"-m", "--model", "--diffusion-model", "--llm", "--vae", "-v",
                                            "--listen-port"})
LEMONADE_VULKAN_FLAGS = {"sdcpp_vae_tiling": "--vae-tiling", "sdcpp_diffusion_fa": "--diffusion-fa"}
WEIGHT_TYPES = ("f16", "bf16", "q8_0", "q6_K", "q5_K", "q5_0", "q4_K", "q4_0")  # ggml type names sd.cpp accepts
_SWITCHES = {"sdcpp_offload_to_cpu": "--offload-to-cpu", "sdcpp_vae_tiling": "--vae-tiling",
             "sdcpp_diffusion_fa": "--diffusion-fa"}
_ON = ("on", "default")

SPECS: tuple[ParamSpec, ...] = (
    ParamSpec("sdcpp_offload_to_cpu", "keep weights in RAM, stage them to the GPU when needed (--offload-to-cpu)",
              words=_ON, flag="--offload-to-cpu"),
    ParamSpec("sdcpp_vae_tiling", "decode the VAE in tiles to bound its memory (--vae-tiling)", words=_ON,
              flag="--vae-tiling"),
    ParamSpec("sdcpp_diffusion_fa", "flash attention in the diffusion model (--diffusion-fa)", words=_ON,
              flag="--diffusion-fa"),
    ParamSpec("sdcpp_max_vram", "VRAM budget in GiB for segmented execution (--max-vram); 'free-vram' = -1 (the "
              "free VRAM, 1 GiB spare), 'auto' = the memory fit decides", 1, 1024, ("free-vram", "auto", "default"),
              "--max-vram"),
    ParamSpec("sdcpp_weight_type", "convert weights at load (--type); a memory knob, 'auto' = only when the model "
              "fits nowhere otherwise", words=(*WEIGHT_TYPES, "auto", "default"), flag="--type"),
)


def args(values: Mapping[str, Any]) -> list[str]:
    from pydantic_core import PydanticCustomError

    out: list[str] = []
    for spec in SPECS:
        if spec.name not in values:
            continue
        try:
            v = spec.validate(values[spec.name])
        except PydanticCustomError as err:
            raise ParamError(f"{spec.name}: {err.message()}") from None
        if v in ("default", "auto"):
            continue
        if spec.name in _SWITCHES:
            out.append(_SWITCHES[spec.name])
        else:
            out += [spec.flag, "-1" if v == "free-vram" else str(v)]  # type: ignore[list-item]
    if set(out) & RESERVED_FLAGS:
        raise ParamError(f"reserved sd-server flag rendered: {out}")
    return out


def _registry_args(model: ModelFacts) -> tuple[str, ...]:
    """The model's own sdcpp_args in Lemonade's registry (recipe_options), e.g. Qwen-Image's."""
    from facts.registry import load_registry

    entry = load_registry().get(model.name or "", {})
    opts = entry.get("recipe_options") if isinstance(entry, dict) else None
    raw = opts.get("sdcpp_args") if isinstance(opts, dict) else None
    return tuple(raw.split()) if isinstance(raw, str) else ()


def _memory(decisions: dict[str, Decision], hw: HardwareFacts, model: ModelFacts,
            rec: TraceRecorder) -> MemoryVerdict:
    from facts import sd_memory

    f = sd_memory.fit(hw, model)
    note(rec, "sdcpp-memory-fit", f.describe())
    if value(decisions, "sdcpp_max_vram") == "auto":
        big = f.gpu_budget is not None and not f.unified and f.weights > f.gpu_budget
        change(decisions, "sdcpp_max_vram", "free-vram" if big else "default", "sdcpp-memory-fit",
               "facts/sd_memory.py", rec, "the weights exceed the GPU budget: segment each pass to the free VRAM"
               if big else "the weights fit the GPU budget: no segmentation")
    if value(decisions, "sdcpp_weight_type") == "auto":
        sixteen = (model.quant or "F16").upper() in ("F16", "BF16", "F32") or not model.quant
        if f.fits_anywhere or not sixteen:
            change(decisions, "sdcpp_weight_type", "default", "sdcpp-memory-fit", "facts/sd_memory.py", rec,
                   "the weights fit as they are" if f.fits_anywhere else "already quantised: kept")
        else:
            half = sd_memory.fit(hw, model, weights=(model.file_bytes or 0) // 2)
            change(decisions, "sdcpp_weight_type", "q8_0" if half.fits_anywhere else "default", "sdcpp-memory-fit",
                   "facts/sd_memory.py", rec, "16-bit weights fit neither GPU nor RAM; q8_0 at load halves them"
                   if half.fits_anywhere else "does not fit even at q8_0")
    fits = f.fits_anywhere or value(decisions, "sdcpp_weight_type") not in ("default", "auto")
    if not fits:
        note(rec, "sdcpp-memory-fit", "DOES NOT FIT: the model needs more memory than this machine has")
    return MemoryVerdict("estimated" if fits else "no", total_bytes=f.need, budget_bytes=f.gpu_budget,
                         reason=None if fits else f"{model.name or 'the image model'} does not fit: {f.describe()}")


class SdCpp(Recipe):
    name = "sd-cpp"
    backend_key = "sd-cpp_backend"  # sic: Lemonade's key has a hyphen, its args key does not
    args_key = "sdcpp_args"
    needs = "an x86_64/arm64 CPU on Linux, Windows or macOS"
    specs = SPECS

    def fit_facts(self, hw: HardwareFacts, model: ModelFacts) -> Mapping[str, Any] | None:
        from facts.sd_memory import fit_context

        return fit_context(hw, model)

    def guard(self, decisions: dict[str, Decision], hw: HardwareFacts, model: ModelFacts, rec: TraceRecorder,
              *, memory_fit: bool, scenario: str, force: bool) -> Guarded:
        verdict = _memory(decisions, hw, model, rec) if memory_fit else None
        for p in ("sdcpp_max_vram", "sdcpp_weight_type"):  # unresolved `auto` renders nothing
            if value(decisions, p) == "auto":
                change(decisions, p, "default", "sdcpp-memory-fit", _SELF, rec, "no memory fit: left to sd-server")
        if value(decisions, "backend") == "vulkan":
            for p, flag in LEMONADE_VULKAN_FLAGS.items():
                if value(decisions, p) == "on":
                    change(decisions, p, "default", "sdcpp-lemonade-vulkan", _SELF, rec,
                           f"Lemonade already passes {flag} on Vulkan")
        self._keep_registry_args(decisions, model, rec)
        return refuse_unless_forced(verdict, force)

    @staticmethod
    def _keep_registry_args(decisions: dict[str, Decision], model: ModelFacts, rec: TraceRecorder) -> None:
        """A non-empty sdcpp_args replaces the registry's own for the model (Lemonade's args scoping): carry those
        flags over, or render nothing when one of them is not in our vocabulary."""
        own = _registry_args(model)
        if not own or not args({p: d.value for p, d in decisions.items()}):
            return
        by_flag = {flag: p for p, flag in _SWITCHES.items()}
        if not set(own) <= set(by_flag):
            for spec in SPECS:
                d = decisions.get(spec.name)
                if d is not None and d.value != "default" and not is_user(d):
                    change(decisions, spec.name, "default", "sdcpp-registry-args", _SELF, rec,
                           f"the registry's sdcpp_args ({' '.join(own)}) would be replaced; left to Lemonade")
            return
        vulkan = value(decisions, "backend") == "vulkan"
        for flag in own:
            p = by_flag[flag]
            if vulkan and p in LEMONADE_VULKAN_FLAGS:
                continue
            change(decisions, p, "on", "sdcpp-registry-args", _SELF, rec,
                   f"Lemonade's registry sets {flag} for {model.name}; a request's sdcpp_args replaces the model's")

    def args(self, values: Mapping[str, Any]) -> list[str]:
        return args(values)
