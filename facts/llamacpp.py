"""llama.cpp device reports (`--list-devices`, backend start-up lines of every backend and era) -> HardwareFacts."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pydantic import ValidationError

from facts import catalog
from facts._llama_lines import DeviceLine, number, parse_device_line, split_joined
from facts.archetype import apple_chip
from facts.errors import FactsInputError
from facts.merge import combine_gpu, dedupe_gpus
from facts.models import CPU, GPU, Absent, HardwareFacts, Memory

__all__ = ["KIND", "DeviceLine", "from_llama_devices", "number", "parse_device_line"]

MIB = 1024**2
KIND = "llama-devices"
# MTLGPUFamilyAppleN -> the Mac chip generation, where only one generation has that family
# (Apple7 = M1 / A14, Apple8 = M2 / A15-A16, Apple10 = M5 / A19; Apple9 is both M3 and M4)
_METAL_GENERATION = {7: "apple-m1", 8: "apple-m2", 10: "apple-m5"}
_NOT_A_GPU = re.compile(r"\bFPGA\b|\bCore\(TM\)|\bProcessor\b|\bXeon\b|\bEPYC\b|\bCPU\b", re.IGNORECASE)
# Intel names only integrated GPUs carry: UHD / Iris / HD Graphics, and "Arc Graphics" without a model number
_INTEL_IGPU = re.compile(r"\b(?:UHD|Iris|HD)\b.*Graphics|^Intel (?:Arc )?Graphics(?: \(|$)", re.IGNORECASE)
_ADRENO = re.compile(r"\bAdreno(?:\(TM\))?\s*(X\d-\d+|\d{3})\b", re.IGNORECASE)
_FAILED = re.compile(r"(failed to initialize \w+: .+|no \w+ devices found.*|Found 0 \w+ devices.*)$", re.IGNORECASE)
_SKIPPED = {"RPC": "a remote RPC server (another machine)", "BLAS": "the CPU's BLAS library",
            "CPU": "the CPU", "COREML": "an NPU (Core ML)", "CANN": "an Ascend NPU"}


@dataclass
class _Dev:
    backend: str  # CUDA / ROCm / Vulkan / MTL / SYCL / OpenCL / MUSA ...
    index: int
    name: str | None = None
    total_mib: float | None = None
    free_mib: float | None = None
    arch: str | None = None
    uma: bool | None = None
    driver: str = ""  # Vulkan driver name, a vendor hint: (radv), (NVIDIA), (AMD proprietary driver)
    platform: str | None = None  # SYCL level_zero / opencl, or the "compute capability" an old SYCL list printed
    lines: list[int] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.backend}{self.index}"


MAX_MIB = float(1 << 30)  # 1 PiB: no device or host has more
MAX_COUNT = 4096  # device indices and counts, Metal families
REPORT_LIMIT = 4 << 20  # bytes of a device report: a verbose start-up log is well under 1 MiB


class _LineError(ValueError):
    def __init__(self, line: int, why: str) -> None:
        self.line, self.why = line, why
        super().__init__(f"line {line}: {why}")


def _show(value: float) -> str:
    if isinstance(value, int) and value.bit_length() > 64:
        return f"{len(str(value)):,} digits"
    return f"{value:.4g}"


def _implausible(x: DeviceLine) -> str | None:
    """Why a parsed line cannot describe a real device (None when it can): the log is corrupted or made up."""
    for what, value in (("memory size", x.total_mib), ("free memory", x.free_mib)):
        if value is not None and not 0 <= value <= MAX_MIB:
            return f"a {what} of {_show(value)} MiB: no device has that (is the log corrupted?)"
    for what, value, limit in (("device index", x.index, MAX_COUNT), ("count", x.count, MAX_COUNT),
                               ("thread count", x.threads, 1 << 20)):
        if value is not None and not 0 <= value <= limit:
            return f"a {what} of {_show(value)}: beyond any machine (is the log corrupted?)"
    return None


def _vendor(name: str, backend: str, driver: str = "") -> str:
    """The vendor the device name or driver names, else the one the backend implies."""
    vendor = catalog.vendor_from_name(f"{name} {driver}")
    implied = {"CUDA": "nvidia", "ROCm": "amd", "MTL": "apple", "SYCL": "intel"}
    return vendor if vendor != "unknown" else implied.get(backend, "unknown")


class _Reader:
    """Folds the DeviceLines of one report into devices, keeping each line number for provenance."""

    def __init__(self) -> None:
        self.devs: dict[tuple[str, int], _Dev] = {}
        self.header = False
        self.context: str | None = None  # backend of the last `found N <backend> devices` line
        self.last: _Dev | None = None
        self.metal: dict[str, object] = {}
        self.metal_line = 0
        self.threads: int | None = None
        self.isa: tuple[str, ...] = ()
        self.cpu_name: str | None = None
        self.ram: tuple[float, float | None, int] | None = None
        self.skipped: dict[str, str] = {}
        self.failures: list[str] = []

    def dev(self, backend: str, index: int, line: int) -> _Dev:
        d = self.devs.setdefault((backend, index), _Dev(backend, index))
        d.lines.append(line)
        self.last = d
        return d

    def feed(self, raw: str, n: int) -> None:
        if failed := _FAILED.search(raw.strip()):
            self.failures.append(f"line {n}: {failed.group(1)[:120]}")
        for part in split_joined(raw):
            item = parse_device_line(part, self.context)
            if item is not None:
                if why := _implausible(item):
                    raise _LineError(n, why)
                self.take(item, n)

    def take(self, x: DeviceLine, n: int) -> None:
        if x.kind == "header":
            self.header = True
        elif x.kind == "found":
            self.context = x.backend
        elif x.kind == "sysinfo":
            self.threads, self.isa = x.threads, x.isa
        elif x.kind.startswith("metal-"):
            self.metal_line = self.metal_line or n
            key = {"metal-name": "name", "metal-ws": "ws", "metal-uma": "uma", "metal-family": "family"}[x.kind]
            value = {"name": x.name, "ws": x.total_mib, "uma": x.uma, "family": x.count}[key]
            if value is not None:
                self.metal[key] = value
        elif x.kind == "sycl-mem":
            if self.last is not None and self.last.backend == "SYCL" and self.last.total_mib is None:
                self.last.total_mib = x.total_mib
        elif x.backend in _SKIPPED or x.index is None:
            if x.backend == "CPU" and x.kind == "list":
                self.cpu_name = x.name
                self.ram = (x.total_mib or 0, x.free_mib, n)
            elif x.backend in _SKIPPED:
                self.skipped.setdefault(x.name or x.backend or "?", _SKIPPED[x.backend])
        else:
            self.device(x, n)

    def device(self, x: DeviceLine, n: int) -> None:
        backend = x.backend or "CUDA"
        if x.kind == "device" and backend == "SYCL" and x.name and _NOT_A_GPU.search(x.name):
            self.skipped.setdefault(x.name, "not a GPU (a SYCL CPU or FPGA-emulation device)")
            self.last = None
            return
        if x.kind == "sycl-row" and x.device_type != "gpu":
            self.skipped.setdefault(x.name or "?", f"not a GPU (SYCL {x.device_type} device)")
            return
        d = self.dev(backend, x.index or 0, n)
        if x.name and (d.name is None or x.kind in ("list", "breakdown")):
            d.name = x.name
        if x.total_mib is not None and (d.total_mib is None or x.kind in ("list", "breakdown")):
            d.total_mib = x.total_mib
        if x.free_mib is not None:
            d.free_mib = x.free_mib
        if x.arch and not d.arch:
            d.arch = x.arch
        if x.uma is not None:
            d.uma = x.uma
        if x.driver and not d.driver:
            d.driver = x.driver
        if x.platform and not d.platform:
            d.platform = x.platform

    def devices(self) -> list[_Dev]:
        """Devices in the order first seen, SYCL platform duplicates dropped."""
        devs = sorted(self.devs.values(), key=lambda d: d.lines[0])
        sycl = [d for d in devs if d.backend == "SYCL"]
        if any(d.platform == "level_zero" for d in sycl):  # the table lists one GPU per platform
            devs = [d for d in devs if not (d.backend == "SYCL" and d.platform == "opencl")]
        seen: dict[str, str] = {}
        out = []
        for d in devs:  # the older SYCL list prints the same GPU once per platform (another version number)
            old_list = d.backend == "SYCL" and d.name and d.platform not in (None, "level_zero", "opencl")
            if old_list and seen.setdefault(d.name, d.platform) != d.platform:
                self.skipped.setdefault(f"{d.label} {d.name}", "the same GPU through another SYCL platform")
                continue
            out.append(d)
        return out


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
    elif vendor == "qualcomm":  # every Adreno is a SoC GPU computing from the system RAM
        fields.update(unified=True, integrated=True)
        prov["unified"] = prov["integrated"] = where + " (Adreno: a SoC GPU)"
        if model := _ADRENO.search(name):
            fields["arch"] = f"adreno-{model.group(1).lower()}"
            prov["arch"] = where + " (the Adreno model in the name)"
    elif vendor == "apple" and d.backend == "MTL":  # Apple silicon: one memory pool for CPU and GPU
        fields.update(unified=True, integrated=True)
        prov["unified"] = prov["integrated"] = where + " (an Apple GPU)"
    elif vendor == "intel" and _INTEL_IGPU.search(catalog.normalize(name)):
        fields.update(unified=True, integrated=True)
        prov["unified"] = prov["integrated"] = where + " (an Intel integrated-GPU name)"
    gpu = catalog.enrich(GPU(**fields, provenance=prov))
    if gpu.vendor == "apple" and gpu.arch is None and (chip := apple_chip(name)):  # a chip newer than gpus.csv
        gpu = gpu.model_copy(update={"arch": chip[1], "provenance": {**gpu.provenance,
                                                                     "arch": where + " (the chip in the name)"}})
    return _unified_pool(gpu, where)


def _unified_pool(gpu: GPU, where: str) -> GPU:
    """An APU's llama.cpp total is its whole GPU pool (GTT / working set), not a carve-out."""
    if gpu.unified and gpu.dedicated_bytes is not None:
        p = dict(gpu.provenance)
        p["shared_bytes"] = p.pop("dedicated_bytes", where)
        return gpu.model_copy(update={"shared_bytes": gpu.dedicated_bytes, "dedicated_bytes": None, "provenance": p})
    return gpu


