"""NVIDIA detection: nvidia-smi CSV from real captures (parsed, and replayed by a fake tool on PATH), NVML
value mapping, CUDA_VISIBLE_DEVICES, and degradation (missing tool, hang, failure, garbage, no NVML)."""

from __future__ import annotations

import time

import pytest

from facts import detect
from facts.archetype import classify
from facts.detect import _nvidia
from facts.detect._probe import Probe
from tests.facts.detect_helpers import FIXTURES, copy_tree, fake_tool, printing_tool

SMI = FIXTURES / "nvidia-smi"
MIB = 1 << 20


def _rows(name):
    return _nvidia.parse_smi_csv((SMI / name).read_text())


def test_rtx4090_row_with_units_in_cells():
    (row,) = _rows("rtx4090-name-total-free.csv")
    gpu, missing = _nvidia.gpu_from_smi(row, 0)
    assert gpu.name == "NVIDIA GeForce RTX 4090"
    assert (gpu.dedicated_bytes, gpu.free_bytes) == (24564 * MIB, 24090 * MIB)
    assert missing == []
    assert gpu.provenance["dedicated_bytes"] == "nvidia-smi --query-gpu memory.total (MiB)"


def test_gb10_not_available_memory_stays_unknown():
    (row,) = _rows("gb10-name-total-free.csv")
    gpu, missing = _nvidia.gpu_from_smi(row, 0)
    assert gpu.name == "NVIDIA GB10"
    assert gpu.dedicated_bytes is None and gpu.free_bytes is None
    assert missing == ["dedicated_bytes", "free_bytes"]


def test_two_v100_rows_give_index_compute_capability_and_memory():
    rows = _rows("2xv100-index-name-cc-total.csv")
    gpus = [_nvidia.gpu_from_smi(r, i)[0] for i, r in enumerate(rows)]
    assert [g.index for g in gpus] == [0, 1]
    assert {g.arch for g in gpus} == {"sm_70"}
    assert {g.dedicated_bytes for g in gpus} == {32 << 30}
    assert rows[0]["mig.mode.current"] is None  # "[N/A]"


def test_compute_capability_twelve_is_sm_120():
    (row,) = _rows("rtx5070ti-name-cc-total.csv")
    assert _nvidia.gpu_from_smi(row, 0)[0].arch == "sm_120"


def test_pci_device_id_packs_device_high_vendor_low():
    rows = _rows("4x1080ti-pci.csv")
    assert len(rows) == 4
    assert {_nvidia.gpu_from_smi(r, 0)[0].pci_id for r in rows} == {"10de:1b06"}


def test_a_name_with_commas_is_rebuilt_from_surplus_cells():
    # constructed input (no real card name has a comma): the columns around the name must still line up
    rows = _nvidia.parse_smi_csv("index, name, memory.total [MiB]\n0, Acme, Model, X, 1024\n")
    assert rows == [{"index": "0", "name": "Acme, Model, X", "memory.total": "1024"}]


def test_garbage_is_an_error_not_a_gpu():
    with pytest.raises(ValueError, match="not nvidia-smi CSV"):
        _nvidia.parse_smi_csv("No devices were found\n")


def test_nvml_values_map_to_gpu_facts():
    # name, UUID and compute capability printed for one real machine (nvidia-smi -L and --query-gpu=compute_cap):
    # https://github.com/triton-inference-server/server/pull/8070
    gpu = _nvidia.gpu_from_nvml({"index": 1, "name": b"NVIDIA RTX 5880 Ada Generation",
                                 "uuid": "GPU-7518f6b0-991f-ce2b-3d37-c779130d3137", "cc": (8, 9),
                                 "pci_device_id": 0x1B0610DE})
    assert (gpu.name, gpu.arch, gpu.index, gpu.pci_id) == ("NVIDIA RTX 5880 Ada Generation", "sm_89", 1, "10de:1b06")
    assert gpu.uuid == "GPU-7518f6b0-991f-ce2b-3d37-c779130d3137"
    assert gpu.dedicated_bytes is None  # not given (GB10 / Jetson: NOT_SUPPORTED)
    assert gpu.provenance["arch"] == "NVML nvmlDeviceGetCudaComputeCapability"


def test_cuda_visible_devices_by_uuid_prefix_and_index():
    titan = _nvidia.gpu_from_nvml({"index": 0, "name": "NVIDIA TITAN V", "cc": (7, 0),
                                   "uuid": "GPU-b5169cef-2205-c30e-f2b3-220cfa14bafd"})
    ada = _nvidia.gpu_from_nvml({"index": 1, "name": "NVIDIA RTX 5880 Ada Generation", "cc": (8, 9),
                                 "uuid": "GPU-7518f6b0-991f-ce2b-3d37-c779130d3137"})
    keep, note = _nvidia.apply_visible_devices([titan, ada], "GPU-7518f6b0")
    assert keep == [ada] and "keeps 1 of 2" in note
    assert _nvidia.apply_visible_devices([titan, ada], "1,0")[0] == [ada, titan]
    assert _nvidia.apply_visible_devices([titan, ada], "0,7,1")[0] == [titan]  # CUDA stops at an invalid entry
    assert _nvidia.apply_visible_devices([titan, ada], "")[0] == []
    assert _nvidia.apply_visible_devices([titan, ada], None) == ([titan, ada], None)


