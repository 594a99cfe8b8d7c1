"""One llama.cpp / ggml log line -> a DeviceLine (every backend and era), or None for any other line."""

from __future__ import annotations

import re
from dataclasses import dataclass

_NUM = r"[0-9]+(?:[.,][0-9]+)?"
_MIB = rf"(?P<total>{_NUM}) MiB(?:, (?P<free>{_NUM}) MiB free)?"
# backend names as llama.cpp prints them before the device index; HIP/Metal are older spellings
_BACKENDS = ("CUDA", "ROCm", "HIP", "Vulkan", "MTL", "Metal", "SYCL", "OpenCL", "CANN", "MUSA", "BLAS", "RPC",
             "COREML", "CPU", "GPUOpenCL")
_CANON = {"HIP": "ROCm", "Metal": "MTL", "GPUOpenCL": "OpenCL"}
_DEV = r"(?P<dev>RPC\[[^\]]*\]|(?:CUDA|ROCm|HIP|Vulkan|MTL|Metal|SYCL|OpenCL|CANN|MUSA|COREML)\d+|CPU|BLAS|GPUOpenCL|Metal)"

_HEADER = re.compile(r"\bavailable devices:\s*$", re.IGNORECASE)
_FOUND = re.compile(r"\b(?:ggml_(?:cuda_init|init_cublas|vulkan|sycl_init|init_sycl):\s*)?[Ff]ound (?P<n>\d+) "
                    r"(?P<backend>CUDA|ROCm|MUSA|Vulkan|SYCL) devices(?: \(Total VRAM: (?P<total>\d+)[^)]*\))?:?")
_LIST = re.compile(rf"(?:^|[\s`'\"*|>+-]){_DEV}: (?P<desc>.+?) \({_MIB}\)")
_VK_NEW = re.compile(r"ggml_vulkan: (?P<idx>\d+) = (?P<name>.+?)(?: \((?P<driver>[^()]*)\))? \| uma: (?P<uma>[01])")
_VK_OLD = re.compile(r"\bVulkan(?P<idx>\d+): (?P<name>.+?)(?: \((?P<driver>[^()]*)\))? \| uma: (?P<uma>[01])")
_VK_USING = re.compile(r"ggml_vulkan: Using (?P<name>[^|]+?) \|(?: uma: (?P<uma>[01]))?")
_RPC = re.compile(r"(?:^|\s)(?P<dev>RPC\[[^\]]*\]): ")
_DRIVER_WORDS = re.compile(r"radv|nvidia|amd|intel|moltenvk|mesa|qualcomm|llvmpipe|proprietary|open-source|turnip|"
                           r"mali|apple|microsoft|dozen|samsung|imagination|broadcom", re.IGNORECASE)
_DEVICE = re.compile(r"\bDevice (?P<idx>\d+): (?P<name>[^,]+?)\s*,\s*(?:(?P<gfx>gfx[0-9a-f]+)(?::[^\s,(]*)?"
                     r"|compute capability (?P<major>\d+)\.(?P<minor>\d+))(?P<rest>.*)$", re.IGNORECASE)
_VRAM = re.compile(rf"VRAM: (?P<total>{_NUM}) MiB(?: \((?P<free>{_NUM}) MiB free\))?")
_SYCL_MEM = re.compile(r"global mem size (?P<bytes>\d+)")
_SYCL_ROW = re.compile(r"\|\s*(?P<idx>\d+)\s*\|\s*\[(?P<platform>\w+):(?P<kind>\w+):(?P<n>\d+)\]\s*\|(?P<rest>.*)$")
_USING = re.compile(rf"using device (?P<dev>[A-Za-z]+\d+) \((?P<name>.+?)\)(?: \([^()]*\))? - (?P<free>{_NUM}) MiB free")
_BREAKDOWN = re.compile(r"memory_breakdown_print: \|\s*- (?P<dev>[A-Za-z]+\d+) \((?P<name>.+)\)\s*\|\s*"
                        r"(?P<total>\d+) = (?P<free>\d+) \+")
_MTL_NAME = re.compile(r"(?:ggml_metal_(?:device_)?init: (?:found device|picking default device|GPU name)|^\s*GPU name):\s+"
                       r"(?:(?P<dev>MTL\d+)(?: \((?P<inner>[^()]+)\))?|(?P<name>\S.*?))\s*$")