def _metal(reader: _Reader, label: str) -> GPU | None:
    """The Metal device the ggml_metal_init / ggml_metal_device_init lines describe (any era)."""
    m = reader.metal
    if "name" not in m and "ws" not in m and "family" not in m:
        return None
    named = "name" in m
    name = str(m["name"]) if named else "Metal GPU"
    uma = m.get("uma")
    vendor = _vendor(name, "MTL") if named else ("apple" if uma is not False else "unknown")
    if uma is False and vendor == "apple" and not named:
        vendor = "unknown"
    where = f"{label}:line {reader.metal_line}"
    fields: dict[str, object] = {"vendor": vendor, "name": name, "llama_devices": ("MTL0",)}
    prov = {"name": where}
    unified = uma if isinstance(uma, bool) else (vendor == "apple" or None)
    if unified is not None:
        fields["unified"] = unified
        prov["unified"] = where + (" (hasUnifiedMemory)" if isinstance(uma, bool) else " (an Apple GPU)")
    if "ws" in m:
        # ggml prints recommendedMaxWorkingSetSize / 1e6 as "MB" (older builds used MiB): taking 1e6 is the
        # smaller, conservative reading. On a discrete GPU (an Intel Mac's Radeon) it is the VRAM.
        key = "shared_bytes" if unified else "dedicated_bytes"
        fields[key] = int(float(m["ws"]) * 1e6)  # type: ignore[arg-type]
        prov[key] = where + " (recommendedMaxWorkingSetSize)"
    if vendor == "apple":
        fields["integrated"] = True
        gen = _METAL_GENERATION.get(m.get("family"))  # type: ignore[arg-type]
        if gen and not catalog_chip(name):
            fields["family"] = gen
            prov["family"] = where + f" (MTLGPUFamilyApple{m['family']}: only {gen} has it)"
    return catalog.enrich(GPU(**fields, provenance=prov))


