"""Windows probes: display-class registry keys (64-bit qwMemorySize, never AdapterRAM), CPU name, NVML."""

from __future__ import annotations

import contextlib
import platform
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from facts.detect._cpu import machine_arch
from facts.detect._probe import Probe
from facts.models import CPU, GPU, NPU, Memory, OSInfo

DISPLAY_CLASS = r"SYSTEM\CurrentControlSet\Control\Class\{4d36e968-e325-11ce-bfc1-08002be10318}"
CPU_KEY = r"HARDWARE\DESCRIPTION\System\CentralProcessor\0"
_VENDORS = {"10de": "nvidia", "1002": "amd", "8086": "intel", "qcom": "qualcomm", "5143": "qualcomm"}
_WANTED = ("DriverDesc", "MatchingDeviceId", "HardwareInformation.qwMemorySize", "HardwareInformation.MemorySize")
T = TypeVar("T")


def read_display_class() -> list[dict[str, object]]:  # pragma: no cover - needs a Windows registry
    """The display-class subkeys (`0000`, `0001`, ...) with the values we use. Windows only."""
    import winreg

    out = []
    with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, DISPLAY_CLASS) as cls:
        i = 0
        while True:
            try:
                sub = winreg.EnumKey(cls, i)
            except OSError:
                break
            i += 1
            if not sub.isdigit():
                continue
            entry: dict[str, object] = {"subkey": sub}
            try:
                with winreg.OpenKey(cls, sub) as key:
                    for name in _WANTED:
                        with contextlib.suppress(OSError):
                            entry[name] = winreg.QueryValueEx(key, name)[0]
            except OSError:  # "Properties" and access-denied subkeys
                continue
            out.append(entry)
    return out


def read_cpu_name() -> str | None:  # pragma: no cover - needs a Windows registry
    import winreg

    with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, CPU_KEY) as key:
        return str(winreg.QueryValueEx(key, "ProcessorNameString")[0]).strip() or None


def _qword(value: object) -> int | None:
    """REG_QWORD (int) or REG_BINARY (little-endian bytes) → int."""
    if isinstance(value, int):
        return value
    if isinstance(value, (bytes, bytearray)) and value:
        return int.from_bytes(bytes(value), "little")
    return None


def parse_reg_query(text: str) -> list[dict[str, object]]:
    """`reg query <display class> /s /v <name>` output → [{"subkey": "0002", name: value, ...}].

    REG_SZ stays text, REG_QWORD/REG_DWORD become int, REG_BINARY becomes bytes (as winreg returns them)."""
    entries: dict[str, dict[str, object]] = {}
    current: dict[str, object] | None = None
    for raw in text.splitlines():
        line = raw.rstrip("\r")
        if line.startswith("HKEY_"):
            sub = line.rsplit("\\", 1)[-1].strip()
            current = entries.setdefault(sub, {"subkey": sub})
            continue
        m = re.match(r"^\s+(\S.*?)\s+(REG_[A-Z_]+)\s*(.*)$", line)
        if not m or current is None:
            continue
        name, kind, data = m.group(1), m.group(2), m.group(3).strip()
        value: object = data
        if kind in ("REG_QWORD", "REG_DWORD"):
            value = int(data, 16)
        elif kind == "REG_BINARY":
            value = bytes.fromhex(data)
        current[name] = value
    return list(entries.values())


def merge_entries(*dumps: list[dict[str, object]]) -> list[dict[str, object]]:
    """Join several `reg query /v` dumps by subkey (never by position)."""
    out: dict[str, dict[str, object]] = {}
    for dump in dumps:
        for e in dump:
            out.setdefault(str(e["subkey"]), {}).update(e)
    return [out[k] for k in sorted(out)]


def _vendor_from_name(desc: str) -> str:
    low = desc.lower()
    for word, vendor in (("nvidia", "nvidia"), ("geforce", "nvidia"), ("radeon", "amd"), ("amd", "amd"),
                         ("intel", "intel"), ("qualcomm", "qualcomm"), ("adreno", "qualcomm")):
        if word in low:
            return vendor
    return "unknown"


def pci_id_from_matching(matching: str) -> tuple[str, str | None]:
    """`PCI\\VEN_1002&DEV_15BF&REV_C1` → ("amd", "1002:15bf"); ACPI Qualcomm ids → ("qualcomm", None)."""
    m = re.search(r"VEN_([0-9A-Za-z]{4})&DEV_([0-9A-Fa-f]{4})", matching)
    if not m:
        return "unknown", None
    ven, dev = m.group(1).lower(), m.group(2).lower()
    vendor = _VENDORS.get(ven, "unknown")
    return vendor, (f"{ven}:{dev}" if re.fullmatch(r"[0-9a-f]{4}", ven) else None)


