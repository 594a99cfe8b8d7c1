"""macOS probes: `sysctl` (RAM, CPU, P/E cores) and `system_profiler SPDisplaysDataType -json` (GPU cores)."""

from __future__ import annotations

import json

from facts.detect._memory import GIB, apple_working_set
from facts.detect._probe import Probe
from facts.models import CPU, GPU, Memory, OSInfo

SYSCTL_NAMES = (
    "hw.memsize", "machdep.cpu.brand_string", "hw.physicalcpu", "hw.logicalcpu",
    "hw.perflevel0.physicalcpu", "hw.perflevel1.physicalcpu", "hw.optional.arm64",
    "hw.optional.arm.FEAT_DotProd", "hw.optional.avx1_0", "hw.optional.avx2_0", "hw.optional.avx512f",
    "hw.optional.fma", "hw.optional.f16c", "kern.osproductversion", "sysctl.proc_translated",
    "iogpu.wired_limit_mb",
)


def mac_nominal_gb(memsize: int) -> int:
    """hw.memsize is the installed RAM exactly (18, 36, 96 GB ... configurations exist): whole GiB, rounded up."""
    return max(1, -(-memsize // GIB))


def parse_sysctl(text: str) -> dict[str, str]:
    """`name: value` lines (sysctl without -n) → {name: value}; unknown names simply do not appear."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and " " not in key.strip():
            out[key.strip()] = value.strip()
    return out


def _int(values: dict[str, str], key: str) -> int | None:
    v = values.get(key, "")
    return int(v) if v.isdigit() else None


def cpu_from_sysctl(values: dict[str, str]) -> CPU:
    """CPU facts from sysctl values (Apple silicon and Intel Macs)."""
    src = "sysctl"
    prov: dict[str, str] = {}
    arm = values.get("hw.optional.arm64") == "1"
    name = values.get("machdep.cpu.brand_string") or None
    fields: dict[str, object] = {}
    for key, field in (("hw.physicalcpu", "physical_cores"), ("hw.logicalcpu", "threads"),
                       ("hw.perflevel0.physicalcpu", "performance_cores"),
                       ("hw.perflevel1.physicalcpu", "efficiency_cores")):
        v = _int(values, key)
        if v is not None and (v > 0 or field == "efficiency_cores"):
            fields[field] = v
            prov[field] = f"{src} {key}"
    if "performance_cores" in fields and "efficiency_cores" not in fields and "hw.perflevel1.physicalcpu" \
            not in values:
        fields["efficiency_cores"] = 0
        prov["efficiency_cores"] = f"{src}: no hw.perflevel1 (one core type)"
    isa = set()
    if arm:
        isa.add("neon")
        if values.get("hw.optional.arm.FEAT_DotProd") == "1":
            isa.add("dotprod")
    else:
        for key, flag in (("hw.optional.avx1_0", "avx"), ("hw.optional.avx2_0", "avx2"),
                          ("hw.optional.avx512f", "avx512"), ("hw.optional.fma", "fma"),
                          ("hw.optional.f16c", "f16c")):
            if values.get(key) == "1":
                isa.add(flag)
    if name:
        prov["name"] = f"{src} machdep.cpu.brand_string"
    if isa:
        prov["isa"] = f"{src} hw.optional.*"
    if arm:
        arch, prov["arch"] = "arm64", f"{src} hw.optional.arm64"
    elif "hw.optional.avx1_0" in values:
        arch, prov["arch"] = "x86_64", f"{src} hw.optional.avx1_0 (an x86 feature flag)"
    elif name and "Intel" in name:
        arch, prov["arch"] = "x86_64", f"{src} machdep.cpu.brand_string (an Intel CPU)"
    else:
        arch = "unknown"
    return CPU(name=name, arch=arch, isa=tuple(sorted(isa)), provenance=prov, **fields)  # type: ignore[arg-type]


def parse_displays(text: str) -> list[dict[str, object]]:
    """`system_profiler SPDisplaysDataType -json` → [{model, cores, vendor, vram}] per graphics device."""
    data = json.loads(text)
    items = data.get("SPDisplaysDataType")
    if not isinstance(items, list):
        raise ValueError("no SPDisplaysDataType list in the JSON")
    out = []
    for item in items:
        if not isinstance(item, dict):
            continue
        cores = str(item.get("sppci_cores", ""))
        out.append({
            "model": item.get("sppci_model") or item.get("_name"),
            "cores": int(cores) if cores.isdigit() else None,
            "vendor": str(item.get("spdisplays_vendor", "")),
            "vram": item.get("spdisplays_vram") or item.get("_spdisplays_vram"),
        })
    return out


def apple_gpu(model: str, cores: int | None, memsize: int | None, wired_limit_mb: int | None,
              index: int = 0) -> GPU:
    """The Apple-silicon GPU: unified memory whose GPU share is the Metal working set (estimated)."""
    prov = {"name": "system_profiler SPDisplaysDataType sppci_model", "unified": "Apple silicon (unified memory)",
            "integrated": "Apple silicon (on the SoC)"}
    fields: dict[str, object] = {"unified": True, "integrated": True}
    if cores:
        fields["compute_units"] = cores
        prov["compute_units"] = "system_profiler SPDisplaysDataType sppci_cores"
    if wired_limit_mb:
        fields["shared_bytes"] = wired_limit_mb << 20
        prov["shared_bytes"] = "sysctl iogpu.wired_limit_mb (user override of the Metal working set)"
    elif memsize:
        fields["shared_bytes"] = apple_working_set(memsize)
        prov["shared_bytes"] = ("estimate: Metal recommendedMaxWorkingSetSize from hw.memsize "
                                "(research/hardware.md §2.4 anchors; pyobjc Metal not used)")
    return GPU(vendor="apple", name=model, index=index, provenance=prov, **fields)  # type: ignore[arg-type]


def _metal_working_set(probe: Probe) -> int | None:
    """Metal's exact recommendedMaxWorkingSetSize when pyobjc-framework-Metal is installed (live macOS only)."""
    if not probe.live:
        return None
    try:
        import Metal  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        dev = Metal.MTLCreateSystemDefaultDevice()
        return int(dev.recommendedMaxWorkingSetSize()) if dev is not None else None
    except Exception:
        return None


def collect(probe: Probe) -> tuple[OSInfo, CPU, Memory, list[GPU]]:
    """Everything macOS detection knows (via sysctl and system_profiler on the probe's PATH)."""
    text = probe.run(["sysctl", *SYSCTL_NAMES], "cpu, memory (sysctl)", allow_fail=True)
    values = parse_sysctl(text) if text else {}
    if values.get("sysctl.proc_translated") == "1":
        probe.warn("this Python runs under Rosetta (x86_64 on Apple silicon): its llama.cpp builds have no Metal")
    version = values.get("kern.osproductversion")
    osinfo = OSInfo(name="macos", version=version or None,
                    provenance={"version": "sysctl kern.osproductversion"} if version else {})
    cpu = cpu_from_sysctl(values)
    memsize = _int(values, "hw.memsize")
    mem_prov: dict[str, str] = {}
    avail = None
    if memsize:
        mem_prov = {"total_bytes": "sysctl hw.memsize", "nominal_gb": "sysctl hw.memsize (the installed RAM)"}
        if probe.live:
            import psutil

            avail = int(psutil.virtual_memory().available)
            mem_prov["available_bytes"] = "psutil.virtual_memory().available"
    elif text is not None:
        probe.miss("memory.total_bytes", "sysctl printed no hw.memsize")
    memory = Memory(total_bytes=memsize, available_bytes=avail, nominal_gb=mac_nominal_gb(memsize) if memsize else None,
                    provenance=mem_prov)
    gpus: list[GPU] = []
    out = probe.run(["system_profiler", "SPDisplaysDataType", "-json"], "gpus (system_profiler)")
    if out is not None:
        try:
            displays = parse_displays(out)
        except ValueError as err:  # json.JSONDecodeError is a ValueError
            probe.miss("gpus (system_profiler)", f"unparsable output: {err}")
            displays = []
        for d in displays:
            model = str(d["model"] or "")
            if model.startswith("Apple"):
                gpu = apple_gpu(model, d["cores"], memsize, _int(values, "iogpu.wired_limit_mb"), len(gpus))  # type: ignore[arg-type]
                exact = _metal_working_set(probe)
                if exact:
                    prov = dict(gpu.provenance, shared_bytes="Metal recommendedMaxWorkingSetSize (pyobjc)")
                    gpu = gpu.model_copy(update={"shared_bytes": exact, "provenance": prov})
                gpus.append(gpu)
            elif model:
                vendor = "amd" if "amd" in d["vendor"].lower() or "radeon" in model.lower() else (
                    "intel" if "intel" in d["vendor"].lower() else "unknown")
                gpus.append(GPU(vendor=vendor, name=model, index=len(gpus),  # type: ignore[arg-type]
                                provenance={"name": "system_profiler SPDisplaysDataType sppci_model"}))
    return osinfo, cpu, memory, gpus


def npu(probe: Probe) -> None:
    """No NPU fact on macOS: Lemonade's NPU recipes (FLM, Ryzen AI) run on AMD XDNA2 only."""
    probe.miss("npu", "macOS: the Apple Neural Engine runs no Lemonade recipe; no NPU probe")
