"""detect() beyond GPUs: AMD XDNA/XDNA2 NPUs, Intel dGPU VRAM from xe / i915 sysfs, NVIDIA MIG instances;
every one degrades to an absent fact with a reason. Trees and outputs: tests/fixtures/detect (README)."""

from __future__ import annotations

import os

from facts import classify, detect
from facts.detect import _npu, _nvidia
from tests.facts.detect_helpers import FIXTURES, copy_tree, fake_tool

SMI = FIXTURES / "nvidia-smi"
GIB = 1 << 30
NPU_PCI = "sys/bus/pci/devices/0000:c6:00.1"


def linux(root, **env):
    return detect(root=root, env={"PATH": "", **env}, platform="linux")


# --- AMD NPU ---------------------------------------------------------------------------------------------

def test_amdxdna_accel_device_is_an_available_xdna2_npu():
    hw = linux(FIXTURES / "npu-strix-halo-amdxdna")
    assert (hw.npu.name, hw.npu.family, hw.npu.available) == ("RyzenAI-npu5", "XDNA2", True)
    assert hw.npu.provenance["family"] == "sysfs /sys/class/accel/accel0/device (vbnv RyzenAI-npu5)"
    assert "flm:npu" in hw.backends  # FastFlowLM's recipe row needs an XDNA2 NPU
    assert not any(a.fact.startswith("npu") for a in hw.absent)


def test_npu_without_its_device_node_is_present_not_available(tmp_path):
    root = copy_tree("npu-strix-halo-amdxdna", tmp_path)
    (root / "dev/accel/accel0").unlink()  # a container started without --device=/dev/accel
    hw = linux(root)
    assert hw.npu.family == "XDNA2" and hw.npu.available is False
    assert any("/dev/accel/accel0 is missing or not accessible" in w for w in hw.warnings)
    assert "flm:npu" not in hw.backends


def test_npu_without_the_amdxdna_driver_falls_back_to_the_pci_id(tmp_path):
    root = copy_tree("npu-strix-halo-amdxdna", tmp_path)
    os.unlink(root / "sys/class/accel/accel0/device")
    os.unlink(root / NPU_PCI / "driver")
    hw = linux(root)
    assert (hw.npu.family, hw.npu.available) == ("XDNA2", False)
    assert "PCI 1022:17f0 rev 0x11" in hw.npu.provenance["family"]
    (absent,) = [a for a in hw.absent if a.fact == "npu.available"]
    assert "no driver is bound (amdxdna not loaded)" in absent.reason


def test_first_generation_xdna_is_named_but_runs_no_npu_recipe(tmp_path):
    # Phoenix / Hawk Point: device 0x1502 reported as RyzenAI-npu1 (library id 66895616432)
    root = copy_tree("npu-strix-halo-amdxdna", tmp_path)
    (root / NPU_PCI / "device").write_text("0x1502\n")
    (root / NPU_PCI / "vbnv").write_text("RyzenAI-npu1\n")
    hw = linux(root)
    assert (hw.npu.family, hw.npu.available) == ("XDNA", False)
    assert any("need XDNA2" in w for w in hw.warnings) and "flm:npu" not in hw.backends


def test_no_npu_is_an_absent_fact_with_where_it_looked():
    hw = linux(FIXTURES / "linux-this-machine")
    assert hw.npu is None
    (absent,) = [a for a in hw.absent if a.fact == "npu"]
    assert "/sys/class/accel" in absent.reason and "1022:17f0" in absent.reason


def test_windows_pci_keys_name_the_npu():
    # real enumeration keys / hardware ids: an HP Krackan laptop (library id 61472071010), an ASUS Strix
    # (library id 58742236276), a Phoenix / Hawk Point id as RyzenAI installers check it (library id 36741152405)
    krackan = _npu.npu_from_pci_keys(["VEN_10DE&DEV_2702&SUBSYS_00000000&REV_A1",
                                      "VEN_1022&DEV_17F0&SUBSYS_8EF8103C&REV_20"], "registry")
    assert (krackan.family, krackan.available) == ("XDNA2", True)
    assert krackan.provenance["family"] == "registry VEN_1022&DEV_17F0&SUBSYS_8EF8103C&REV_20"
    strix = _npu.npu_from_pci_keys([r"PCI\VEN_1022&DEV_17F0&SUBSYS_20CF1043&REV_10\A"], "pnputil")
    assert strix.family == "XDNA2"
    phoenix = _npu.npu_from_pci_keys([r"PCI\VEN_1022&DEV_1502&REV_00"], "pnputil")
    assert (phoenix.family, phoenix.available) == ("XDNA", False)
    assert _npu.npu_from_pci_keys(["VEN_1022&DEV_14E8&SUBSYS_88D1103C&REV_00"], "registry") is None


