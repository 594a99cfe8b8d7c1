"""llama.cpp device reports (`--list-devices`, backend start-up lines) -> HardwareFacts."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from facts import catalog
from facts.errors import FactsInputError
from facts.merge import dedupe_gpus
from facts.models import CPU, GPU, HardwareFacts

MIB = 1024**2
KIND = "llama-devices"
_NUM = r"[0-9]+(?:[.,][0-9]+)?"
_BACKENDS = r"CUDA|ROCm|HIP|Vulkan|MTL|Metal|SYCL|OpenCL|CANN|MUSA|BLAS|RPC"
_LIST = re.compile(rf"\b(?P<dev>(?:{_BACKENDS})\d+): (?P<desc>.+?) \((?P<total>{_NUM}) MiB"
                   rf"(?:, (?P<free>{_NUM}) MiB free)?\)\s*$")
_VK_NEW = re.compile(r"ggml_vulkan: (?P<idx>\d+) = (?P<name>.+?) \((?P<driver>[^()]*)\) \| uma: (?P<uma>[01])")
_VK_OLD = re.compile(r"\b(?P<dev>Vulkan\d+): (?P<name>.+?) \((?P<driver>[^()]*)\) \| uma: (?P<uma>[01])")
_CUDA_FOUND = re.compile(r"ggml_(?:cuda_init|init_cublas): found \d+ (?P<backend>CUDA|ROCm|MUSA) devices")
_CUDA_DEV = re.compile(rf"^\s*Device (?P<idx>\d+): (?P<name>.+?), compute capability (?P<major>\d+)\.(?P<minor>\d+)"
                       rf"(?:, VMM: \w+)?(?:, VRAM: (?P<vram>{_NUM}) MiB)?")
_ROCM_DEV = re.compile(rf"^\s*Device (?P<idx>\d+): (?P<name>.+?), (?P<gfx>gfx[0-9a-f]+)(?::[^\s,(]*)?"
                       rf"(?: \(0x[0-9a-f]+\))?(?:, VMM: \w+)?(?:, Wave Size: \d+)?(?:, VRAM: (?P<vram>{_NUM}) MiB)?",
                       re.IGNORECASE)
_MTL_NAME = re.compile(r"ggml_metal_(?:init|device_init)?:?\s*(?:found device|GPU name):\s+(?P<name>\S.*?)\s*$")
_MTL_WS = re.compile(rf"recommendedMaxWorkingSetSize\s*=\s*(?P<mb>{_NUM}) MB")
_MTL_UMA = re.compile(r"hasUnifiedMemory\s*=\s*(?P<v>true|false)")
_USING = re.compile(rf"using device (?P<dev>\w+?\d+) \((?P<name>.+?)\)(?: \([0-9a-fA-F:.]+\))?"
                    rf" - (?P<free>{_NUM}) MiB free")
_SYSINFO = re.compile(r"system_info: n_threads = \d+.*?/ (?P<threads>\d+) \|(?P<flags>.*)$")
_HEADER = re.compile(r"^\s*Available devices:\s*$")
_RADV_GFX = re.compile(r"\bRADV (GFX\d+[0-9A-F]?)\b", re.IGNORECASE)
_DEV_SUFFIX = re.compile(r"\s*\(dev p\d+/v\d+\)\s*$")
_ISA_FLAGS = {"AVX": "avx", "AVX2": "avx2", "AVX512": "avx512", "AVX512_BF16": "avx512_bf16", "AVX_VNNI": "avx_vnni",
              "F16C": "f16c", "FMA": "fma", "NEON": "neon", "SVE": "sve", "DOTPROD": "dotprod"}
_PREFIX = {"HIP": "ROCm", "Metal": "MTL"}


@dataclass
class _Dev:
    backend: str  # CUDA / ROCm / Vulkan / MTL / SYCL ...
    index: int
    name: str | None = None
    total_mib: float | None = None
    free_mib: float | None = None
    arch: str | None = None
    uma: bool | None = None
    driver: str = ""  # Vulkan driver name, a vendor hint: (radv), (NVIDIA), (AMD proprietary driver)
    lines: list[int] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.backend}{self.index}"


def _num(text: str) -> float:
    return float(text.replace(",", "."))


def _vendor(name: str, backend: str, driver: str = "") -> str:
    """The vendor the device name or driver names, else the one the backend implies."""
    vendor = catalog.vendor_from_name(f"{name} {driver}")
    return vendor if vendor != "unknown" else {"CUDA": "nvidia", "ROCm": "amd", "MTL": "apple"}.get(backend, "unknown")


class _Reader:
    def __init__(self) -> None:
        self.devs: dict[tuple[str, int], _Dev] = {}
        self.header = False
        self.cuda_backend = "CUDA"
        self.metal_names: list[str] = []
        self.metal_ws: float | None = None
        self.metal_uma: bool | None = None
        self.metal_line = 0
        self.threads: int | None = None
        self.isa: tuple[str, ...] = ()

    def dev(self, backend: str, index: int, line: int) -> _Dev:
        backend = _PREFIX.get(backend, backend)
        d = self.devs.setdefault((backend, index), _Dev(backend, index))
        d.lines.append(line)
        return d

    def feed(self, raw: str, n: int) -> None:
        line = raw.rstrip()
        if _HEADER.match(line):
            self.header = True
            return
        if m := _LIST.search(line):
            prefix = re.match(r"[A-Za-z]+", m["dev"]).group(0)
            d = self.dev(prefix, int(m["dev"][len(prefix):]), n)
            d.name = _DEV_SUFFIX.sub("", m["desc"])
            d.total_mib = _num(m["total"])
            if m["free"]:
                d.free_mib = _num(m["free"])
            return
        if m := _VK_NEW.search(line) or _VK_OLD.search(line):
            idx = int(m["idx"]) if "idx" in m.groupdict() else int(m["dev"][len("Vulkan"):])
            d = self.dev("Vulkan", idx, n)
            d.name = d.name or m["name"]
            d.uma = m["uma"] == "1"
            gfx = _RADV_GFX.search(m["name"])
            if gfx and not d.arch:
                d.arch = gfx.group(1).lower()
            d.driver = d.driver or m["driver"]
            return
        if m := _CUDA_FOUND.search(line):
            self.cuda_backend = m["backend"]
            return
        if m := _ROCM_DEV.search(line):
            d = self.dev("ROCm", int(m["idx"]), n)
            d.name = d.name or m["name"]
            d.arch = m["gfx"].lower()
            if m["vram"]:
                d.total_mib = d.total_mib or _num(m["vram"])
            return
        if m := _CUDA_DEV.search(line):
            backend = self.cuda_backend
            amd = _vendor(m["name"], backend) == "amd"
            d = self.dev("ROCm" if amd else backend, int(m["idx"]), n)
            d.name = d.name or m["name"]
            if backend == "CUDA" and not amd:  # a HIP build's "compute capability" is not an sm_ arch
                d.arch = f"sm_{m['major']}{m['minor']}"
            if m["vram"]:
                d.total_mib = d.total_mib or _num(m["vram"])
            return
        if m := _USING.search(line):
            prefix = re.match(r"[A-Za-z]+", m["dev"]).group(0)
            d = self.dev(prefix, int(m["dev"][len(prefix):]), n)
            d.name = d.name or m["name"]
            d.free_mib = _num(m["free"])
            return
        if m := _MTL_NAME.search(line):
            if m["name"] not in self.metal_names:
                self.metal_names.append(m["name"])
            self.metal_line = self.metal_line or n
            return
        if m := _MTL_WS.search(line):
            self.metal_ws = _num(m["mb"])
            self.metal_line = self.metal_line or n
            return
        if m := _MTL_UMA.search(line):
            self.metal_uma = m["v"] == "true"
            return
        if m := _SYSINFO.search(line):
            self.threads = int(m["threads"])
            flags = dict(re.findall(r"\b([A-Z0-9_]+) = ([01])\b", m["flags"]))
            self.isa = tuple(sorted(v for k, v in _ISA_FLAGS.items() if flags.get(k) == "1"))


def _build(d: _Dev, label: str) -> GPU:
    name = d.name or f"{d.backend} device {d.index}"
    vendor = _vendor(name, d.backend, d.driver)
    where = f"{label}:line {d.lines[0]}"
    prov = {"name": where}
    fields: dict[str, object] = {"vendor": vendor, "name": name, "llama_devices": (d.label,)}
    if d.arch:
        fields["arch"] = d.arch
        prov["arch"] = where
    if d.total_mib:
        fields["dedicated_bytes"] = int(d.total_mib * MIB)
        prov["dedicated_bytes"] = where
    if d.free_mib is not None:
        fields["free_bytes"] = int(d.free_mib * MIB)
    if d.uma is not None:
        fields["unified"] = d.uma
        prov["unified"] = where + " (uma)"
        if d.uma:
            fields["integrated"] = True
    gpu = catalog.enrich(GPU(**fields, provenance=prov))
    if gpu.unified and gpu.dedicated_bytes is not None:  # an APU's llama.cpp total is its whole GPU pool
        p = dict(gpu.provenance)
        p["shared_bytes"] = p.pop("dedicated_bytes", where)
        gpu = gpu.model_copy(update={"shared_bytes": gpu.dedicated_bytes, "dedicated_bytes": None, "provenance": p})
    return gpu


def _metal(reader: _Reader, label: str) -> GPU | None:
    if not reader.metal_names and reader.metal_ws is None:
        return None
    name = reader.metal_names[-1] if reader.metal_names else "Metal GPU"
    vendor = _vendor(name, "MTL") if reader.metal_names else ("apple" if reader.metal_uma is not False else "unknown")
    where = f"{label}:line {reader.metal_line}"
    fields: dict[str, object] = {"vendor": vendor, "name": name, "llama_devices": ("MTL0",)}
    prov = {"name": where}
    unified = reader.metal_uma if reader.metal_uma is not None else (vendor == "apple" or None)
    if unified is not None:
        fields["unified"] = unified
    if reader.metal_ws is not None:
        # ggml prints recommendedMaxWorkingSetSize / 1e6 as "MB" (older builds used MiB): taking 1e6 is the
        # smaller, conservative reading
        key = "shared_bytes" if unified else "dedicated_bytes"
        fields[key] = int(reader.metal_ws * 1e6)
        prov[key] = where + " (recommendedMaxWorkingSetSize)"
    if vendor == "apple":
        fields["integrated"] = True
    return catalog.enrich(GPU(**fields, provenance=prov))


def from_llama_devices(text: str, *, source: str = "llama-devices") -> HardwareFacts:
    """Parse llama.cpp device output; text without any device line raises FactsInputError."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    label = source if source.startswith("llama-devices") else f"llama-devices:{source}"
    reader = _Reader()
    for n, raw in enumerate(text.splitlines(), start=1):
        reader.feed(raw, n)
    gpus = [_build(d, label) for _, d in sorted(reader.devs.items(), key=lambda kv: kv[1].lines[0])]
    metal = None if any(b == "MTL" for b, _ in reader.devs) else _metal(reader, label)
    if metal is not None:
        gpus.append(metal)
    if not gpus and not reader.header:
        head = text.lstrip()[:1]
        hint = " (this looks like JSON: pass a Lemonade document as --system-info)" if head in "{[" and head else ""
        raise FactsInputError(source, [
            "no llama.cpp device line found; expected `llama-server --list-devices` output such as "
            "'Vulkan0: NAME (TOTAL MiB, FREE MiB free)' or start-up lines ('ggml_vulkan: 0 = ...', "
            "'Device 0: NAME, compute capability 8.9, ...', 'ggml_metal_init: found device: ...')" + hint], kind=KIND)
    cpu = CPU(threads=reader.threads, isa=reader.isa,
              provenance={k: label for k, v in (("threads", reader.threads), ("isa", reader.isa)) if v})
    return HardwareFacts(cpu=cpu, gpus=tuple(dedupe_gpus(gpus)), source=label)