def test_fake_nvidia_smi_on_path_is_run_for_real(tmp_path):
    printing_tool(tmp_path / "bin", "nvidia-smi", SMI / "rtx4090-name-total-free.csv")
    hw = detect(root=FIXTURES / "linux-this-machine", env={"PATH": str(tmp_path / "bin")}, platform="linux")
    (gpu,) = hw.gpus
    assert gpu.name == "NVIDIA GeForce RTX 4090" and gpu.dedicated_bytes == 24564 * MIB
    assert gpu.marketing_name == "GeForce RTX 4090" and gpu.arch == "sm_89"  # catalog enrichment
    assert classify(hw).id == "nvidia-ada-sm_89-discrete-24gb-bw4"


def test_cuda_visible_devices_is_applied_to_real_output(tmp_path):
    printing_tool(tmp_path / "bin", "nvidia-smi", SMI / "2xv100-index-name-cc-total.csv")
    env = {"PATH": str(tmp_path / "bin"), "CUDA_VISIBLE_DEVICES": "1"}
    hw = detect(root=FIXTURES / "linux-this-machine", env=env, platform="linux")
    assert len(hw.gpus) == 1 and hw.gpus[0].name == "Tesla V100-PCIE-32GB"
    assert hw.gpus[0].index == 1  # the CUDA/NVML index survives, it is what the variable counts
    assert any("CUDA_VISIBLE_DEVICES='1' keeps 1 of 2" in w for w in hw.warnings)


def test_gb10_through_the_tool_records_absent_memory(tmp_path):
    printing_tool(tmp_path / "bin", "nvidia-smi", SMI / "gb10-name-total-free.csv")
    hw = detect(root=FIXTURES / "linux-this-machine", env={"PATH": str(tmp_path / "bin")}, platform="linux")
    assert hw.gpus[0].dedicated_bytes is None
    assert any(a.fact == "gpus[0].dedicated_bytes" and "[N/A]" in a.reason for a in hw.absent)


def _nvidia_pci_tree(tmp_path):
    """This machine's tree plus one NVIDIA display-class PCI device: class 0x030000, 10de:2204 as
    `lspci -nn` shows an RTX 3090 (https://github.com/noonghunna/club-3090/pull/594)."""
    root = copy_tree("linux-this-machine", tmp_path)
    dev = root / "sys/bus/pci/devices/0000:05:00.0"
    dev.mkdir()
    for name, value in (("class", "0x030000"), ("vendor", "0x10de"), ("device", "0x2204")):
        (dev / name).write_text(value + "\n")
    return root


def test_missing_tool_leaves_a_present_not_usable_gpu(tmp_path):
    root = _nvidia_pci_tree(tmp_path)
    hw = detect(root=root, env={"PATH": str(tmp_path / "empty-bin")}, platform="linux")
    (gpu,) = hw.gpus
    assert (gpu.vendor, gpu.pci_id, gpu.dedicated_bytes) == ("nvidia", "10de:2204", None)
    assert any(a.reason == "nvidia-smi: not found on PATH" for a in hw.absent)
    assert any("present, not usable" in w for w in hw.warnings)


def test_hanging_tool_is_killed_at_the_timeout(tmp_path):
    root = _nvidia_pci_tree(tmp_path)
    fake_tool(tmp_path / "bin", "nvidia-smi", "sleep 30")
    start = time.monotonic()
    hw = detect(root=root, env={"PATH": f"{tmp_path / 'bin'}:/bin:/usr/bin"}, platform="linux", timeout=0.5)
    assert time.monotonic() - start < 5
    assert any(a.reason == "nvidia-smi: timed out after 0.5 s" for a in hw.absent)
    assert hw.gpus[0].pci_id == "10de:2204"


def test_failing_tool_reports_exit_status_and_stderr(tmp_path):
    root = _nvidia_pci_tree(tmp_path)
    msg = ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
           "Make sure that the latest NVIDIA driver is installed and running.")
    fake_tool(tmp_path / "bin", "nvidia-smi", f"echo \"{msg}\" >&2; exit 9")
    hw = detect(root=root, env={"PATH": f"{tmp_path / 'bin'}:/bin:/usr/bin"}, platform="linux")
    (absent,) = [a for a in hw.absent if a.fact == "gpus[nvidia] via nvidia-smi"]
    assert absent.reason.startswith("nvidia-smi: exit status 9: NVIDIA-SMI has failed")


def test_garbage_output_is_absent_with_a_reason(tmp_path):
    fake_tool(tmp_path / "bin", "nvidia-smi", "echo 'Segmentation fault'")
    hw = detect(root=FIXTURES / "linux-this-machine", env={"PATH": f"{tmp_path / 'bin'}:/bin"}, platform="linux")
    assert hw.gpus == ()
    assert any(a.reason.startswith("unparsable output") for a in hw.absent)


def test_real_nvml_on_a_machine_without_a_driver_degrades():
    probe = Probe("/", 3.0, {})
    assert _nvidia._nvml_values(probe) is None
    (absent,) = probe.absent
    assert absent.fact == "gpus[nvidia] via NVML" and "nvmlInit failed" in absent.reason
