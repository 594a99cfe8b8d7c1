"""supported_backends(): Lemonade's support matrix reproduces the recipes sections of real documents."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facts import CPU, GPU, NPU, HardwareFacts, OSInfo, from_system_info
from facts.backends import MATRIX, supported_backends

DOCS = Path(__file__).resolve().parents[1] / "fixtures" / "system-info"
CURRENT = sorted(p.name for p in DOCS.glob("*.json") if not p.name.startswith("old-schema"))


@pytest.mark.parametrize("name", CURRENT)
def test_matrix_agrees_with_lemonade_recipes_section(name):
    doc = json.loads((DOCS / name).read_text())
    hw = from_system_info(doc).model_copy(update={"backends": ()})  # as if the recipes section were missing
    want = {}
    for recipe in MATRIX:
        info = doc["recipes"][recipe]
        order = [row["backend"] for row in info["support"]]
        ok = [b for b in order if b in info["backends"] and info["backends"][b]["state"] != "unsupported"]
        if ok:
            want[recipe] = tuple(ok)
    assert supported_backends(hw) == want


def _hw(os: str, *gpus: GPU, arch: str = "x86_64", npu: NPU | None = None, backends=()) -> HardwareFacts:
    return HardwareFacts(os=OSInfo(name=os), cpu=CPU(arch=arch), gpus=gpus, npu=npu, backends=backends)


def test_cuda_needs_a_published_sm_arch():
    assert supported_backends(_hw("linux", GPU(vendor="nvidia", name="x", arch="sm_89")))["llamacpp"] == \
        ("cuda", "vulkan", "cpu")
    assert "cuda" not in supported_backends(_hw("linux", GPU(vendor="nvidia", name="GTX 1080", arch="sm_61")))[
        "llamacpp"]


def test_rocm_wildcards_cdna_linux_only_and_vllm():
    mi300 = GPU(vendor="amd", name="MI300X", arch="gfx942")
    assert supported_backends(_hw("linux", mi300))["llamacpp"] == ("vulkan", "rocm", "cpu")
    assert supported_backends(_hw("windows", mi300))["llamacpp"] == ("vulkan", "cpu")
    navi = GPU(vendor="amd", name="RX 7800 XT", arch="gfx1101")
    got = supported_backends(_hw("linux", navi))
    assert got["llamacpp"] == ("vulkan", "rocm", "cpu") and got["vllm"] == ("rocm",)
    assert "vllm" not in supported_backends(_hw("windows", navi))
    rdna2 = supported_backends(_hw("linux", GPU(vendor="amd", name="RX 6800", arch="gfx1030")))
    assert "rocm" in rdna2["llamacpp"] and "vllm" not in rdna2


def test_npu_recipes_and_system_backend():
    npu = NPU(name="AMD Ryzen AI 9 HX 370", family="XDNA2", available=True)
    win = supported_backends(_hw("windows", npu=npu))
    assert win["flm"] == ("npu",) and win["ryzenai-llm"] == ("npu",) and win["whispercpp"][0] == "npu"
    lin = supported_backends(_hw("linux", npu=npu))
    assert lin["flm"] == ("npu",) and "ryzenai-llm" not in lin
    assert supported_backends(_hw("linux"))["llamacpp"] == ("vulkan", "cpu")  # no llama-server known on PATH
    assert supported_backends(_hw("linux", backends=("llamacpp:system",)))["llamacpp"] == ("system", "vulkan", "cpu")


def test_macos_and_unknown_os():
    mac = supported_backends(_hw("macos", GPU(vendor="apple", name="Apple M4"), arch="arm64"))
    assert mac == {"llamacpp": ("metal",), "whispercpp": ("metal",), "sd-cpp": ("metal",)}
    assert supported_backends(_hw("unknown", GPU(vendor="nvidia", name="x", arch="sm_89"))) == {}
