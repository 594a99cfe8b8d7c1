"""A benchmark's hardware description -> archetype (via facts.catalog and facts.classify)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from facts import CPU, GPU, Archetype, HardwareFacts, Memory, catalog, classify
from facts.archetype import family_from_arch

_GPU_VENDORS = ("amd", "nvidia", "apple", "intel", "qualcomm")
MAX_GPUS = 64  # GPUs in one benchmarked machine
MAX_MEM_GB = 100_000  # GB of memory in one machine
_COUNT = re.compile(r"^\s*(\d+)\s*[x×]\s+")
_CORES = re.compile(r"(\d+)-core GPU", re.IGNORECASE)
_ARCH_TOKEN = re.compile(r"\b(gfx[0-9a-f]{3,4}|sm_?\d{2,3})\b", re.IGNORECASE)


@dataclass(frozen=True)
class HardwareInfo:
    """The hardware facts curation groups by. `archetype` is None when memory is not stated."""

    archetype: str | None
    backoff: tuple[str, ...]
    vendor: str
    family: str | None
    arch: str | None
    memclass: str
    gpu_count: int


def _vendor(text: str) -> str:
    t = text.lower()
    for v in ("nvidia", "apple", "intel", "qualcomm"):
        if v in t:
            return v
    if "amd" in t or "radeon" in t or "ryzen" in t:
        return "amd"
    if re.search(r"geforce|rtx|quadro|tesla", t):
        return "nvidia"
    return "unknown"


@functools.lru_cache(maxsize=1024)
def hardware_info(hardware: str, *, arch_hint: str = "", mem_gb: float | None = None,
                  unified: bool | None = None, gpu_count: int | None = None,
                  cpu_only: bool = False, cpu_name: str = "") -> HardwareInfo:
    """Classify a benchmark's hardware string (+ stated memory/arch/count) into an archetype."""
    digits = m.group(1) if (m := _COUNT.match(hardware)) else ""
    if len(digits) > 18:  # not even worth converting
        raise ValueError(f"gpu_count: a {len(digits):,}-digit GPU count is beyond physical sense (at most {MAX_GPUS})")
    count = int(digits) if digits else (gpu_count or 1)
    if not 0 <= count <= MAX_GPUS:
        raise ValueError(f"gpu_count: {count:,} GPUs in one machine is beyond physical sense (at most {MAX_GPUS})")
    if mem_gb is not None and not 0 <= mem_gb <= MAX_MEM_GB:
        raise ValueError(f"vram_gb: {mem_gb:.4g} GB is beyond physical sense (at most {MAX_MEM_GB:,})")
    name = _COUNT.sub("", hardware)
    vendor = _vendor(name + " " + cpu_name)
    if cpu_only or "cpu only" in name.lower():
        return _cpu_info(name, arch_hint, mem_gb, vendor)
    cores = _CORES.search(name)
    arch_m = _ARCH_TOKEN.search(arch_hint) or _ARCH_TOKEN.search(name)
    arch_token = arch_m.group(1).lower().replace("sm", "sm_").replace("__", "_") if arch_m else None
    cands, how = catalog.resolve(vendor=None if vendor == "unknown" else vendor, name=name,
                                  arch=arch_token, vram_gb=mem_gb,
                                  compute_units=int(cores.group(1)) if cores else None,
                                  cpu_brand=cpu_name or None)
    if (not cands or "name" not in how) and cpu_name and catalog.match_name(cpu_name):
        cands, how = catalog.match_name(cpu_name, vram_gb=mem_gb), "name (cpu brand)"
    row = catalog.conservative(cands) if cands else None
    if row is not None and "name" not in how:
        # matched by architecture only: family/arch are right, memory and bandwidth are not known
        return _with_id(vendor if vendor != "unknown" else row.vendor, row.family or None, row.arch,
                        "unified" if row.unified else "discrete", None, None, count)
    arch = row.arch if row else arch_token
    family = (row.family if row else None) or family_from_arch(arch)
    is_unified = row.unified if row else bool(unified)
    if unified is not None and row is None:
        is_unified = unified
    if row and vendor == "unknown":
        vendor = row.vendor
    memclass = "unified" if is_unified else "discrete"
    if mem_gb is None and row and not is_unified and len(row.vram_gb) == 1:
        mem_gb = row.vram_gb[0]  # a card sold with one memory size
    bw = row.spec_bandwidth_gbs if row else None
    if row is not None and mem_gb is not None:
        classified = _classify(row, name, vendor, memclass, mem_gb, count, cores, cpu_name)
        if classified is not None:
            return classified
    return _with_id(vendor, family, arch, memclass, mem_gb, bw, count)


