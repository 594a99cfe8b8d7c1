"""macOS detection: sysctl and system_profiler parsing on real captures, and detect(platform="darwin") with
fake `sysctl` / `system_profiler` on PATH that print those captures."""

from __future__ import annotations

import pytest

from facts import detect
from facts.archetype import classify
from facts.detect import _macos, _memory
from tests.facts.detect_helpers import FIXTURES, fake_tool, printing_tool

MAC = FIXTURES / "macos"
GIB = 1 << 30


def test_sysctl_hw_of_an_m3_max():
    values = _macos.parse_sysctl((MAC / "m3max-16c-128gb-sysctl-hw.txt").read_text())
    assert values["hw.memsize"] == "137438953472"
    assert values["hw.osenvironment"] == ""
    cpu = _macos.cpu_from_sysctl(values)
    assert cpu.arch == "arm64"
    assert (cpu.physical_cores, cpu.threads, cpu.performance_cores, cpu.efficiency_cores) == (16, 16, 12, 4)
    assert cpu.isa == ("dotprod", "neon")
    assert cpu.name is None  # `sysctl hw` does not print machdep.cpu.brand_string


def test_sysctl_lines_of_an_m3_ultra():
    cpu = _macos.cpu_from_sysctl(_macos.parse_sysctl((MAC / "m3ultra-96gb-sysctl.txt").read_text()))
    assert cpu.name == "Apple M3 Ultra"
    assert (cpu.physical_cores, cpu.performance_cores, cpu.efficiency_cores) == (28, 20, 8)
    assert cpu.provenance["performance_cores"] == "sysctl hw.perflevel0.physicalcpu"


@pytest.mark.parametrize(("name", "model", "cores"), [
    ("m3max-40c-system_profiler.json", "Apple M3 Max", 40),
    ("m2max-30c-system_profiler.json", "Apple M2 Max", 30),
])
def test_system_profiler_json(name, model, cores):
    (d,) = _macos.parse_displays((MAC / name).read_text())
    assert (d["model"], d["cores"]) == (model, cores)
    assert d["vendor"] == "sppci_vendor_Apple"


def test_system_profiler_garbage_raises_value_error():
    with pytest.raises(ValueError):
        _macos.parse_displays("system_profiler: command interrupted")
    with pytest.raises(ValueError):
        _macos.parse_displays('{"SPDisplaysDataType": "text"}')


@pytest.mark.parametrize(("gib", "share"), [(8, 2 / 3), (16, 2 / 3), (64, 0.75), (128, 0.84), (192, 0.84),
                                            (96, (0.75 + 0.84) / 2)])
def test_working_set_estimate_follows_the_research_anchors(gib, share):
    assert _memory.apple_working_set(gib * GIB) == int(gib * GIB * share)


def _mac_bin(tmp_path):
    printing_tool(tmp_path / "bin", "sysctl", MAC / "m3max-16c-128gb-sysctl-hw.txt")
    printing_tool(tmp_path / "bin", "system_profiler", MAC / "m3max-40c-system_profiler.json")
    return {"PATH": str(tmp_path / "bin")}


def test_detect_on_darwin_with_real_outputs(tmp_path):
    hw = detect(env=_mac_bin(tmp_path), platform="darwin", root=tmp_path)
    assert hw.os.name == "macos"
    assert hw.memory.total_bytes == 128 * GIB and hw.memory.nominal_gb == 128
    (gpu,) = hw.gpus
    assert (gpu.vendor, gpu.name, gpu.compute_units) == ("apple", "Apple M3 Max", 40)
    assert gpu.unified is True and gpu.integrated is True
    assert gpu.shared_bytes == int(128 * GIB * 0.84)
    assert gpu.provenance["shared_bytes"].startswith("estimate")
    assert hw.cpu.performance_cores == 12
    assert classify(hw).id == "apple-m3-max-40c-unified-128gb-bw3"


def test_wired_limit_override_replaces_the_estimate():
    gpu = _macos.apple_gpu("Apple M2 Max", 30, 64 * GIB, wired_limit_mb=57344)
    assert gpu.shared_bytes == 57344 << 20
    assert "iogpu.wired_limit_mb" in gpu.provenance["shared_bytes"]


def test_darwin_without_tools_degrades(tmp_path):
    hw = detect(env={"PATH": ""}, platform="darwin", root=tmp_path)
    reasons = {a.fact: a.reason for a in hw.absent}
    assert reasons["cpu, memory (sysctl)"] == "sysctl: not found on PATH"
    assert reasons["gpus (system_profiler)"] == "system_profiler: not found on PATH"
    assert hw.gpus == () and hw.memory.total_bytes is None


def test_darwin_garbage_json_degrades(tmp_path):
    env = _mac_bin(tmp_path)
    fake_tool(tmp_path / "bin", "system_profiler", "echo '{not json'")
    hw = detect(env=env, platform="darwin", root=tmp_path)
    assert hw.gpus == ()
    assert any(a.fact == "gpus (system_profiler)" and a.reason.startswith("unparsable output") for a in hw.absent)
    assert hw.memory.total_bytes == 128 * GIB  # sysctl still answered


@pytest.mark.parametrize(("gib", "nominal"), [(8, 8), (18, 18), (36, 36), (96, 96), (128, 128)])
def test_mac_nominal_ram_is_the_installed_size(gib, nominal):
    # Apple sells 18 / 36 / 96 GB configurations; hw.memsize reports the installed RAM exactly
    assert _macos.mac_nominal_gb(gib * GIB) == nominal


def test_the_arch_provenance_names_the_fact_it_came_from():
    arm = _macos.cpu_from_sysctl({"hw.optional.arm64": "1"})
    assert (arm.arch, arm.provenance["arch"]) == ("arm64", "sysctl hw.optional.arm64")
    intel = _macos.cpu_from_sysctl({"machdep.cpu.brand_string": "Intel(R) Core(TM) i9-9880H CPU @ 2.30GHz"})
    assert intel.arch == "x86_64" and "brand_string" in intel.provenance["arch"]
    flags = _macos.cpu_from_sysctl({"hw.optional.avx1_0": "1"})
    assert flags.arch == "x86_64" and "avx1_0" in flags.provenance["arch"]
    unknown = _macos.cpu_from_sysctl({})
    assert unknown.arch == "unknown" and "arch" not in unknown.provenance