def test_windows_npu_probe_off_windows_degrades():
    hw = detect(platform="win32", env={"PATH": ""}, root=FIXTURES / "linux-this-machine")
    assert hw.npu is None
    assert any(a.fact == "npu" and "winreg" in a.reason for a in hw.absent)


# --- Intel dGPU VRAM on Linux ------------------------------------------------------------------------------

def test_xe_tile_vram_is_the_dgpu_memory():
    hw = linux(FIXTURES / "intel-xe-b580")
    (g,) = hw.gpus
    assert (g.marketing_name, g.dedicated_bytes, g.integrated) == ("Arc B580", 12 * GIB, False)
    assert g.provenance["dedicated_bytes"] == "sysfs /sys/bus/pci/devices/0000:03:00.0/tile0/physical_vram_size_bytes"
    assert classify(hw).id == "intel-xe2-bmg-g21-discrete-12gb-bw3"


def test_xe_sums_every_tile(tmp_path):
    root = copy_tree("intel-xe-b580", tmp_path)
    tile1 = root / "sys/bus/pci/devices/0000:03:00.0/tile1/memory"  # the per-tile `memory/` layout some kernels use
    tile1.mkdir(parents=True)
    (tile1 / "physical_vram_size_bytes").write_text("12884901888\n")
    assert linux(root).gpus[0].dedicated_bytes == 24 * GIB


def test_i915_lmem_total_bytes_of_the_dkms_driver():
    (g,) = linux(FIXTURES / "intel-i915-a770-dkms").gpus
    assert (g.marketing_name, g.dedicated_bytes) == ("Arc A770 16GB", 16 * GIB)
    assert g.provenance["dedicated_bytes"] == "sysfs /sys/class/drm/card0/lmem_total_bytes"


def test_mainline_i915_publishes_no_vram_and_says_so(tmp_path):
    root = copy_tree("intel-i915-a770-dkms", tmp_path)
    (root / "sys/class/drm/card0/lmem_total_bytes").unlink()
    hw = linux(root)
    assert hw.gpus[0].dedicated_bytes is None
    (absent,) = [a for a in hw.absent if a.fact == "gpus[0].dedicated_bytes"]
    assert "mainline i915" in absent.reason and "--llama-devices" in absent.reason


def test_intel_gpu_in_the_igpu_slot_is_integrated(tmp_path):
    root = copy_tree("intel-i915-a770-dkms", tmp_path)
    pci = root / "sys/bus/pci/devices"
    (pci / "0000:03:00.0").rename(pci / "0000:00:02.0")
    (root / "sys/class/drm/card0/lmem_total_bytes").unlink()
    (pci / "0000:00:02.0/device").write_text("0x4680\n")  # Alder Lake-S UHD 770
    (g,) = linux(root).gpus
    assert g.integrated is True and g.unified is True and "integrated-GPU slot" in g.provenance["integrated"]


def test_junk_in_intel_memory_files_never_raises(tmp_path):
    root = copy_tree("intel-xe-b580", tmp_path)
    (root / "sys/bus/pci/devices/0000:03:00.0/tile0/physical_vram_size_bytes").write_text("lots\n")
    hw = linux(root)  # the file exists, so a discrete GPU; its size is unknown, not 0
    assert hw.gpus[0].dedicated_bytes is None and hw.gpus[0].integrated is not True
    assert any(a.fact == "gpus[0].dedicated_bytes" and "physical_vram_size_bytes" in a.reason for a in hw.absent)


# --- NVIDIA MIG -----------------------------------------------------------------------------------------