def _classify(row, name: str, vendor: str, memclass: str, mem_gb: float, count: int, cores, cpu_name: str
              ) -> HardwareInfo | None:
    """The archetype facts.classify gives the machine the benchmark describes (None if it cannot)."""
    gib = 1024**3
    try:
        base = GPU(vendor=vendor if vendor != "unknown" else row.vendor, name=row.marketing_name,
                   marketing_name=row.marketing_name, arch=row.arch or None, family=row.family or None,
                   device_class=row.device_class or None, bandwidth_gbs=row.spec_bandwidth_gbs,
                   unified=row.unified, integrated=row.integrated,
                   dedicated_bytes=int(mem_gb * gib) if memclass == "discrete" else None,
                   compute_units=int(cores.group(1)) if cores else None)
        nominal = int(round(mem_gb)) if memclass == "unified" else None
        g = catalog.enrich(base, cpu_name=cpu_name or None, nominal_ram_gb=nominal)
        a = _classify_gpus(g, count, Memory(nominal_gb=nominal) if nominal else Memory())
    except ValueError:  # facts the GPU model rejects (pydantic ValidationError): use the stated facts
        return None
    return HardwareInfo(archetype=a.id, backoff=a.backoff, vendor=a.vendor, family=a.family, arch=a.arch,
                        memclass=a.memclass, gpu_count=a.count)


def _cpu_info(name: str, arch_hint: str, mem_gb: float | None, vendor: str) -> HardwareInfo:
    text = (name + " " + arch_hint).lower()
    if vendor == "apple" or "arm" in text or "neon" in text:
        isa = "arm64-neon"
    elif "avx512" in text or "avx-512" in text:
        isa = "x86_64-avx512"
    else:
        isa = "x86_64-avx2"
    if mem_gb:
        isas = {"arm64-neon": ("neon",), "x86_64-avx512": ("avx", "avx2", "avx512"),
                "x86_64-avx2": ("avx", "avx2")}[isa]
        a = classify(HardwareFacts(cpu=CPU(arch="arm64" if isa.startswith("arm") else "x86_64", isa=isas),
                                   memory=Memory(total_bytes=int(mem_gb * 1024**3))))
        return HardwareInfo(archetype=a.id, backoff=a.backoff, vendor="cpu", family=isa, arch=isa,
                            memclass="cpu", gpu_count=0)
    return HardwareInfo(archetype=None, backoff=(), vendor="cpu", family=isa, arch=isa, memclass="cpu",
                        gpu_count=0)


def _with_id(vendor: str, family: str | None, arch: str | None, memclass: str, mem_gb: float | None,
             bw_gbs: float | None, count: int) -> HardwareInfo:
    """facts.classify on what the benchmark states, when no catalog row did; no archetype without a
    stated memory size and spec bandwidth (curation never keys rules on a guessed tier)."""
    if not mem_gb or bw_gbs is None:
        return HardwareInfo(archetype=None, backoff=(), vendor=vendor, family=family, arch=arch,
                            memclass=memclass, gpu_count=count)
    unified = memclass == "unified"
    gpu = GPU(vendor=vendor if vendor in _GPU_VENDORS else "unknown", name=arch or family or vendor,
              arch=arch, family=family, bandwidth_gbs=bw_gbs, unified=unified, integrated=unified,
              dedicated_bytes=None if unified else int(mem_gb * 1024**3))
    a = _classify_gpus(gpu, count, Memory(nominal_gb=round(mem_gb)) if unified else Memory())
    return HardwareInfo(archetype=a.id, backoff=a.backoff, vendor=vendor, family=family, arch=arch,
                        memclass=memclass, gpu_count=count)


def _classify_gpus(gpu: GPU, count: int, memory: Memory) -> Archetype:
    """facts.classify on a machine with `count` identical GPUs."""
    return classify(HardwareFacts(gpus=tuple(gpu.model_copy(update={"index": i}) for i in range(count)),
                                  memory=memory))
