"""Every collected real llama.cpp device report (tests/fixtures/llama-devices, sources in its README) gives the
expected vendor, arch, unified-ness and memory per GPU; fragments naming no device are refused with a reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from facts import FactsInputError, classify, from_llama_devices
from facts.catalog import unified_memory

DEVICES = Path(__file__).resolve().parents[1] / "fixtures" / "llama-devices"
MIB = 1024**2

# report -> per GPU (in report order): (vendor, arch, computes from the system RAM pool, total memory in MiB)
# memory None = the report names the device but not its size: an Absent says so, with the catalog estimate
EXPECTED = {
    "cuda-4070-laptop-new-init": [("nvidia", "sm_89", False, 7805)],
    "cuda-4090-and-1080ti-using-device": [("nvidia", "sm_89", False, None), ("nvidia", "sm_61", False, None)],
    "cuda-gb10-one-line-log": [("nvidia", "sm_121", True, None)],
    "cuda-gb10-total-vram-dgx-spark": [("nvidia", "sm_121", True, 122572)],
    "cuda-init-cublas-a100-80gb-pcie": [("nvidia", "sm_80", False, None)],
    "cuda-init-cublas-two-different-p40-gtx970": [("nvidia", "sm_61", False, None), ("nvidia", "sm_52", False, None)],
    "cuda-two-3090-ramalama": [("nvidia", "sm_86", False, None), ("nvidia", "sm_86", False, None)],
    "cuda-two-gpus-ollama": [("nvidia", "sm_86", False, 11909), ("nvidia", "sm_120", False, 24026)],
    "cuda-vmm-3090ti-ik-llama": [("nvidia", "sm_86", False, None)],
    "list-cpu-only-windows-jan": [],
    "list-cuda-two-gpus-and-rpc-redacted": [("nvidia", "sm_86", False, None), ("nvidia", "sm_75", False, None)],
    "list-metal-m1-8gb-bench-notes": [("apple", "apple-m1", True, 5461)],
    "list-metal-m2-pro-16gb-markdown": [("apple", "apple-m2-pro", True, 10922)],
    "list-metal-m3-max-128gb-coreml-blas": [("apple", "apple-m3-max-30c", True, 110100)],
    "list-metal-m5-pro-24gb": [("apple", "apple-m5-pro", True, 18186)],
    "metal-2023-m1-max-32gb-no-name": [("apple", None, True, 20833.34)],
    "metal-device-init-mtl0-m1-pro-whisper": [("apple", "apple-m1-pro", True, None)],
    "metal-device-init-mtl0-unnamed-apple10": [("apple", None, True, 18186.25)],
    "metal-found-device-m2-pro-2026": [("apple", "apple-m2-pro", True, None)],
    "metal-intel-mac-amd-gfx10-ollama": [("amd", None, False, 16368)],
    "metal-m1-h2ogpt": [("apple", "apple-m1", True, 5461.34)],
    "metal-m2-max-96gb-comma-decimals": [("apple", None, True, 70312.5)],
    "metal-paravirtual-ci-runner": [("apple", None, True, None)],
    "opencl-adreno-650-android": [("qualcomm", "adreno-650", True, None)],
    "opencl-adreno-830-android": [("qualcomm", "adreno-830", True, None)],
    "opencl-adreno-840-default-device": [("qualcomm", "adreno-840", True, None)],
    "opencl-qcs8550-unnamed-device": [("qualcomm", None, True, None)],
    "rocm-890m-windows": [("amd", "gfx1150", True, 22376)],
    "rocm-9060xt-and-raphael-igpu": [("amd", "gfx1200", False, 16304), ("amd", "gfx1036", True, 15479)],
    "rocm-four-v620-gfx1030": [("amd", "gfx1030", False, 30704), ("amd", "gfx1030", False, 30704), ("amd", "gfx1030", False, 30704), ("amd", "gfx1030", False, 30704)],
    "rocm-hip-four-mixed-mi100-7900xtx-radeon-vii": [("amd", "gfx908", False, None), ("amd", "gfx1100", False, None), ("amd", "gfx908", False, None), ("amd", "gfx906", False, None)],
    "rocm-hip-old-compute-capability-7900xtx-windows": [("amd", "gfx1100", False, None)],
    "rocm-init-cublas-7900xtx-windows": [("amd", "gfx1100", False, None)],
    "rocm-r9700-gfx1201-bench": [("amd", "gfx1201", False, 32624)],
    "rocm-total-vram-rpc-server-cpu-device": [("amd", "gfx1100", False, 24560)],
    "rocm-vram-free-gfx1151-64gb": [("amd", "gfx1151", True, 63720)],
    "strix-halo-observed-lines": [("amd", "gfx1151", True, 127488)],
    "strix-halo-windows-rocm-observed": [("amd", "gfx1151", True, 110511)],
    "sycl-memory-breakdown-two-arc-pro-b50": [("intel", None, False, 15881), ("intel", None, False, 15881)],
    "sycl-old-device-list-a770-ollama": [("intel", "intel-acm-g10", False, 15473.6)],
    "sycl-old-device-list-a770m-laptop": [("intel", None, False, 15473.6)],
    "sycl-table-abridged-and-list-b70": [("intel", None, False, 32656)],
    "sycl-table-arc-igpu-windows-doc": [("intel", "intel-mtl-h", True, 13578)],
    "sycl-table-bytes-a770": [("intel", "intel-acm-g10", False, 15473.6)],
    "sycl-table-ollama-intel-arc-prefix": [("intel", "intel-mtl-h", True, 62400)],
    "sycl-table-readme-level-zero-and-opencl": [("intel", "intel-acm-g10", False, 15473.6), ("intel", None, True, 51166.39)],
    "sycl-table-wrapped-a770-driver-column": [("intel", "intel-acm-g10", False, 16704)],
    "vulkan-780m-amd-open-source-driver": [("amd", "gfx1103", True, None)],
    "vulkan-amd-proprietary-5700xt-windows": [("amd", None, False, None)],
    "vulkan-coopmat-rtx2070-bench": [("nvidia", None, False, None)],
    "vulkan-lemonade-stdout-prefix-gfx1151": [("amd", "gfx1151", True, None)],
    "vulkan-lunar-lake-130v-ollama-windows": [("intel", "intel-lnl-m", True, None)],
    "vulkan-moltenvk-intel-mac-two-amd": [("amd", "gfx1030", False, None), ("amd", None, False, None)],
    "vulkan-old-format-radv-7900xtx": [("amd", "gfx1100", False, None)],
    "vulkan-old-format-rtx3060-laptop": [("nvidia", None, False, None)],
    "vulkan-radv-8060s-using-device-nested-parens": [("amd", "gfx1151", True, None)],
    "vulkan-radv-vega20-generic-name": [("amd", None, False, None)],
    "vulkan-rtx2060-freebsd": [("nvidia", None, False, 6144)],
    "vulkan-rtx3060-version-line": [("nvidia", "sm_86", False, None)],
    "vulkan-strix-halo-debian": [("amd", "gfx1151", True, None)],
    "vulkan-using-2024-7900xtx-windows": [("amd", "gfx1100", False, None)],
}


def parse(name: str, text: str | None = None):
    return from_llama_devices((DEVICES / f"{name}.txt").read_text() if text is None else text, source=name)


def facts_of(hw) -> list[tuple[str, str | None, bool, float | None]]:
    out = []
    for g in hw.gpus:
        mem = g.dedicated_bytes if g.dedicated_bytes is not None else g.shared_bytes
        out.append((g.vendor, g.arch, unified_memory(g), None if mem is None else round(mem / MIB, 2)))
    return out


def test_every_fixture_is_listed_and_documented():
    files = {p.stem for p in DEVICES.glob("*.txt")}
    assert files == set(EXPECTED)
    readme = (DEVICES / "README.md").read_text()
    assert all(f"`{name}.txt`" in readme for name in files)
    assert len(files) >= 40


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_report(name):
    hw = parse(name)
    assert facts_of(hw) == EXPECTED[name]
    for i, g in enumerate(hw.gpus):
        assert g.llama_devices and g.provenance["name"].startswith(f"llama-devices:{name}:line ")
        if g.dedicated_bytes is None and g.shared_bytes is None:  # never a guessed budget, but said why
            assert any(a.fact.startswith(f"gpus[{i}].") and "not its memory" in a.reason for a in hw.absent)
    classify(hw)  # every report classifies


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_windows_line_ends_and_log_prefixes_change_nothing(name):
    text = (DEVICES / f"{name}.txt").read_text()
    crlf = parse(name, text.replace("\n", "\r\n"))
    prefixed = parse(name, "".join(f"[stdout] {line}\n" for line in text.splitlines()))
    assert facts_of(crlf) == facts_of(prefixed) == EXPECTED[name]


def test_memory_from_the_spec_table_is_an_estimate_not_a_fact():
    hw = parse("cuda-init-cublas-a100-80gb-pcie")
    (g,) = hw.gpus
    assert g.marketing_name == "A100 80GB PCIe" and g.dedicated_bytes is None
    (absent,) = hw.absent
    assert absent.fact == "gpus[0].dedicated_bytes" and "gpus.csv sells A100 80GB PCIe with 80 GB" in absent.reason
    assert "estimate" in absent.reason and "never as a budget" in absent.reason
    a = classify(hw)
    assert a.bucket_gb == 64 and a.confidence == "medium"
    assert any("VRAM unknown: 80 GB from gpus.csv" in r for r in a.reasons)


def test_mixed_machine_keeps_every_gpu_with_its_own_arch_and_memory():
    hw = parse("rocm-hip-four-mixed-mi100-7900xtx-radeon-vii")
    assert [(g.llama_devices[0], g.arch) for g in hw.gpus] == [
        ("ROCm0", "gfx908"), ("ROCm1", "gfx1100"), ("ROCm2", "gfx908"), ("ROCm3", "gfx906")]
    hw = parse("cuda-two-gpus-ollama")
    a = classify(hw)
    assert [g.arch for g in hw.gpus] == ["sm_86", "sm_120"]
    assert [g.dedicated_bytes for g in hw.gpus] == [11909 * MIB, 24026 * MIB]
    assert a.id == "nvidia-blackwell-sm_120-discrete-24gb-bw3" and a.primary_gpus == (1,)
    assert any("secondary" in r and "sm_86" in r for r in a.reasons)


def test_sycl_tables_drop_platform_duplicates_cpus_and_the_igpu_beside_a_dgpu():
    hw = parse("sycl-table-readme-level-zero-and-opencl")
    assert [g.llama_devices for g in hw.gpus] == [("SYCL0",), ("SYCL1",)]  # opencl:gpu:0 is SYCL0 again
    assert classify(hw).id == "intel-xe-hpg-acm-g10-discrete-16gb-bw3"  # the UHD 770 iGPU is left out
    hw = parse("sycl-old-device-list-a770-ollama")
    assert [g.name for g in hw.gpus] == ["Intel(R) Arc(TM) A770 Graphics"]
    assert any("Ryzen 5 5600X3D" in w and "not a GPU" in w for w in hw.warnings)
    assert any("FPGA" in w for w in hw.warnings)


def test_non_gpu_devices_are_named_in_warnings_and_the_cpu_device_gives_ram():
    hw = parse("list-cuda-two-gpus-and-rpc-redacted")
    assert any(w.startswith("RPC[IP1:PORT1]: a remote RPC server") for w in hw.warnings)
    hw = parse("list-metal-m3-max-128gb-coreml-blas")
    assert len(hw.gpus) == 1 and any("COREML0" in w or "Core ML" in w for w in hw.warnings)
    hw = parse("rocm-total-vram-rpc-server-cpu-device")
    assert hw.cpu.name == "Intel(R) Core(TM) i7-14700K" and hw.memory.total_bytes == 80253 * MIB
    assert len(hw.gpus) == 1


def test_intel_mac_amd_gpu_through_metal_is_a_discrete_amd_gpu():
    (g,) = parse("metal-intel-mac-amd-gfx10-ollama").gpus
    assert (g.vendor, g.unified, g.dedicated_bytes) == ("amd", False, int(17163.09e6))
    assert classify(parse("metal-intel-mac-amd-gfx10-ollama")).id.startswith("amd-unknown-discrete-16gb")


def test_unnamed_metal_device_takes_the_generation_its_gpu_family_implies():
    (g,) = parse("metal-device-init-mtl0-unnamed-apple10").gpus
    assert g.name == "Metal GPU" and g.family == "apple-m5" and "MTLGPUFamilyApple10" in g.provenance["family"]
    assert classify(parse("metal-device-init-mtl0-unnamed-apple10")).id.startswith("apple-m5-unified-24gb")
    (g,) = parse("metal-paravirtual-ci-runner").gpus  # MTLGPUFamilyApple5: no Mac generation, none claimed
    assert g.family is None


def test_lunar_lake_list_and_vulkan_lines_classify_as_lunar_lake():
    text = "Available devices:\n  Vulkan0: Intel(R) Arc(TM) 140V GPU (16GB) (18413 MiB, 17645 MiB free)\n"
    a = classify(from_llama_devices(text))  # the --list-devices line quoted in library id 68854268356
    assert a.id == "intel-xe2-lnl-m-unified-32gb-bw1"  # 18 GiB of GPU memory: the 32 GB model
    assert classify(parse("vulkan-lunar-lake-130v-ollama-windows")).id.startswith("intel-xe2-lnl-m-unified")


def test_vulkan_line_without_driver_or_memory():
    # the old line format quoted in the project's issue 12 (no driver name, no memory)
    (g,) = from_llama_devices("Vulkan0: Radeon RX 7900 XTX | uma: 0 | fp16: 1 | warp size: 64").gpus
    assert (g.name, g.marketing_name, g.arch, g.unified) == ("Radeon RX 7900 XTX", "Radeon RX 7900 XTX", "gfx1100", False)


@pytest.mark.parametrize(("name", "lines", "reason"), [
    ("metal-intel-mac-amd-gfx10-ollama", (1, 5), "no llama.cpp device line"),  # buffer and tensor lines only
    ("opencl-qcs8550-unnamed-device", (1, 1), "no llama.cpp device line"),  # the OpenCL platform, not a device
    ("list-cuda-two-gpus-and-rpc-redacted", (10, 11), "which are not GPUs"),  # RPC servers only
    ("list-metal-m3-max-128gb-coreml-blas", (2, 3), "which are not GPUs"),  # the NPU and BLAS only
])
def test_fragments_that_name_no_device_are_refused_with_the_reason(name, lines, reason):
    text = "\n".join((DEVICES / f"{name}.txt").read_text().splitlines()[lines[0] - 1:lines[1]])
    with pytest.raises(FactsInputError) as err:
        from_llama_devices(text, source="fragment.txt")
    assert err.value.kind == "llama-devices" and reason in err.value.problems[0]


def test_a_backend_that_found_nothing_is_refused_naming_its_message():
    # the message of https://github.com/ggml-org/llama.cpp/issues/20142
    with pytest.raises(FactsInputError) as err:
        from_llama_devices("ggml_cuda_init: failed to initialize ROCm: no ROCm-capable device is detected\n")
    assert "no ROCm-capable device is detected" in err.value.problems[0]