_MTL_FAMILY = re.compile(r"ggml_metal_(?:device_)?init: GPU family: MTLGPUFamilyApple(?P<gen>\d+)\b")
_MTL_WS = re.compile(rf"recommendedMaxWorkingSetSize\s*=\s*(?P<mb>{_NUM}) MB")
_MTL_UMA = re.compile(r"(?:hasUnifiedMemory|has unified memory)\s*=\s*(?P<v>true|false)")
_OPENCL = re.compile(r"ggml_opencl: (?:selecting |selected |default )?device: '(?P<name>[^']*)'")
_OPENCL_VER = re.compile(r"\s*\(OpenCL [0-9.]+ (?P<model>[^()]*(?:\([^()]*\)[^()]*)*)\)\s*$")
_SYSINFO = re.compile(r"system_info: n_threads = \d+.*?/ (?P<threads>\d+) \|(?P<flags>.*)$")
_RADV_GFX = re.compile(r"\bRADV (GFX\d+[0-9A-F]?)\b", re.IGNORECASE)
_DEV_SUFFIX = re.compile(r"\s*\(dev p\d+/v\d+\)\s*$")
_ISA_FLAGS = {"AVX": "avx", "AVX2": "avx2", "AVX512": "avx512", "AVX512_BF16": "avx512_bf16", "AVX_VNNI": "avx_vnni",
              "F16C": "f16c", "FMA": "fma", "NEON": "neon", "SVE": "sve", "DOTPROD": "dotprod"}


@dataclass(frozen=True)
class DeviceLine:
    """What one log line says about a device. `kind` names the line's format; unknown parts are None.

    kinds: header (`Available devices:`), found (`found N <backend> devices`), list (`DEV: NAME (N MiB…)`),
    vulkan, device (`Device N: NAME, compute capability …` / `…, gfxNNNN …`), sycl-row (SYCL table row),
    sycl-mem (`global mem size N` of the older SYCL list), using (`using device DEV (NAME) - N MiB free`),
    breakdown (`memory_breakdown_print` row), metal-name, metal-family, metal-ws, metal-uma, opencl, sysinfo."""

    kind: str
    backend: str | None = None  # CUDA / ROCm / Vulkan / MTL / SYCL / OpenCL / MUSA / CANN / RPC / CPU / BLAS / COREML
    index: int | None = None
    name: str | None = None
    total_mib: float | None = None
    free_mib: float | None = None
    arch: str | None = None  # gfx target / sm_XY when the line states it
    uma: bool | None = None
    driver: str | None = None  # Vulkan driver in parentheses: radv, NVIDIA, AMD proprietary driver, MoltenVK...
    platform: str | None = None  # SYCL: level_zero / opencl; device: "compute capability" text
    device_type: str | None = None  # SYCL: gpu / cpu / acc
    count: int | None = None  # found: number of devices; metal-family: MTLGPUFamilyAppleN
    threads: int | None = None
    isa: tuple[str, ...] = ()

    @property
    def label(self) -> str | None:
        """llama.cpp's device name, e.g. Vulkan0, ROCm1, MTL0 (None when the line has no index)."""
        return f"{self.backend}{self.index}" if self.backend and self.index is not None else None


MAX_LINE = 2048  # longer lines are skipped: fast, and no number in them can reach Python's int() digit limit


def number(text: str) -> float:
    """A number as ggml prints it, with a decimal point or (some locales) a decimal comma."""
    return float(text.replace(",", "."))


def _backend_of(dev: str) -> tuple[str, int | None]:
    if dev.startswith("RPC["):
        return "RPC", None
    m = re.match(r"([A-Za-z]+?)(\d*)$", dev)
    name, idx = (m.group(1), m.group(2)) if m else (dev, "")
    if dev == "GPUOpenCL":
        return "OpenCL", 0
    canon = _CANON.get(name, name)
    return canon, int(idx) if idx else (None if canon in ("CPU", "BLAS", "RPC") else 0)


def _vulkan(m: re.Match[str], idx: int | None) -> DeviceLine:
    name = m["name"].strip()
    driver = m.groupdict().get("driver")
    if driver is not None and (driver.upper().startswith("RADV ") or not _DRIVER_WORDS.search(driver)):
        name, driver = f"{name} ({driver})", None  # a part of the name such as "(RADV NAVI31)" or "(ADL GT2)"
    gfx = _RADV_GFX.search(name)
    uma = m["uma"]
    return DeviceLine("vulkan", "Vulkan", idx, name, arch=gfx.group(1).lower() if gfx else None,
                      uma=None if uma is None else uma == "1", driver=driver)


def _device(m: re.Match[str], backend: str | None) -> DeviceLine:
    """`Device N: NAME, …` of ggml_cuda_init (CUDA, HIP, MUSA) and of the older SYCL device list."""
    name = m["name"].strip()
    rest = m["rest"] or ""
    vram = _VRAM.search(rest)
    total = number(vram["total"]) if vram else None
    free = number(vram["free"]) if vram and vram["free"] else None
    if m["gfx"]:
        return DeviceLine("device", "ROCm", int(m["idx"]), name, total, free, arch=m["gfx"].lower())
    cc = f"{m['major']}.{m['minor']}"
    arch = f"sm_{m['major']}{m['minor']}" if backend in (None, "CUDA") else None
    return DeviceLine("device", backend, int(m["idx"]), name, total, free, arch=arch, platform=cc)


