"""Linux detection on this machine and on canned /proc + sysfs trees built from real captures."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from facts import detect
from facts.archetype import classify, nominal_gb
from facts.catalog import gfx_target
from facts.detect import _amd_sysfs, _cpu
from tests.facts.detect_helpers import FIXTURES, copy_tree

NO_TOOLS = {"PATH": ""}


def test_this_machine_live_does_not_raise_and_has_memory_and_no_gpu():
    hw = detect()
    assert hw.os.name == "linux"
    assert hw.memory.total_bytes and hw.memory.total_bytes > 0
    assert hw.gpus == ()
    assert hw.cpu.threads == len(os.sched_getaffinity(0))
    assert hw.source == "detect"


def test_captured_tree_of_this_machine_gives_the_captured_facts():
    hw = detect(root=FIXTURES / "linux-this-machine", env=NO_TOOLS, platform="linux")
    cpu = hw.cpu
    assert cpu.name == "Intel(R) Xeon(R) Processor"
    assert cpu.arch == "x86_64"
    assert (cpu.physical_cores, cpu.threads) == (2, 2)
    assert set(cpu.isa) == {"avx", "avx2", "avx512", "avx512_bf16", "avx_vnni", "f16c", "fma"}
    # uniform cpu_capacity (1024, 1024): one core type
    assert (cpu.performance_cores, cpu.efficiency_cores) == (2, 0)
    assert "cpu_capacity" in cpu.provenance["performance_cores"]
    assert hw.memory.total_bytes == 24684084 * 1024
    assert hw.memory.available_bytes == 24439204 * 1024
    assert hw.memory.nominal_gb == 24
    assert hw.memory.provenance["total_bytes"] == "/proc/meminfo MemTotal"  # v1 limit is "unlimited"
    assert hw.os.version == "Debian GNU/Linux 12 (bookworm)"
    assert hw.gpus == ()  # virtio and host-bridge PCI classes are not display devices
    assert classify(hw).id == "cpu-x86_64-avx512-24gb-bw1"


def test_strix_halo_tree_gives_unified_apu_facts_and_archetype():
    hw = detect(root=FIXTURES / "strix-halo-gtr9", env=NO_TOOLS, platform="linux")
    (gpu,) = hw.gpus
    assert (gpu.vendor, gpu.arch, gpu.compute_units, gpu.pci_id) == ("amd", "gfx1151", 40, "1002:1586")
    assert gpu.integrated is True and gpu.unified is True
    assert gpu.dedicated_bytes == 536870912  # BIOS carve-out
    assert gpu.shared_bytes == 128 << 30  # GTT
    assert gpu.provenance["dedicated_bytes"].startswith("sysfs /sys/class/drm/card1/device/mem_info_vram_total")
    assert "gfx_target_version" in gpu.provenance["arch"]
    assert gpu.marketing_name == "Radeon 8060S"  # via facts.catalog.enrich
    assert hw.cpu.name == "AMD RYZEN AI MAX+ 395 w/ Radeon 8060S"
    assert hw.memory.nominal_gb == 128
    assert "carve-out" in hw.memory.provenance["nominal_gb"]
    assert any("present, not usable" in w and "/dev/kfd" in w for w in hw.warnings)
    assert classify(hw).id == "amd-rdna3.5-gfx1151-unified-128gb-bw2"


def test_rx7900xtx_tree_pairs_kfd_node_with_drm_card():
    hw = detect(root=FIXTURES / "rx7900xtx-kfd", env=NO_TOOLS, platform="linux")
    (gpu,) = hw.gpus
    assert (gpu.arch, gpu.compute_units, gpu.pci_id) == ("gfx1100", 96, "1002:744c")
    assert gpu.integrated is False and gpu.unified is not True
    assert gpu.dedicated_bytes == 25753026560
    assert gpu.free_bytes == 25753026560 - 15960199168
    assert gpu.shared_bytes is None  # GTT is not GPU memory budget on a discrete card
    assert gpu.marketing_name == "Radeon RX 7900 XTX"
    assert any("/dev/dri/renderD128" in w for w in hw.warnings)
    assert classify(hw).id == "amd-rdna3-gfx1100-discrete-24gb-bw4"


def test_hsa_override_is_ignored_and_reported():
    hw = detect(root=FIXTURES / "rx7900xtx-kfd", env={"PATH": "", "HSA_OVERRIDE_GFX_VERSION": "11.0.2"},
                platform="linux")
    assert hw.gpus[0].arch == "gfx1100"
    assert any("HSA_OVERRIDE_GFX_VERSION=11.0.2" in w for w in hw.warnings)


@pytest.mark.parametrize(("version", "name"), [
    (110501, "gfx1151"), (110000, "gfx1100"), (110003, "gfx1103"), (90010, "gfx90a"), (90402, "gfx942"),
    (100300, "gfx1030"), (120001, "gfx1201"), (0, None),
])
def test_gfx_target_version_decoding(version, name):
    # the sysfs integer goes through the one KFD decoder, facts.catalog.gfx_target, as _amd_sysfs does
    assert gfx_target(version) == name


def test_kfd_location_id_gives_the_pci_address():
    props = _amd_sysfs.parse_properties((FIXTURES / "rx7900xtx-kfd/sys/class/kfd/kfd/topology/nodes/1/properties")
                                        .read_text())
    assert _amd_sysfs.pci_address(props) == "0000:86:00.0"


@pytest.mark.parametrize(("total_gib", "nominal"), [(15.3, 16), (23.5, 24), (30.6, 32), (62.5, 64),
                                                    (124.92, 128), (125.4, 128), (188.0, 192)])
def test_nominal_ram_rounds_up_to_a_marketed_size(total_gib, nominal):
    # MemTotal bytes as linux_memory rounds them: through the one rounding, facts.archetype.nominal_gb
    assert nominal_gb(int(total_gib * (1 << 30)) / (1 << 30)) == nominal


def test_cpulist_parsing_uses_the_kernel_hybrid_pmu_format():
    # the two lines Documentation/perf-intel-hybrid.txt shows for an Alder Lake part
    assert _cpu.parse_cpulist("0-15\n") == set(range(16))
    assert _cpu.parse_cpulist("16-23\n") == set(range(16, 24))
    assert _cpu.parse_cpulist("0,2,4-5") == {0, 2, 4, 5}


def test_cgroup_v1_memory_limit_lowers_usable_ram(tmp_path):
    root = copy_tree("linux-this-machine", tmp_path)
    cg = next((root / "sys/fs/cgroup/memory/process_api").iterdir())
    (cg / "memory.limit_in_bytes").write_text("8589934592\n")  # what `docker run --memory 8g` sets
    hw = detect(root=root, env=NO_TOOLS, platform="linux")
    assert hw.memory.total_bytes == 8 << 30
    assert hw.memory.available_bytes == 8 << 30
    assert "cgroup v1" in hw.memory.provenance["total_bytes"]
    assert hw.memory.nominal_gb == 24  # the box, not the container


def test_cgroup_v2_memory_max_and_cpu_max(tmp_path):
    root = copy_tree("linux-this-machine", tmp_path)
    (root / "proc/self/cgroup").write_text("0::/\n")  # a cgroup v2 container (its own namespace)
    (root / "sys/fs/cgroup/memory.max").write_text("4294967296\n")
    (root / "sys/fs/cgroup/cpu.max").write_text("100000 100000\n")  # --cpus=1
    hw = detect(root=root, env=NO_TOOLS, platform="linux")
    assert hw.memory.total_bytes == 4 << 30
    assert "cgroup v2 /sys/fs/cgroup/memory.max" in hw.memory.provenance["total_bytes"]
    assert hw.cpu.threads == 1 and hw.cpu.physical_cores == 1
    assert "cpu.max" in hw.cpu.provenance["threads"]
    assert any("lowered to 1" in w for w in hw.warnings)


def test_cgroup_quota_without_a_cpuinfo_count_is_the_thread_count_not_a_lowering(tmp_path):
    root = copy_tree("linux-this-machine", tmp_path)
    (root / "proc/cpuinfo").unlink()
    (root / "proc/self/cgroup").write_text("0::/\n")
    (root / "sys/fs/cgroup/cpu.max").write_text("200000 100000\n")  # --cpus=2
    hw = detect(root=root, env=NO_TOOLS, platform="linux")
    assert hw.cpu.threads == 2
    assert hw.cpu.provenance["threads"] == "cgroup v2 /sys/fs/cgroup/cpu.max (2 CPUs)"
    assert not any("lowered" in w or "None" in w for w in hw.warnings)


def test_cgroup_v2_unlimited_changes_nothing(tmp_path):
    root = copy_tree("linux-this-machine", tmp_path)
    (root / "proc/self/cgroup").write_text("0::/\n")
    (root / "sys/fs/cgroup/memory.max").write_text("max\n")
    (root / "sys/fs/cgroup/cpu.max").write_text("max 100000\n")
    hw = detect(root=root, env=NO_TOOLS, platform="linux")
    assert hw.memory.total_bytes == 24684084 * 1024
    assert hw.cpu.threads == 2


def test_cpu_affinity_of_the_real_process_is_honoured():
    code = ("import os, json; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
            "from facts import detect; hw = detect(); print(json.dumps([hw.cpu.threads, hw.cpu.provenance]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    threads, prov = json.loads(out.stdout)
    assert threads == 1
    assert prov["threads"].startswith("os.sched_getaffinity(0)") or os.cpu_count() == 1


def test_device_nodes_present_means_no_usability_warning(tmp_path):
    root = copy_tree("rx7900xtx-kfd", tmp_path)
    (root / "dev/dri").mkdir(parents=True)
    (root / "dev/kfd").write_text("")
    (root / "dev/dri/renderD128").write_text("")
    hw = detect(root=root, env=NO_TOOLS, platform="linux")
    assert hw.gpus[0].arch == "gfx1100"
    assert not any("not usable" in w for w in hw.warnings)


def test_arm64_cpuinfo_gives_neon_and_dotprod():
    hw = detect(root=FIXTURES / "arm64-rzg3l", env=NO_TOOLS, platform="linux")
    assert hw.cpu.arch == "arm64"
    assert hw.cpu.isa == ("dotprod", "neon")
    assert hw.cpu.threads == 4
    assert hw.cpu.name is None
    assert any(a.fact == "cpu.name" and "model name" in a.reason for a in hw.absent)
    assert hw.memory.total_bytes == 1887304 * 1024 and hw.memory.nominal_gb == 2


def test_jetson_gpu_comes_from_the_device_tree_model():
    hw = detect(root=FIXTURES / "jetson-agx-orin", env=NO_TOOLS, platform="linux")
    (gpu,) = hw.gpus
    assert (gpu.vendor, gpu.name, gpu.unified) == ("nvidia", "NVIDIA Jetson AGX Orin Developer Kit", True)
    assert gpu.marketing_name == "Jetson AGX Orin" and gpu.arch == "sm_87"  # catalog, by the model name
    assert gpu.provenance["name"].startswith("/proc/device-tree/model")
    assert any("device tree" in w for w in hw.warnings)