def gpus_from_registry(entries: Sequence[Mapping[str, object]]) -> tuple[list[GPU], list[tuple[str, str]]]:
    """Registry display-class entries → (GPUs, [(fact, reason)] for absent memory sizes).

    Basic display and virtual adapters (no VEN_ in MatchingDeviceId, no vendor in the name) are skipped."""
    gpus: list[GPU] = []
    missing: list[tuple[str, str]] = []
    for e in entries:
        matching = str(e.get("MatchingDeviceId") or "")
        vendor, pci_id = pci_id_from_matching(matching)
        desc = str(e.get("DriverDesc") or "").strip()
        if vendor == "unknown" and not matching:  # dumps of DriverDesc alone: the vendor from the name
            vendor = _vendor_from_name(desc)
        if vendor == "unknown" or not desc:
            continue
        key = f"HKLM\\{DISPLAY_CLASS}\\{e.get('subkey', '?')}"
        prov = {"name": f"registry {key} DriverDesc"}
        fields: dict[str, object] = {}
        if pci_id:
            fields["pci_id"] = pci_id
            prov["pci_id"] = f"registry {key} MatchingDeviceId"
        qw = _qword(e.get("HardwareInformation.qwMemorySize"))
        idx = len(gpus)
        if qw:
            fields["dedicated_bytes"] = qw
            prov["dedicated_bytes"] = f"registry {key} HardwareInformation.qwMemorySize"
        elif _qword(e.get("HardwareInformation.MemorySize")):
            missing.append((f"gpus[{idx}].dedicated_bytes",
                            "only the 32-bit HardwareInformation.MemorySize is written (can be capped/wrong); "
                            "not used"))
        else:
            missing.append((f"gpus[{idx}].dedicated_bytes", f"no HardwareInformation.qwMemorySize under {key}"))
        gpus.append(GPU(vendor=vendor, name=desc, index=idx, provenance=prov, **fields))  # type: ignore[arg-type]
    return gpus, missing


def merge_nvml(registry: list[GPU], nvml: list[GPU]) -> list[GPU]:
    """NVML GPUs replace registry NVIDIA entries, paired by PCI id and then by name (never by position)."""
    rest = list(registry)
    for g in nvml:
        hit = next((r for r in rest if r.vendor == "nvidia" and r.pci_id and r.pci_id == g.pci_id
                    and r.name == g.name), None)
        hit = hit or next((r for r in rest if r.vendor == "nvidia" and r.pci_id and r.pci_id == g.pci_id), None)
        hit = hit or next((r for r in rest if r.vendor == "nvidia" and r.name == g.name), None)
        if hit is not None:
            rest.remove(hit)
    out = list(nvml) + rest
    return [g.model_copy(update={"index": i}) for i, g in enumerate(out)]


def _registry(probe: Probe, fact: str, key: str, read: Callable[[], T]) -> T | None:
    """`read()` of registry `key`, or None (+ `Absent` for `fact`) off Windows or when the key is unreadable."""
    try:
        return read()
    except ImportError:
        probe.miss(fact, "winreg is unavailable (not running on Windows)")
    except OSError as err:
        probe.miss(fact, f"registry {key}: {err}")
    return None


def collect(probe: Probe) -> tuple[OSInfo, CPU, Memory, list[GPU]]:
    """Everything Windows detection knows (registry, psutil, NVML)."""
    osinfo = OSInfo(name="windows", version=platform.version() if probe.live else None,
                    provenance={"version": "platform.version()"} if probe.live else {})
    cpu_prov: dict[str, str] = {}
    cpu_fields: dict[str, object] = {}
    entries = _registry(probe, "gpus (registry)", DISPLAY_CLASS, read_display_class) or []
    cpu_name = _registry(probe, "cpu.name", CPU_KEY, read_cpu_name)
    if cpu_name:
        cpu_fields["name"] = cpu_name
        cpu_prov["name"] = f"registry HKLM\\{CPU_KEY} ProcessorNameString"
    mem_fields: dict[str, object] = {}
    mem_prov: dict[str, str] = {}
    if probe.live:
        import psutil

        cpu_fields["physical_cores"] = psutil.cpu_count(logical=False)
        cpu_fields["threads"] = psutil.cpu_count(logical=True)
        cpu_prov["physical_cores"] = "psutil.cpu_count(logical=False)"
        cpu_prov["threads"] = "psutil.cpu_count()"
        vm = psutil.virtual_memory()
        mem_fields = {"total_bytes": int(vm.total), "available_bytes": int(vm.available)}
        mem_prov = {"total_bytes": "psutil.virtual_memory().total", "available_bytes": "psutil (live)"}
        cpu_fields["arch"] = machine_arch()
        cpu_prov["arch"] = "platform.machine()"
    else:
        probe.miss("memory.total_bytes", "Windows memory is only read live (psutil)")
    cpu = CPU(provenance=cpu_prov, **cpu_fields)  # type: ignore[arg-type]
    memory = Memory(provenance=mem_prov, **mem_fields)  # type: ignore[arg-type]
    gpus, missing = gpus_from_registry(entries)
    for fact, reason in missing:
        probe.miss(fact, reason)
    if probe.live and any(g.vendor == "nvidia" for g in gpus):
        from facts.detect import _nvidia

        nv = _nvidia.nvidia_gpus(probe, use_nvml=True)
        if nv:
            gpus = merge_nvml(gpus, nv)
    return osinfo, cpu, memory, gpus


def npu(probe: Probe) -> NPU | None:
    """The AMD NPU among the PCI enumeration keys (as Lemonade: any DEV_17F0 is XDNA2)."""
    from facts.detect._npu import npu_from_pci_keys, read_windows_pci_keys

    keys = _registry(probe, "npu", r"SYSTEM\CurrentControlSet\Enum\PCI", read_windows_pci_keys)
    if keys is None:
        return None
    found = npu_from_pci_keys(keys, "registry HKLM\\SYSTEM\\CurrentControlSet\\Enum\\PCI")
    if found is None:
        probe.miss("npu", "no AMD NPU (VEN_1022&DEV_17F0 / DEV_1502) among the PCI devices")
    return found
