"""Linux probes: os-release, CPU, memory (+cgroup), PCI display devices, AMD sysfs/KFD, NVIDIA."""

from __future__ import annotations

import os

from facts.detect import _amd_sysfs, _cgroup, _cpu, _intel_sysfs, _memory, _npu, _nvidia
from facts.detect._probe import Probe
from facts.models import CPU, GPU, NPU, Memory, OSInfo

VENDORS = {0x1002: "amd", 0x10DE: "nvidia", 0x8086: "intel", 0x5143: "qualcomm"}


def os_info(probe: Probe) -> OSInfo:
    for rel in ("/etc/os-release", "/usr/lib/os-release"):
        text = probe.read(rel)
        if text is None:
            continue
        fields = {}
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                fields[key.strip()] = value.strip().strip('"')
        version = fields.get("PRETTY_NAME") or fields.get("VERSION_ID")
        if version:
            return OSInfo(name="linux", version=version, provenance={"version": f"{rel} PRETTY_NAME"})
    probe.miss("os.version", "no readable /etc/os-release or /usr/lib/os-release")
    return OSInfo(name="linux")


def pci_display_devices(probe: Probe) -> list[dict[str, object]]:
    """PCI devices of class 0x03xxxx (display) or 0x12xxxx (processing accelerator)."""
    base = "/sys/bus/pci/devices"
    try:
        names = sorted(os.listdir(probe.path(base)))
    except OSError as err:
        probe.miss("gpus (PCI enumeration)", f"{base}: {err.strerror or err}")
        return []
    out = []
    for addr in names:
        cls = probe.read_int(f"{base}/{addr}/class")
        if cls is None or (cls >> 16) not in (0x03, 0x12):
            continue
        vendor = probe.read_int(f"{base}/{addr}/vendor")
        device = probe.read_int(f"{base}/{addr}/device")
        try:
            driver = os.path.basename(os.readlink(probe.path(f"{base}/{addr}/driver")))
        except OSError:
            driver = None
        if vendor is not None and device is not None:
            out.append({"address": addr, "vendor": vendor, "device": device, "driver": driver, "class": cls})
    return out


def _pci_only_gpu(dev: dict[str, object], index: int, why: str) -> GPU:
    vendor = VENDORS.get(int(dev["vendor"]), "unknown")  # type: ignore[arg-type]
    pci_id = f"{dev['vendor']:04x}:{dev['device']:04x}"
    src = f"sysfs /sys/bus/pci/devices/{dev['address']}"
    return GPU(vendor=vendor, name=f"{vendor.upper() if vendor != 'unknown' else 'PCI'} GPU {pci_id}",  # type: ignore[arg-type]
               pci_id=pci_id, index=index,
               provenance={"pci_id": f"{src}/vendor,device", "name": f"synthesised from the PCI id ({why})"})


def _jetson(probe: Probe, gpus: list[GPU]) -> list[GPU]:
    """Jetson: NVML/nvidia-smi name every Orin "Orin (nvgpu)" (or are absent on JetPack 5); the device-tree
    model names the module, and the GPU shares system RAM."""
    model = (probe.read("/proc/device-tree/model") or "").replace("\x00", "").strip()
    if "jetson" not in model.lower():
        return gpus
    src = "/proc/device-tree/model (Jetson module)"
    upd = {"name": model, "unified": True, "integrated": True}
    prov = {"name": src, "unified": src, "integrated": src}
    nv = [g for g in gpus if g.vendor == "nvidia"]
    if not nv:
        probe.warn(f"{model}: GPU taken from the device tree (no NVML / nvidia-smi answer)")
        return [*gpus, GPU(vendor="nvidia", index=0, provenance=prov, **upd)]  # type: ignore[arg-type]
    return [g.model_copy(update={**upd, "provenance": {**g.provenance, **prov}})
            if g.vendor == "nvidia" and ("nvgpu" in g.name or g.name.startswith("Orin")) else g for g in gpus]


def collect(probe: Probe) -> tuple[OSInfo, CPU, Memory, list[GPU]]:
    """Everything Linux detection knows about the machine under `probe.root`."""
    osinfo = os_info(probe)
    cpu = _cpu.linux_cpu(probe)
    threads, why = _cgroup.usable_threads(probe, cpu.threads)
    if why and threads:  # a source is named only when it lowers the count (or gives one /proc/cpuinfo did not)
        prov = dict(cpu.provenance, threads=why)
        if cpu.threads:
            probe.warn(f"usable CPU threads lowered to {threads} by {why} (the machine has {cpu.threads})")
            prov["threads"] = f"{why} (lower than the {cpu.threads} CPUs present)"
        update: dict[str, object] = {"threads": threads, "provenance": prov}
        if cpu.physical_cores and cpu.physical_cores > threads:
            update["physical_cores"] = threads
            prov["physical_cores"] = prov["threads"]
        cpu = cpu.model_copy(update=update)
    pci = pci_display_devices(probe)
    gpus: list[GPU] = []
    amd = _amd_sysfs.amd_gpus(probe)
    gpus.extend(amd)
    nv_pci = [d for d in pci if d["vendor"] == 0x10DE]
    # /dev/dxg: WSL2, where the GPU has no PCI entry but NVML and nvidia-smi live in /usr/lib/wsl/lib
    nv_hint = bool(nv_pci) or probe.path("/proc/driver/nvidia").exists() or probe.path("/dev/dxg").exists()
    if nv_hint or probe.which("nvidia-smi"):
        nv = _nvidia.nvidia_gpus(probe, use_nvml=nv_hint and probe.live)
        if nv is None and nv_pci:
            for d in nv_pci:
                probe.warn(f"NVIDIA GPU {d['address']}: present, not usable (no NVML, no nvidia-smi)")
            nv = [_pci_only_gpu(d, i, "NVML and nvidia-smi unavailable") for i, d in enumerate(nv_pci)]
        gpus.extend(nv or [])  # keep NVML / nvidia-smi indices: they are what CUDA_VISIBLE_DEVICES counts
    gpus = _jetson(probe, gpus)
    intel = 0
    for d in pci:  # the rest: Intel (sysfs VRAM), and GPUs no vendor probe described (AMD without amdgpu, ...)
        if d["vendor"] == 0x10DE or (d["vendor"] == 0x1002 and amd):
            continue
        if d["vendor"] == 0x8086 and (d["class"] >> 16) == 0x03:  # type: ignore[operator]
            gpus.append(_intel_sysfs.intel_gpu(probe, d, intel, len(gpus)))
            intel += 1
            continue
        gpus.append(_pci_only_gpu(d, len(gpus), f"driver {d['driver'] or 'none'}; no memory source"))
    carve = sum(g.dedicated_bytes or 0 for g in amd if g.integrated)
    memory = _memory.linux_memory(probe, carve_out_bytes=carve)
    return osinfo, cpu, memory, gpus


def npu(probe: Probe) -> NPU | None:
    """The AMD NPU (amdxdna accel device, else its PCI id)."""
    return _npu.linux_npu(probe)
