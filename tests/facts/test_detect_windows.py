"""Windows detection: `reg query` dumps of the display-class key (real captures) → GPU facts, the 64-bit
qwMemorySize (never AdapterRAM), pairing by subkey / PCI id / name, and the dispatch off Windows."""

from __future__ import annotations

from facts import detect
from facts.detect import _windows
from facts.models import GPU
from tests.facts.detect_helpers import FIXTURES

WIN = FIXTURES / "windows"


def _entries():
    names = _windows.parse_reg_query((WIN / "rtx4080super-DriverDesc.txt").read_text())
    sizes = _windows.parse_reg_query((WIN / "rtx4080super-qwMemorySize.txt").read_text())
    return _windows.merge_entries(sizes, names)


def test_reg_query_dumps_are_joined_by_subkey():
    entries = _entries()
    assert [e["subkey"] for e in entries] == ["0000", "0002"]
    assert entries[1] == {"subkey": "0002", "DriverDesc": "NVIDIA GeForce RTX 4080 SUPER",
                          "HardwareInformation.qwMemorySize": 0x3FF800000}


def test_qwmemorysize_gives_the_full_vram_past_4_gib():
    gpus, missing = _windows.gpus_from_registry(_entries())
    (gpu,) = gpus  # "Virtual Desktop Monitor" is not a GPU
    assert (gpu.vendor, gpu.name) == ("nvidia", "NVIDIA GeForce RTX 4080 SUPER")
    assert gpu.dedicated_bytes == 16376 * (1 << 20)  # what nvidia-smi reports; WMI AdapterRAM said 4095 MB
    assert gpu.provenance["dedicated_bytes"].endswith(r"\0002 HardwareInformation.qwMemorySize")
    assert missing == []


def test_matching_device_id_gives_vendor_and_pci_id():
    # verbatim from https://github.com/LibreHardwareMonitor/LibreHardwareMonitor/issues/1018
    assert _windows.pci_id_from_matching(r"PCI\VEN_1002&DEV_67DF&REV_EF") == ("amd", "1002:67df")
    assert _windows.pci_id_from_matching(r"PCI\CC_0300") == ("unknown", None)  # Microsoft Basic Display


def test_only_the_32_bit_size_is_not_trusted():
    entry = {"subkey": "0001", "DriverDesc": "Intel(R) Arc(TM) A770 Graphics",
             "MatchingDeviceId": r"PCI\VEN_8086&DEV_56A0", "HardwareInformation.MemorySize": b"\x00\x00\x00\x80"}
    (gpu,), missing = _windows.gpus_from_registry([entry])
    assert gpu.dedicated_bytes is None and gpu.pci_id == "8086:56a0"
    assert missing and "32-bit" in missing[0][1]


def test_nvml_replaces_registry_entries_by_pci_id_not_position():
    reg = [GPU(vendor="intel", name="Intel(R) UHD Graphics 770", pci_id="8086:4680", index=0),
           GPU(vendor="nvidia", name="NVIDIA GeForce RTX 4080 SUPER", pci_id="10de:2702", index=1)]
    nv = [GPU(vendor="nvidia", name="NVIDIA GeForce RTX 4080 SUPER", pci_id="10de:2702", index=0, arch="sm_89")]
    merged = _windows.merge_nvml(reg, nv)
    assert [(g.vendor, g.arch, g.index) for g in merged] == [("nvidia", "sm_89", 0), ("intel", None, 1)]


def test_windows_dispatch_off_windows_does_not_raise():
    hw = detect(platform="win32", env={"PATH": ""}, root=FIXTURES / "linux-this-machine")
    assert hw.os.name == "windows"
    assert any(a.fact == "gpus (registry)" and "winreg" in a.reason for a in hw.absent)
    assert hw.gpus == ()
