"""from_llama_devices() on real llama.cpp output, and merge() of several sources."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from facts import GPU, FactsInputError, HardwareFacts, from_llama_devices, from_system_info, merge
from facts.llamacpp import parse_device_line

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
MIB, GIB = 1024**2, 1024**3


def parse(name: str) -> HardwareFacts:
    return from_llama_devices((FIXTURES / "llama-devices" / name).read_text(), source=name)


def test_list_devices_with_vulkan_header_line():
    hw = parse("vulkan-rtx2060-freebsd.txt")
    (g,) = hw.gpus  # the ggml_vulkan line and the Vulkan0 list line are one device
    assert (g.vendor, g.name, g.llama_devices) == ("nvidia", "NVIDIA GeForce RTX 2060", ("Vulkan0",))
    assert g.dedicated_bytes == 6144 * MIB and g.free_bytes == 5136 * MIB and g.unified is False
    assert g.provenance["name"] == "llama-devices:vulkan-rtx2060-freebsd.txt:line 2"


def test_cuda_list_and_init_lines_behind_log_prefixes():
    hw = parse("cuda-two-gpus-ollama.txt")
    assert [g.llama_devices for g in hw.gpus] == [("CUDA0",), ("CUDA1",)]
    a, b = hw.gpus
    assert (a.arch, a.marketing_name, a.dedicated_bytes) == ("sm_86", "GeForce RTX 3080 Ti", 11909 * MIB)
    assert (b.arch, b.marketing_name, b.free_bytes) == ("sm_120", "RTX PRO 4000 Blackwell", 23795 * MIB)
    # ggml's system_info line: logical CPUs and the CPU features the build saw
    assert hw.cpu.threads == 24 and {"avx2", "avx_vnni", "fma"} <= set(hw.cpu.isa) and "avx512" not in hw.cpu.isa


def test_vulkan_uma_and_radv_gfx_target():
    (g,) = parse("vulkan-strix-halo-debian.txt").gpus
    assert g.vendor == "amd" and g.arch == "gfx1151" and g.unified is True and g.integrated is True
    assert g.family == "rdna3.5" and g.bandwidth_gbs == 256


def test_old_vulkan_format_without_memory():
    (g,) = parse("vulkan-old-format-rtx3060-laptop.txt").gpus
    assert g.name == "NVIDIA GeForce RTX 3060 Laptop GPU" and g.vendor == "nvidia"
    assert g.dedicated_bytes is None and g.unified is False and g.llama_devices == ("Vulkan0",)


def test_metal_name_and_working_set():
    (g,) = parse("metal-m1-h2ogpt.txt").gpus
    assert (g.vendor, g.name, g.marketing_name) == ("apple", "Apple M1", "Apple M1")
    assert g.unified is True and g.shared_bytes == int(5726.63e6) and g.llama_devices == ("MTL0",)


def test_metal_comma_decimals_without_device_name():
    (g,) = parse("metal-m2-max-96gb-comma-decimals.txt").gpus
    assert g.vendor == "apple" and g.shared_bytes == 73_728_000_000


def test_current_metal_lines_and_list_device_are_one_gpu():
    init = ("ggml_metal_init: found device: Apple M3 Max\n"
            "ggml_metal_device_init: recommendedMaxWorkingSetSize  = 51539.61 MB\n")
    (g,) = from_llama_devices(init).gpus
    assert g.shared_bytes == 51_539_610_000 and g.unified is True  # ggml prints bytes / 1e6 as "MB"
    (g,) = from_llama_devices(init + "Available devices:\n  MTL0: Apple M3 Max (49152 MiB, 49151 MiB free)\n").gpus
    assert g.llama_devices == ("MTL0",) and g.shared_bytes == 48 * GIB and g.vendor == "apple"


def test_rocm_windows_apu_total_is_the_shared_pool():
    (g,) = parse("rocm-890m-windows.txt").gpus
    assert g.marketing_name == "Radeon 890M" and g.arch == "gfx1150"
    assert g.shared_bytes == 22376 * MIB and g.dedicated_bytes is None and g.free_bytes == 22224 * MIB


def test_rocm_device_line_recovers_the_gfx_target_of_a_generic_name():
    (g,) = parse("strix-halo-windows-rocm-observed.txt").gpus
    assert g.name == "AMD Radeon(TM) Graphics" and g.arch == "gfx1151" and g.llama_devices == ("ROCm0",)
    assert g.shared_bytes == 110511 * MIB


def test_one_gpu_seen_by_two_backends_is_one_gpu():
    text = ((FIXTURES / "llama-devices" / "strix-halo-windows-rocm-observed.txt").read_text()
            + "  Vulkan0: AMD Radeon(TM) 8060S Graphics (110511 MiB, 110300 MiB free)\n")
    (g,) = from_llama_devices(text).gpus
    assert g.llama_devices == ("ROCm0", "Vulkan0")
    # ROCm's generic name alone resolves to a conservative guess; Vulkan's name settles it
    assert g.marketing_name == "Radeon 8060S"
    assert "ambiguous" not in g.provenance["marketing_name"]


def test_two_identical_cards_of_one_backend_stay_two():
    text = "Available devices:\n  CUDA0: NVIDIA GeForce RTX 3090 (24135 MiB, 23000 MiB free)\n" \
           "  CUDA1: NVIDIA GeForce RTX 3090 (24135 MiB, 24000 MiB free)\n" \
           "  Vulkan0: NVIDIA GeForce RTX 3090 (24135 MiB, 23000 MiB free)\n"
    gpus = from_llama_devices(text).gpus
    assert [g.llama_devices for g in gpus] == [("CUDA0", "Vulkan0"), ("CUDA1",)]


def test_dev_suffix_and_header_only_cpu_build():
    (g,) = from_llama_devices("Vulkan0: AMD Radeon RX 7900 XTX (RADV NAVI31) (dev p0/v1) (24560 MiB, 24000 MiB free)"
                              ).gpus
    assert g.name == "AMD Radeon RX 7900 XTX (RADV NAVI31)" and g.marketing_name == "Radeon RX 7900 XTX"
    assert from_llama_devices("Available devices:\n").gpus == ()  # a CPU-only build lists no device


@pytest.mark.parametrize("text", ["", "hello world\n", '{"devices": {}}', "llm_load_tensors: CPU buffer size = 1 MiB"])
def test_text_without_device_lines_is_an_input_error(text):
    with pytest.raises(FactsInputError) as err:
        from_llama_devices(text, source="x.txt")
    assert err.value.kind == "llama-devices" and err.value.source == "x.txt"
    assert len(err.value.problems) == 1


def test_merge_system_info_with_llama_devices():
    si = from_system_info((FIXTURES / "system-info" / "strix-halo-128gb-linux.json").read_text(), source="si.json")
    ld = parse("strix-halo-observed-lines.txt")
    hw = merge(si, ld)
    (g,) = hw.gpus
    assert g.llama_devices == ("Vulkan0",)
    assert g.dedicated_bytes == int(0.5 * GIB)  # the earlier source wins, the later one only fills gaps
    assert g.provenance["dedicated_bytes"].startswith("system-info:si.json")
    assert hw.source == "system-info:si.json + llama-devices:strix-halo-observed-lines.txt"
    assert hw.memory.nominal_gb == 128 and hw.backends == si.backends


def test_merge_fills_gaps_and_never_overwrites_with_none():
    a = HardwareFacts(gpus=(GPU(vendor="nvidia", name="NVIDIA GeForce RTX 4090", dedicated_bytes=24 * GIB),),
                      source="a")
    b = HardwareFacts(gpus=(GPU(vendor="nvidia", name="NVIDIA GeForce RTX 4090", arch="sm_89",
                                dedicated_bytes=int(23.99 * GIB), free_bytes=GIB),), source="b")
    (g,) = merge(a, b).gpus
    assert g.arch == "sm_89" and g.free_bytes == GIB and g.dedicated_bytes == 24 * GIB
    (g2,) = merge(b, a).gpus
    assert g2.arch == "sm_89" and g2.free_bytes == GIB


def test_merge_keeps_different_cards_and_resolves_absent_facts():
    si = from_system_info((FIXTURES / "system-info" / "radeon-780m-laptop-windows.json").read_text())
    assert any(a.fact == "gpus[0].shared_bytes" for a in si.absent)
    ld = from_llama_devices("ROCm0: AMD Radeon(TM) 780M Graphics (16384 MiB, 16000 MiB free)\n"
                            "CUDA0: NVIDIA GeForce RTX 4070 Laptop GPU (7805 MiB, 7546 MiB free)\n")
    hw = merge(si, ld)
    assert [g.marketing_name for g in hw.gpus] == ["Radeon 780M", "GeForce RTX 4070 Laptop GPU"]
    assert hw.gpus[0].shared_bytes == 16384 * MIB
    assert not any(a.fact == "gpus[0].shared_bytes" for a in hw.absent)  # now known
    assert merge() == HardwareFacts()


_LINES = st.sampled_from([
    "Available devices:", "  Vulkan0: NVIDIA GeForce RTX 2060 (6144 MiB, 5136 MiB free)",
    "ggml_vulkan: 0 = AMD Radeon Graphics (RADV GFX1151) (radv) | uma: 1 | fp16: 1",
    "  Device 0: NVIDIA GeForce RTX 3080 Ti, compute capability 8.6, VMM: yes, VRAM: 11909 MiB",
    "  Device 0: AMD Radeon(TM) Graphics, gfx1151 (0x1151), VMM: no, Wave Size: 32",
    "ggml_cuda_init: found 1 ROCm devices:", "ggml_metal_init: found device: Apple M3 Max",
    "recommendedMaxWorkingSetSize  = 51539,61 MB", "ROCm0: AMD Radeon(TM) Graphics (110511 MiB, 110357 MiB free)",
    "CUDA1: x (0 MiB)", "MTL0: Apple M1 (5461 MiB)",
    "found 1 SYCL devices:", "| 0| [level_zero:gpu:0]| Intel Arc A770 Graphics| 1.5| 512| 1024| 32| 16704M|",
    "  Device 1: Intel(R) FPGA Emulation Device,     compute capability 1.2,", "global mem size 16225243136",
    "ggml_opencl: device: 'QUALCOMM Adreno(TM) 830 (OpenCL 3.0 Adreno(TM) 830)'", "GPU name:   MTL0",
    "ggml_metal_device_init: GPU family: MTLGPUFamilyApple10  (1010)", "RPC[h:1]: RPC[h:1] (1 MiB, 1 MiB free)",
    "CPU: AMD Ryzen 9 (64000 MiB, 60000 MiB free)", "ggml_cuda_init: failed to initialize ROCm: none",
])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(_LINES, st.text(max_size=40)), max_size=8), st.text(max_size=12))
def test_any_text_gives_facts_or_an_input_error(lines, prefix):
    text = "\n".join(prefix + line for line in lines)
    try:
        hw = from_llama_devices(text)
    except FactsInputError as err:
        assert err.kind == "llama-devices"
    else:
        assert all(g.llama_devices for g in hw.gpus)
        labels = [d for g in hw.gpus for d in g.llama_devices]
        assert len(labels) == len(set(labels))  # each llama.cpp device lands in exactly one GPU


# the public line-level parser: one real line of each format -> what it says (also used by curate's markdown reader)
@pytest.mark.parametrize(("line", "context", "want"), [
    ("  Vulkan0: NVIDIA GeForce RTX 2060 (6144 MiB, 5136 MiB free)", None,
     ("list", "Vulkan", 0, "NVIDIA GeForce RTX 2060", 6144.0, None)),
    ("ggml_vulkan: 0 = AMD Radeon Graphics (RADV GFX1151) (radv) | uma: 1 | fp16: 1", None,
     ("vulkan", "Vulkan", 0, "AMD Radeon Graphics (RADV GFX1151)", None, "gfx1151")),
    ("ggml_vulkan: Using AMD Radeon RX 7900 XTX | fp16: 1 | warp size: 64", None,
     ("vulkan", "Vulkan", 0, "AMD Radeon RX 7900 XTX", None, None)),
    ("  Device 0: AMD Instinct MI100, gfx908:sramecc+:xnack- (0x908), VMM: no, Wave Size: 64", "ROCm",
     ("device", "ROCm", 0, "AMD Instinct MI100", None, "gfx908")),
    ("  Device 0: NVIDIA GB10, compute capability 12.1, VMM: yes, VRAM: 122572 MiB", "CUDA",
     ("device", "CUDA", 0, "NVIDIA GB10", 122572.0, "sm_121")),
    ("  Device 0: AMD Radeon RX 7900 XTX, compute capability 11.0, VMM: no", "ROCm",
     ("device", "ROCm", 0, "AMD Radeon RX 7900 XTX", None, None)),  # HIP's number is no sm_ arch
    ("  Device 0: Intel(R) Arc(TM) A770M Graphics,    compute capability 1.3,", "SYCL",
     ("device", "SYCL", 0, "Intel(R) Arc(TM) A770M Graphics", None, None)),
    ("| 0| [level_zero:gpu:0]|                Intel Arc A770 Graphics|    1.5|    512|    1024|   32| 16704M|", None,
     ("sycl-row", "SYCL", 0, "Intel Arc A770 Graphics", 16704.0, None)),
    ("ggml_metal_device_init: GPU name:   MTL0 (Apple M1 Pro)", None, ("metal-name", "MTL", 0, "Apple M1 Pro", None, None)),
    ("ggml_metal_init: recommendedMaxWorkingSetSize  = 73728,00 MB", None, ("metal-ws", "MTL", None, None, 73728.0, None)),
    ("ggml_opencl: selecting device: 'QUALCOMM Adreno(TM) (OpenCL 2.0 Adreno(TM) 650)'", None,
     ("opencl", "OpenCL", 0, "QUALCOMM Adreno(TM) 650", None, None)),
    ("I common_memory_breakdown_print: |   - SYCL0 (Intel(R) Arc(TM) Pro B50 Graphics) | 15881 = 15593 + (14278 = 1) |",
     None, ("breakdown", "SYCL", 0, "Intel(R) Arc(TM) Pro B50 Graphics", 15881.0, None)),
    ("llama_model_load_from_file_impl: using device Vulkan0 (Radeon 8060S Graphics (RADV GFX1151)) - 87722 MiB free",
     None, ("using", "Vulkan", 0, "Radeon 8060S Graphics (RADV GFX1151)", None, None)),
    ("  RPC[IP1:PORT1]: RPC[IP1:PORT1] (A MiB, B MiB free)", None, ("list", "RPC", None, "RPC[IP1:PORT1]", None, None)),
    ("ggml_cuda_init: found 1 ROCm devices (Total VRAM: 24560 MiB):", None, ("found", "ROCm", None, None, 24560.0, None)),
])
def test_parse_device_line(line, context, want):
    d = parse_device_line(line + "\r\n", context)
    assert (d.kind, d.backend, d.index, d.name, d.total_mib, d.arch) == want


@pytest.mark.parametrize("line", ["llm_load_tensors: CPU buffer size = 3442.89 MiB", "| model | size | backend |",
                                  "load_tensors:  MTL0_Mapped model buffer size = 14803.73 MiB", "",
                                  "| 0| [level_zero:gpu:0]|      Y|"])
def test_lines_that_say_nothing_about_a_device(line):
    assert parse_device_line(line) is None