def _mig_tool(tmp_path, listing_body: str | None = None):
    listing = listing_body or f"exec /bin/cat '{SMI / '2xa100-80gb-mig-L.txt'}'"
    body = f'if [ "$1" = "-L" ]; then {listing}; else exec /bin/cat \'{SMI / "2xa100-80gb-query-assembled.csv"}\'; fi'
    fake_tool(tmp_path / "bin", "nvidia-smi", body)
    return f"{tmp_path / 'bin'}:/bin"


def test_nvidia_smi_list_parses_gpus_and_mig_instances():
    gpus = _nvidia.parse_smi_list((SMI / "2xa100-80gb-mig-L.txt").read_text())
    assert [(g["index"], len(g["mig"])) for g in gpus] == [(0, 2), (1, 2)]
    assert gpus[1]["mig"][0] == {"profile": "1g.10gb", "device": 0, "uuid": "MIG-d5a46a2e-1d77-575d-99e3-1f96c8555a2e"}


def test_mig_instances_replace_their_gpu_and_its_memory_is_no_budget(tmp_path):
    hw = linux(FIXTURES / "linux-this-machine", PATH=_mig_tool(tmp_path))
    assert [g.name for g in hw.gpus] == ["NVIDIA A100-SXM4-80GB MIG 1g.10gb"] * 4
    assert [g.uuid for g in hw.gpus][:2] == ["MIG-a686709d-6dc2-542a-8851-0d2508448c10",
                                            "MIG-53864714-0a66-5df2-9007-9268e30d9a72"]
    assert {g.arch for g in hw.gpus} == {"sm_80"} and all(g.dedicated_bytes is None for g in hw.gpus)
    assert all(any(a.fact == f"gpus[{i}].dedicated_bytes" and "1g.10gb" in a.reason for a in hw.absent)
               for i in range(4))
    assert sum("is in MIG mode" in w for w in hw.warnings) == 2


def test_cuda_visible_devices_picks_a_mig_instance_by_uuid(tmp_path):
    path = _mig_tool(tmp_path)
    hw = linux(FIXTURES / "linux-this-machine", PATH=path, CUDA_VISIBLE_DEVICES="MIG-d5a46a2e")
    (g,) = hw.gpus
    assert g.uuid == "MIG-d5a46a2e-1d77-575d-99e3-1f96c8555a2e" and g.index == 1


def test_failing_list_keeps_the_whole_gpus_and_says_why(tmp_path):
    hw = linux(FIXTURES / "linux-this-machine", PATH=_mig_tool(tmp_path, "echo 'Failed' >&2; exit 3"))
    assert [g.dedicated_bytes for g in hw.gpus] == [81920 << 20, 81920 << 20]
    assert any(a.fact == "gpus[nvidia] MIG instances (nvidia-smi -L)" and "exit status 3" in a.reason
               for a in hw.absent)


def test_nvml_mig_values_give_exact_instance_memory():
    parent = _nvidia.gpu_from_nvml({"index": 0, "name": "NVIDIA A100-SXM4-80GB", "cc": (8, 0),
                                    "uuid": "GPU-9c73eb7b-8d6d-6c0e-dc13-97873e2ede40", "memory_total": 81920 << 20})
    mig = _nvidia.gpu_from_mig(parent, {"uuid": "MIG-a686709d-6dc2-542a-8851-0d2508448c10", "profile": "1g.10gb",
                                        "memory_total": 9728 << 20, "memory_free": 9600 << 20}, "NVML")
    assert (mig.name, mig.arch, mig.dedicated_bytes, mig.index) == ("NVIDIA A100-SXM4-80GB MIG 1g.10gb", "sm_80",
                                                                   9728 << 20, 0)
    assert mig.provenance["dedicated_bytes"] == "NVML MIG device memory"


def test_a_mig_instance_is_classified_by_its_slice_not_the_whole_gpu(tmp_path):
    a = classify(linux(FIXTURES / "linux-this-machine", PATH=_mig_tool(tmp_path)))
    # four 1g.10gb slices of A100 80GB: 10 GB -> the 8 GB bucket, 1/8 of 2039 GB/s -> bw2; never the 80 GB card
    assert a.id == "nvidia-ampere-sm_80-discrete-8gb-bw2-x4" and a.count == 4
    assert a.confidence == "low" and any("MIG profile 10 GB" in r for r in a.reasons)
