"""AMD NPUs (XDNA / XDNA2): Linux amdxdna accel devices and PCI ids, Windows PCI enumeration keys."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from facts.detect._probe import Probe
from facts.models import NPU

ACCEL = "/sys/class/accel"
PCI = "/sys/bus/pci/devices"
# Lemonade's rule (src/cpp/server/system_info.cpp, identify_npu_arch): AMD 1022:17f0 is XDNA2 (Strix Point,
# Strix Halo, Krackan); on Linux its PCI fallback takes revisions 0x10, 0x11, 0x20. 1022:1502 is the first
# XDNA (Phoenix, Hawk Point), which no Lemonade NPU recipe (FLM, Ryzen AI) runs on.
XDNA2_DEVICE, XDNA_DEVICE = 0x17F0, 0x1502
XDNA2_REVISIONS = (0x10, 0x11, 0x20)
_VBNV_XDNA2 = re.compile(r"RyzenAI-npu[456]\b")
_VBNV_XDNA = re.compile(r"RyzenAI-npu1\b")
_WIN_KEY = re.compile(r"VEN_1022&DEV_(?P<dev>[0-9A-F]{4})(?:&SUBSYS_[0-9A-F]{8})?(?:&REV_(?P<rev>[0-9A-F]{2}))?",
                      re.IGNORECASE)


def _family(device: int | None, revision: int | None, vbnv: str | None) -> tuple[str | None, str]:
    """(family, how) from the amdxdna device name (vbnv) or the PCI id."""
    if vbnv and _VBNV_XDNA2.search(vbnv):
        return "XDNA2", f"vbnv {vbnv.strip()}"
    if vbnv and _VBNV_XDNA.search(vbnv):
        return "XDNA", f"vbnv {vbnv.strip()}"
    if device == XDNA2_DEVICE and (revision is None or revision in XDNA2_REVISIONS):
        return "XDNA2", f"PCI 1022:17f0 rev {revision:#04x}" if revision is not None else "PCI 1022:17f0"
    if device == XDNA_DEVICE:
        return "XDNA", "PCI 1022:1502"
    return None, ""


def _driver(probe: Probe, rel: str) -> str | None:
    try:
        return os.path.basename(os.readlink(probe.path(rel)))
    except OSError:
        return None


def _accel_npu(probe: Probe) -> NPU | None:
    """An amdxdna-bound accel device: name, family, and whether its /dev/accel node can be opened."""
    try:
        names = sorted(os.listdir(probe.path(ACCEL)))
    except OSError:
        return None
    for name in names:
        dev = f"{ACCEL}/{name}/device"
        if _driver(probe, f"{dev}/driver") != "amdxdna":
            continue
        vbnv = probe.read(f"{dev}/vbnv")
        family, how = _family(probe.read_int(f"{dev}/device"), probe.read_int(f"{dev}/revision"), vbnv)
        node = f"/dev/accel/{name}"
        usable = os.access(probe.path(node), os.R_OK | os.W_OK)
        src = f"sysfs {dev}"
        prov = {"name": f"{src}/vbnv" if vbnv else f"{src}/driver (amdxdna)", "family": f"{src} ({how})",
                "available": f"{src}/driver amdxdna + {node} {'accessible' if usable else 'missing or not accessible'}"}
        if not usable:
            probe.warn(f"AMD NPU {name}: amdxdna is bound but {node} is missing or not accessible "
                       "(container without --device=/dev/accel, or not in the render group)")
        if family == "XDNA":
            probe.warn(f"AMD NPU {name}: first-generation XDNA (Phoenix / Hawk Point); Lemonade's NPU recipes "
                       "(FLM, Ryzen AI) need XDNA2")
        return NPU(name=(vbnv or "AMD NPU").strip(), family=family, available=usable and family == "XDNA2",
                   provenance=prov)
    return None


def _pci_npu(probe: Probe) -> NPU | None:
    """An AMD NPU on the PCI bus with no amdxdna accel device: present, not usable."""
    try:
        names = sorted(os.listdir(probe.path(PCI)))
    except OSError:
        return None
    for addr in names:
        base = f"{PCI}/{addr}"
        if probe.read_int(f"{base}/vendor") != 0x1022:
            continue
        device = probe.read_int(f"{base}/device")
        if device not in (XDNA2_DEVICE, XDNA_DEVICE):
            continue
        revision = probe.read_int(f"{base}/revision")
        family, how = _family(device, revision, None)
        driver = _driver(probe, f"{base}/driver")
        why = f"driver {driver} is bound, not amdxdna" if driver else "no driver is bound (amdxdna not loaded)"
        probe.warn(f"AMD NPU {addr}: present, not usable: {why}")
        probe.miss("npu.available", f"{base}: {why}")
        prov = {"family": f"sysfs {base} ({how or 'PCI id'})", "available": f"sysfs {base}/driver"}
        return NPU(name="AMD NPU", family=family, available=False, provenance=prov)
    return None


def linux_npu(probe: Probe) -> NPU | None:
    """The AMD NPU of a Linux machine, or None (and an Absent) when there is none."""
    npu = _accel_npu(probe) or _pci_npu(probe)
    if npu is None:
        probe.miss("npu", f"no amdxdna device in {ACCEL} and no AMD NPU (1022:17f0 / 1022:1502) in {PCI}")
    return npu


def npu_from_pci_keys(keys: Iterable[str], source: str) -> NPU | None:
    """Windows: the NPU among PCI enumeration keys / hardware ids such as
    `VEN_1022&DEV_17F0&SUBSYS_8EF8103C&REV_20` (HKLM\\SYSTEM\\CurrentControlSet\\Enum\\PCI) or
    `PCI\\VEN_1022&DEV_1502&REV_00` (pnputil). Lemonade on Windows takes any DEV_17F0 as XDNA2."""
    for key in keys:
        m = _WIN_KEY.search(key)
        if not m:
            continue
        device = int(m["dev"], 16)
        if device not in (XDNA2_DEVICE, XDNA_DEVICE):
            continue
        family = "XDNA2" if device == XDNA2_DEVICE else "XDNA"
        where = f"{source} {m.group(0).upper()}"
        return NPU(name="AMD NPU", family=family, available=family == "XDNA2",
                   provenance={"family": where, "available": where + " (enumerated; driver state not read)"})
    return None


def read_windows_pci_keys() -> list[str]:  # pragma: no cover - needs a Windows registry
    """Subkey names of HKLM\\SYSTEM\\CurrentControlSet\\Enum\\PCI (one per PCI device id)."""
    import winreg

    out = []
    with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, r"SYSTEM\CurrentControlSet\Enum\PCI") as key:
        i = 0
        while True:
            try:
                out.append(winreg.EnumKey(key, i))
            except OSError:
                break
            i += 1
    return out
