"""Detection never raises for unreadable, unparsable or missing inputs; the fact is absent with a reason."""

from __future__ import annotations

import pytest

from facts import detect
from facts.detect._probe import Probe
from tests.facts.detect_helpers import copy_tree


def test_a_file_that_cannot_be_read_even_by_root(tmp_path):
    root = copy_tree("linux-this-machine", tmp_path)
    (root / "proc/meminfo").unlink()
    (root / "proc/meminfo").mkdir()  # reading a directory fails for root too (EISDIR)
    hw = detect(root=root, env={"PATH": ""}, platform="linux")
    assert hw.memory.total_bytes is None
    assert any(a.fact == "memory.total_bytes" and "is a directory" in a.reason for a in hw.absent)
    assert hw.cpu.threads == 2  # other probes unaffected


def test_garbage_procfs_files(tmp_path):
    root = copy_tree("linux-this-machine", tmp_path)
    (root / "proc/meminfo").write_bytes(b"\xff\xfe garbage \x00\n")
    (root / "proc/cpuinfo").write_text("no colons here\n")
    (root / "sys/devices/system/cpu/cpu0/cpu_capacity").write_text("fast\n")
    hw = detect(root=root, env={"PATH": ""}, platform="linux")
    assert hw.memory.total_bytes is None
    assert any("no MemTotal" in a.reason for a in hw.absent)
    assert hw.cpu.name is None and hw.cpu.isa == ()


def test_an_empty_root(tmp_path):
    hw = detect(root=tmp_path, env={"PATH": ""}, platform="linux")
    assert hw.gpus == () and hw.memory.total_bytes is None and hw.cpu.name is None
    facts = {a.fact for a in hw.absent}
    assert {"cpu", "memory.total_bytes", "os.version", "gpus (PCI enumeration)"} <= facts


def test_an_unsupported_platform():
    hw = detect(platform="sunos5")
    assert [a.reason for a in hw.absent] == ["unsupported platform 'sunos5'"]


def test_probe_run_never_starts_a_tool_missing_from_path(tmp_path):
    probe = Probe(tmp_path, 1.0, {})  # no PATH at all
    assert probe.run(["true"], "x") is None
    assert probe.absent[0].reason == "true: not found on PATH"


def test_probe_run_on_a_tool_that_is_not_executable(tmp_path):
    (tmp_path / "tool").write_text("#!/bin/sh\necho hi\n")  # no x bit: which() does not return it
    probe = Probe(tmp_path, 1.0, {"PATH": str(tmp_path)})
    assert probe.run(["tool"], "x") is None
    assert "not found on PATH" in probe.absent[0].reason


@pytest.mark.parametrize("junk", ["-1", "0", "", "0x", "twelve", "99999999999999999999999999", "\x00\xff"])
@pytest.mark.parametrize("rel", [
    "sys/class/drm/card1/device/mem_info_vram_total", "sys/class/drm/card1/device/mem_info_gtt_total",
    "sys/class/drm/card1/device/vendor", "sys/class/drm/card1/device/device",
    "sys/class/kfd/kfd/topology/nodes/1/properties", "proc/meminfo",
])
def test_junk_in_any_amd_or_memory_file_never_raises(tmp_path, rel, junk):
    root = copy_tree("strix-halo-gtr9", tmp_path)
    text = f"simd_count {junk}\nsimd_per_cu {junk}\ngfx_target_version {junk}\n" if rel.endswith("properties") else junk
    (root / rel).write_text(text)
    hw = detect(root=root, env={"PATH": ""}, platform="linux")
    for gpu in hw.gpus:
        assert gpu.dedicated_bytes is None or gpu.dedicated_bytes >= 0


@pytest.mark.parametrize("junk", ["0", "-5", "max", "", "1.5"])
def test_junk_cgroup_limits_never_raise(tmp_path, junk):
    root = copy_tree("linux-this-machine", tmp_path)
    (root / "proc/self/cgroup").write_text("0::/\n")
    (root / "sys/fs/cgroup/memory.max").write_text(junk + "\n")
    (root / "sys/fs/cgroup/cpu.max").write_text(f"{junk} {junk}\n")
    hw = detect(root=root, env={"PATH": ""}, platform="linux")
    assert hw.memory.total_bytes == 24684084 * 1024
