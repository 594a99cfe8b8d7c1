"""Multi-GPU: one budget per device; identical GPUs split as llama.cpp's default layer split; mixed GPUs (different
memory or architecture, an iGPU beside a dGPU) choose devices, and a split over them is proportional to usable
memory. Every plan's per-device estimate fits each device's own budget."""

from __future__ import annotations

import pytest

from facts.fit import guard
from facts.memory import GIB, device_budgets, gpu_budget
from facts.models import CPU, GPU, HardwareFacts, Memory, ModelFacts, OSInfo


def dgpu(i: int, vram: int, *, name: str = "Radeon RX 7900 XTX", arch: str = "gfx1100", bw: float = 960.0,
         names: bool = True, vendor: str = "amd") -> GPU:
    dev = (f"Vulkan{i}", f"ROCm{i}") if vendor == "amd" else (f"CUDA{i}", f"Vulkan{i}")
    return GPU(vendor=vendor, name=name, marketing_name=name, arch=arch, family="rdna3", device_class="discrete",
               dedicated_bytes=vram * GIB, bandwidth_gbs=bw, unified=False, integrated=False,
               llama_devices=dev if names else ())


def igpu(i: int, *, names: bool = True) -> GPU:  # Strix Halo 128 GB: carve-out 0.5 GiB + GTT 124 GiB
    return GPU(vendor="amd", name="Radeon 8060S", marketing_name="Radeon 8060S", arch="gfx1151", family="rdna3.5",
               device_class="apu-igpu", dedicated_bytes=GIB // 2, shared_bytes=124 * GIB, bandwidth_gbs=256.0,
               unified=True, integrated=True, llama_devices=(f"Vulkan{i}", f"ROCm{i}") if names else ())


def machine(*gpus: GPU, ram: int = 128) -> HardwareFacts:
    return HardwareFacts(os=OSInfo(name="linux"), cpu=CPU(arch="x86_64", physical_cores=16, threads=32),
                         memory=Memory(total_bytes=ram * GIB, available_bytes=(ram - 4) * GIB), gpus=gpus,
                         backends=("llamacpp:vulkan", "llamacpp:rocm", "llamacpp:cpu"))


def dense(gib: float, params: float = 70.0) -> ModelFacts:
    return ModelFacts(name=f"dense-{gib}", architecture="llama", params_b=params, quant="Q4_K_M",
                      file_bytes=int(gib * GIB), trained_ctx=32768)


def check_each_device(fit) -> None:
    assert fit.fits is True
    devs = fit.devices()
    assert devs and all(d["bytes"] <= d["budget_bytes"] for d in devs), devs
    used = [d for d in devs if d["bytes"]]
    # the layers' bytes add up to the GPU part; every device that holds layers has a compute buffer of its own
    assert sum(d["bytes"] for d in devs) == fit.estimate.gpu_bytes + (len(used) - 1) * fit.estimate.compute_bytes


def test_each_gpu_has_its_own_budget():
    hw = machine(dgpu(0, 24), dgpu(1, 12, name="Radeon RX 7700 XT", arch="gfx1101", bw=432.0))
    budgets = device_budgets(hw)
    assert [b.bytes for b in budgets] == [23 * GIB, 11 * GIB] and [b.index for b in budgets] == [0, 1]
    assert gpu_budget(hw).bytes == 23 * GIB  # the primary GPU's, as before


@pytest.mark.parametrize("n", [2, 4])
def test_identical_gpus_split_the_layers_like_llama_cpp_and_each_part_fits(n):
    hw = machine(*(dgpu(i, 24, name="GeForce RTX 3090", arch="sm_86", bw=936.0, vendor="nvidia") for i in range(n)))
    model = dense(40.0 if n == 2 else 75.0)  # more than one card holds
    fit = guard(hw, model, {"backend": "cuda"}, need=8192)
    check_each_device(fit)
    assert fit.plan.mode == "default" and len(fit.plan.devices) == n
    assert fit.placed_by == "fit" and fit.placement.full  # every layer on the GPUs: llama.cpp's --fit splits them
    assert fit.params.get("device", []) in ([], ()) and "tensor_split" not in fit.changed  # nothing to emit
    shares = [d["bytes"] for d in fit.devices()]
    assert max(shares) - min(shares) < 0.25 * max(shares)  # about even, like llama.cpp's split by free memory
    assert fit.budget_bytes == n * 23 * GIB