def _sycl_row(m: re.Match[str]) -> DeviceLine:
    cells = [c.strip() for c in m["rest"].split("|")]
    name = cells[0] if cells else None
    total = None
    for cell in cells[1:]:
        if mm := re.fullmatch(r"(\d+)M", cell):  # newer tables: MiB with an M suffix
            total = float(mm.group(1))
            break
        if re.fullmatch(r"\d{9,}", cell):  # older tables: bytes
            total = int(cell) / (1 << 20)
            break
    return DeviceLine("sycl-row", "SYCL", int(m["idx"]), name or None, total, platform=m["platform"],
                      device_type=m["kind"])


def _opencl_name(raw: str) -> str:
    """'QUALCOMM Adreno(TM) (OpenCL 2.0 Adreno(TM) 650)' -> 'QUALCOMM Adreno(TM) 650': the version text
    carries the full model when the device name lacks it."""
    name = raw.strip()
    ver = _OPENCL_VER.search(name)
    if not ver:
        return name
    base, model = name[:ver.start()].strip(), ver["model"].strip()
    digits = re.search(r"\d{3}\b|X\d-\d+", model)
    if digits and digits.group(0) not in base:
        base = f"{base} {digits.group(0)}".strip()
    return base or model


def parse_device_line(line: str, backend: str | None = None) -> DeviceLine | None:
    """Parse one line of llama.cpp output (any log prefix, CRLF, decimal comma) into a DeviceLine, else None.

    `backend` is the context a preceding `found N <backend> devices` line set: it decides what a bare
    `Device N: NAME, compute capability X.Y` means (CUDA sm_XY; HIP and SYCL print other numbers there)."""
    text = line.rstrip("\r\n").rstrip()
    if not text or len(text) > MAX_LINE:  # llama.cpp's lines are < 600 characters: a longer one is not a device
        return None
    if _HEADER.search(text):
        return DeviceLine("header")
    if m := _FOUND.search(text):
        return DeviceLine("found", m["backend"], count=int(m["n"]),
                          total_mib=float(m["total"]) if m["total"] else None)
    if m := _VK_NEW.search(text):
        return _vulkan(m, int(m["idx"]))
    if m := _VK_OLD.search(text):
        return _vulkan(m, int(m["idx"]))
    if m := _VK_USING.search(text):
        return _vulkan(m, 0)
    if m := _BREAKDOWN.search(text):
        b, idx = _backend_of(m["dev"])
        return DeviceLine("breakdown", b, idx, m["name"].strip(), float(m["total"]), float(m["free"]))
    if m := _USING.search(text):
        b, idx = _backend_of(m["dev"])
        return DeviceLine("using", b, idx, m["name"].strip(), free_mib=number(m["free"]))
    if m := _LIST.search(text):
        b, idx = _backend_of(m["dev"])
        desc = _DEV_SUFFIX.sub("", m["desc"]).strip()
        gfx = _RADV_GFX.search(desc)
        return DeviceLine("list", b, idx, desc, number(m["total"]), number(m["free"]) if m["free"] else None,
                          arch=gfx.group(1).lower() if gfx else None)
    if m := _RPC.search(text):
        return DeviceLine("list", "RPC", None, m["dev"])
    if m := _SYCL_ROW.search(text):
        row = _sycl_row(m)
        return row if row.total_mib is not None or len(row.name or "") >= 3 else None  # not the feature table
    if m := _DEVICE.search(text):
        hint = backend
        if hint is None and m["gfx"] is None:
            low = m["name"].lower()
            hint = "ROCm" if any(w in low for w in ("amd", "radeon", "instinct")) else \
                "SYCL" if "intel" in low else "CUDA"
        return _device(m, hint)
    if m := _SYCL_MEM.search(text):
        return DeviceLine("sycl-mem", "SYCL", total_mib=int(m["bytes"]) / (1 << 20))
    if m := _MTL_NAME.search(text):
        if m["dev"]:
            return DeviceLine("metal-name", "MTL", int(m["dev"][3:]), m["inner"].strip() if m["inner"] else None)
        return DeviceLine("metal-name", "MTL", None, m["name"])
    if m := _MTL_FAMILY.search(text):
        return DeviceLine("metal-family", "MTL", count=int(m["gen"]))
    if m := _MTL_WS.search(text):
        return DeviceLine("metal-ws", "MTL", total_mib=number(m["mb"]))
    if m := _MTL_UMA.search(text):
        return DeviceLine("metal-uma", "MTL", uma=m["v"] == "true")
    if m := _OPENCL.search(text):
        return DeviceLine("opencl", "OpenCL", 0, _opencl_name(m["name"]) or None)
    if m := _SYSINFO.search(text):
        flags = dict(re.findall(r"\b([A-Z0-9_]+) = ([01])\b", m["flags"]))
        isa = tuple(sorted(v for k, v in _ISA_FLAGS.items() if flags.get(k) == "1"))
        return DeviceLine("sysinfo", threads=int(m["threads"]), isa=isa)
    return None


def split_joined(line: str) -> list[str]:
    """A pasted line that joins `found N … devices:` and `Device 0: …` is two lines."""
    m = re.search(r"devices(?: \([^)]*\))?:\s+(?=\S)", line)
    if m and _FOUND.search(line[:m.end()]):
        return [line[:m.end()], line[m.end():]]
    return [line]
