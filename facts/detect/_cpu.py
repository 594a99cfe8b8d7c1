"""CPU facts on Linux: /proc/cpuinfo (name, flags, cores) and sysfs topology (P/E split); ISA names."""

from __future__ import annotations

import os
import platform
import re
from typing import NamedTuple

from facts.detect._probe import Probe
from facts.models import CPU

_X86_ISA = {"avx": "avx", "avx2": "avx2", "avx512f": "avx512", "avx512_bf16": "avx512_bf16",
            "avx_vnni": "avx_vnni", "fma": "fma", "f16c": "f16c"}
_ARM_ISA = {"asimd": "neon", "neon": "neon", "sve": "sve", "asimddp": "dotprod"}
_MACHINE_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}


def machine_arch() -> str:
    """`CPU.arch` of the machine this Python runs on (`platform.machine()`): for live probes only."""
    return _MACHINE_ARCH.get(platform.machine().lower(), "unknown")


def isa_from_flags(flags: set[str], arch: str) -> tuple[str, ...]:
    """The CPU.isa subset named by kernel feature flags (x86 `flags`, ARM `Features`)."""
    table = _ARM_ISA if arch == "arm64" else _X86_ISA
    return tuple(sorted({name for flag, name in table.items() if flag in flags}))


class CpuInfo(NamedTuple):
    """What /proc/cpuinfo says (None / "unknown" / empty where it says nothing)."""

    name: str | None
    arch: str
    flags: set[str]
    threads: int | None
    physical_cores: int | None


def parse_cpuinfo(text: str) -> CpuInfo:
    """Name, arch, flags, threads and physical cores from /proc/cpuinfo text (x86 or ARM)."""
    blocks = [b for b in re.split(r"\n\s*\n", text) if b.strip()]
    name: str | None = None
    flags: set[str] = set()
    threads = 0
    cores: set[tuple[str, str]] = set()
    arch = "unknown"
    for block in blocks:
        fields: dict[str, str] = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip().lower()] = value.strip()
        if "processor" in fields and fields["processor"].isdigit():
            threads += 1
        name = name or fields.get("model name") or None
        if "flags" in fields:
            flags.update(fields["flags"].split())
            arch = "x86_64" if "lm" in flags else arch
        if "features" in fields:
            flags.update(fields["features"].split())
            # AArch64 always lists "fp asimd"; 32-bit ARM lists "vfp neon" and is not a target here
            arch = "arm64" if "asimd" in flags else arch
        if "physical id" in fields and "core id" in fields:
            cores.add((fields["physical id"], fields["core id"]))
    return CpuInfo(name, arch, flags, threads or None, len(cores) or None)


def parse_cpulist(text: str) -> set[int]:
    """`0-3,8,10-11` → {0, 1, 2, 3, 8, 10, 11}."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return cpus


def _core_map(probe: Probe) -> dict[int, tuple[int, int]]:
    """Logical CPU → (package, core id) from sysfs topology."""
    base = probe.path("/sys/devices/system/cpu")
    out: dict[int, tuple[int, int]] = {}
    try:
        names = os.listdir(base)
    except OSError:
        return out
    for n in names:
        if not re.fullmatch(r"cpu\d+", n):
            continue
        pkg = probe.read_int(f"/sys/devices/system/cpu/{n}/topology/physical_package_id")
        core = probe.read_int(f"/sys/devices/system/cpu/{n}/topology/core_id")
        if pkg is not None and core is not None:
            out[int(n[3:])] = (pkg, core)
    return out


def _split(probe: Probe, cores: dict[int, tuple[int, int]]) -> tuple[int, int, str] | None:
    """(performance, efficiency, source) physical-core counts when known."""
    pmu_core = probe.read("/sys/devices/cpu_core/cpus")  # Intel hybrid PMUs (kernel perf-intel-hybrid.txt)
    pmu_atom = probe.read("/sys/devices/cpu_atom/cpus")
    if pmu_core is not None and pmu_atom is not None and cores:
        try:
            p = {cores[c] for c in parse_cpulist(pmu_core) if c in cores}
            e = {cores[c] for c in parse_cpulist(pmu_atom) if c in cores}
        except ValueError:
            return None
        return len(p), len(e), "sysfs /sys/devices/cpu_core,cpu_atom/cpus (hybrid PMUs)"
    caps: dict[int, int] = {}
    for cpu in cores:
        cap = probe.read_int(f"/sys/devices/system/cpu/cpu{cpu}/cpu_capacity")
        if cap is not None:
            caps[cpu] = cap
    if not caps:
        return None
    top = max(caps.values())
    p = {cores[c] for c, v in caps.items() if v == top}
    e = {cores[c] for c, v in caps.items() if v != top} - p
    return len(p), len(e), "sysfs /sys/devices/system/cpu/cpu*/cpu_capacity"


def linux_cpu(probe: Probe) -> CPU:
    """The CPU of a Linux system under `probe.root`."""
    prov: dict[str, str] = {}
    text = probe.read("/proc/cpuinfo", "cpu")
    info = parse_cpuinfo(text or "")
    arch = info.arch
    if arch == "unknown" and probe.live:
        arch = machine_arch()
        prov["arch"] = "platform.machine()"
    elif arch != "unknown":
        prov["arch"] = "/proc/cpuinfo flags/Features"
    name = info.name
    if name:
        prov["name"] = "/proc/cpuinfo model name"
    elif text is not None:
        probe.miss("cpu.name", "/proc/cpuinfo has no 'model name' line (usual on ARM)")
    isa = isa_from_flags(info.flags, arch)
    if isa:
        prov["isa"] = "/proc/cpuinfo flags" if arch != "arm64" else "/proc/cpuinfo Features"
    threads = info.threads
    if threads:
        prov["threads"] = "/proc/cpuinfo processor entries"
    cores = _core_map(probe)
    physical = info.physical_cores
    if physical:
        prov["physical_cores"] = "/proc/cpuinfo distinct (physical id, core id)"
    elif cores:
        physical = len(set(cores.values()))
        prov["physical_cores"] = "sysfs topology distinct (physical_package_id, core_id)"
    else:
        probe.miss("cpu.physical_cores", "neither /proc/cpuinfo core ids nor sysfs topology available")
    perf = eff = None
    split = _split(probe, cores) if cores else None
    if split:
        perf, eff, src = split
        prov["performance_cores"] = prov["efficiency_cores"] = src
    else:
        probe.miss("cpu.performance_cores", "no cpu_capacity or cpu_core/cpu_atom PMU in sysfs")
    return CPU(name=name, arch=arch, physical_cores=physical, threads=threads,  # type: ignore[arg-type]
               performance_cores=perf, efficiency_cores=eff, isa=isa, provenance=prov)