def test_a_mixed_pair_splits_in_proportion_to_usable_memory_with_typed_flags():
    hw = machine(dgpu(0, 24), dgpu(1, 12, name="Radeon RX 7700 XT", arch="gfx1101", bw=432.0))
    fit = guard(hw, dense(28.0), {"backend": "vulkan"}, need=8192)
    check_each_device(fit)
    assert fit.plan.mode == "split" and fit.params["device"] == ("Vulkan0", "Vulkan1")
    assert fit.params["split_mode"] == "layer" and fit.params["tensor_split"] == ("23", "11")
    assert fit.placed_by == "flags"  # a tensor split turns llama.cpp's --fit off: the layers become flags
    big, small = fit.devices()
    assert big["bytes"] > small["bytes"] and abs(big["share"] - 23 / 34) < 0.01


def test_a_mixed_pair_uses_the_fastest_gpu_that_holds_the_model_alone():
    hw = machine(dgpu(0, 12, name="Radeon RX 7700 XT", arch="gfx1101", bw=432.0), dgpu(1, 24))
    fit = guard(hw, dense(10.0, params=16.0), {"backend": "vulkan"}, need=8192)
    check_each_device(fit)
    assert fit.plan.mode == "choose" and fit.params["device"] == ("Vulkan1",)  # the 960 GB/s card
    assert fit.placed_by == "fit" and "tensor_split" not in fit.changed


def test_an_igpu_beside_a_dgpu_takes_a_model_the_dgpu_cannot_hold():
    """Lemonade #2890: a 128 GB Strix Halo with an RX 7900 XTX; llama.cpp's Vulkan uses only the dGPU by default."""
    hw = machine(dgpu(0, 24), igpu(1))
    fit = guard(hw, dense(60.0, params=116.0), {"backend": "vulkan"}, need=8192)
    check_each_device(fit)
    assert fit.plan.mode == "choose" and fit.params["device"] == ("Vulkan1",)
    assert "Radeon 8060S" in fit.plan.reason
    small = guard(hw, dense(5.0, params=8.0), {"backend": "vulkan"}, need=8192)
    check_each_device(small)
    assert small.params["device"] == ("Vulkan0",)  # it fits the XTX, which is 3.75x faster


def test_without_device_names_llama_cpps_default_devices_stay_and_the_note_says_what_would_be_better():
    hw = machine(dgpu(0, 24, names=False), igpu(1, names=False))
    fit = guard(hw, dense(60.0, params=116.0), {"backend": "vulkan"}, need=8192)
    assert fit.plan.mode == "one" and fit.plan.devices[0].label == "Radeon RX 7900 XTX"  # Vulkan's default
    assert fit.params.get("device", []) in ([], ())
    assert "device names" in fit.plan.reason and "Radeon 8060S" in fit.plan.reason
    assert any(n.startswith("device choice: better: Radeon 8060S") for n in fit.notes)
    assert not fit.placement.full  # on the XTX alone it spills: said, not hidden


def test_rocm_never_splits_over_two_gfx_targets():
    """Lemonade #2609: a ROCm build serves one gfx target; a second target's kernels crash."""
    hw = machine(dgpu(0, 16, name="Radeon RX 9070 XT", arch="gfx1201", bw=640.0),
                 dgpu(1, 16, name="Radeon RX 7800 XT", arch="gfx1101", bw=624.0))
    fit = guard(hw, dense(24.0, params=40.0), {"backend": "rocm"}, need=8192)
    assert fit.plan is not None and len({d.label for d in fit.plan.devices}) == 1
    vk = guard(hw, dense(24.0, params=40.0), {"backend": "vulkan"}, need=8192)
    check_each_device(vk)
    assert vk.plan.mode == "split" and vk.params["device"] == ("Vulkan0", "Vulkan1")


def test_the_recipe_renders_llamacpp_device_and_the_split_flags():
    from engine.recommend import recommend

    hw = machine(dgpu(0, 24), dgpu(1, 12, name="Radeon RX 7700 XT", arch="gfx1101", bw=432.0))
    rec = recommend(hw, dense(28.0), scenario="chat", overrides={"backend": "vulkan"})
    opts = rec.recipe_options()
    assert opts["llamacpp_device"] == "Vulkan0,Vulkan1"
    args = opts["llamacpp_args"].split()
    assert args[args.index("--split-mode") + 1] == "layer" and args[args.index("--tensor-split") + 1] == "23,11"
    assert "-ngl" in args  # --fit is off under a tensor split
    assert "--device" not in args  # reserved by Lemonade: the device goes in llamacpp_device
    one = recommend(machine(dgpu(0, 24)), dense(5.0, params=8.0), overrides={"backend": "vulkan"})
    assert "llamacpp_device" not in one.recipe_options()  # a single GPU: nothing changes