def catalog_chip(name: str) -> bool:
    """The name names an Apple chip (Apple M3 Max) rather than a placeholder (MTL0, Metal GPU)."""
    return bool(re.search(r"\bApple\s*M\d", name))


def _memory_absent(gpus: list[GPU]) -> list[Absent]:
    """A named device whose report has no memory: the catalog's sizes are an estimate, never a budget."""
    out = []
    for i, g in enumerate(gpus):
        if g.dedicated_bytes is not None or g.shared_bytes is not None:
            continue
        row = catalog.row(g.marketing_name) if g.marketing_name else None
        key = "shared_bytes" if catalog.unified_memory(g) else "dedicated_bytes"
        if row and row.vram_gb and not catalog.unified_memory(g):
            sizes = "/".join(f"{v:g}" for v in row.vram_gb)
            why = (f"the llama.cpp report names the device but not its memory; gpus.csv sells {row.marketing_name} "
                   f"with {sizes} GB (estimate: used for the archetype's memory bucket only, never as a budget)")
        else:
            why = "the llama.cpp report names the device but not its memory (older build or start-up line only)"
        out.append(Absent(fact=f"gpus[{i}].{key}", reason=why))
    return out


def from_llama_devices(text: str | bytes, *, source: str = "llama-devices") -> HardwareFacts:
    """Parse llama.cpp device output; text without any device line raises FactsInputError."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    label = source if source.startswith("llama-devices") else f"llama-devices:{source}"
    reader = _Reader()
    try:
        for n, raw in enumerate(text.splitlines(), start=1):
            reader.feed(raw, n)
    except _LineError as err:
        raise FactsInputError(source, [str(err)], kind=KIND) from None
    try:
        gpus = _gpus(reader, label)
    except ValidationError as err:
        raise FactsInputError(source, [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors()],
                              kind=KIND) from None
    if not gpus and not reader.header and reader.cpu_name is None:
        head = text.lstrip()[:1]
        hint = " (this looks like JSON: pass a Lemonade document as --system-info)" if head in "{[" and head else ""
        skipped = f" (only {', '.join(sorted(reader.skipped))}, which are not GPUs)" if reader.skipped else ""
        if reader.failures:
            raise FactsInputError(source, [f"the report names no device: the backend said it found none "
                                           f"({'; '.join(reader.failures)})"], kind=KIND)
        raise FactsInputError(source, [
            "no llama.cpp device line found" + skipped + "; expected `llama-server --list-devices` output such as "
            "'Vulkan0: NAME (TOTAL MiB, FREE MiB free)' or start-up lines ('ggml_vulkan: 0 = ...', "
            "'Device 0: NAME, compute capability 8.9, ...', 'ggml_metal_init: found device: ...', "
            "a SYCL device table, 'ggml_opencl: device: ...')" + hint], kind=KIND)
    cpu_prov = {k: label for k, v in (("threads", reader.threads), ("isa", reader.isa)) if v}
    if reader.cpu_name:
        cpu_prov["name"] = f"{label}:line {reader.ram[2] if reader.ram else 0} (CPU device)"
    cpu = CPU(name=reader.cpu_name, threads=reader.threads, isa=reader.isa, provenance=cpu_prov)
    memory = Memory()
    if reader.ram and reader.ram[0] > 0:
        total, free, line = reader.ram
        where = f"{label}:line {line} (CPU device)"
        memory = Memory(total_bytes=int(total * MIB), available_bytes=int(free * MIB) if free is not None else None,
                        provenance={"total_bytes": where, **({"available_bytes": where} if free is not None else {})})
    gpus = dedupe_gpus(gpus)
    warnings = tuple(f"{name}: {why}; not counted as a GPU" for name, why in sorted(reader.skipped.items()))
    return HardwareFacts(cpu=cpu, memory=memory, gpus=tuple(gpus), source=label, absent=tuple(_memory_absent(gpus)),
                         warnings=warnings)


def _gpus(reader: _Reader, label: str) -> list[GPU]:
    gpus = [_build(d, label) for d in reader.devices()]
    metal = None if any(b == "MTL" for b, _ in reader.devs) else _metal(reader, label)
    if metal is not None:
        gpus.append(metal)
    elif reader.metal and any(b == "MTL" for b, _ in reader.devs):
        gpus = [_with_metal_lines(g, reader, label) for g in gpus]
    return gpus


def _with_metal_lines(g: GPU, reader: _Reader, label: str) -> GPU:
    """An `MTL0: …` list line plus ggml_metal_* start-up lines: the start-up lines fill what the list lacks."""
    if g.llama_devices != ("MTL0",):
        return g
    extra = _metal(reader, label)
    return g if extra is None else combine_gpu(g, extra)
