"""Lemonade `GET /v1/system-info` (current and older schema) -> HardwareFacts."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from facts import catalog
from facts.archetype import nominal_gb
from facts.documents import JSONProblem, parse_json
from facts.errors import FactsInputError
from facts.models import CPU, GIB, GPU, NPU, Absent, HardwareFacts, Memory, OSInfo

KIND = "system-info"
MAX_PLAUSIBLE_GIB = 4096.0  # no single device or machine in scope has more
_SIZE = re.compile(r"^\s*([0-9]+(?:[.,][0-9]+)?)\s*(TB|GB|MB|TiB|GiB|MiB)?\s*$", re.IGNORECASE)
_UNIT_GIB = {"tb": 1024.0, "tib": 1024.0, "gb": 1.0, "gib": 1.0, "mb": 1 / 1024, "mib": 1 / 1024}
_INSTALLED = ("installed", "update_available", "update_required")
_CORES_SUFFIX = re.compile(r"\s*\(\d+ cores, \d+ logical processors\)\s*$")  # Windows "Processor" of 9.x+
_FALLBACK_ORDER = {"metal": 0, "cuda": 1, "vulkan": 2, "rocm": 3, "system": 4, "npu": 5, "default": 6, "cpu": 7}
_OLD_ENGINE = re.compile(r"^llamacpp-(vulkan|rocm|metal|cpu|cuda)$")


class _Doc:
    """Typed access to the JSON document that records every problem with its JSON path."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def get(self, obj: dict[str, Any], key: str, kind: str, path: str) -> Any:
        if key not in obj or obj[key] is None:
            return None
        value = obj[key]
        ok = {
            "str": isinstance(value, str),
            "bool": isinstance(value, bool),
            "int": isinstance(value, int) and not isinstance(value, bool),
            "number": isinstance(value, (int, float)) and not isinstance(value, bool),
            "object": isinstance(value, dict),
            "array": isinstance(value, list),
        }[kind]
        if kind == "number" and ok and not math.isfinite(float(value)):
            ok = False
        if not ok:
            article = "an" if kind[0] in "aeio" else "a"
            self.problems.append(f"{path}: expected {article} {kind}, got {json.dumps(value)[:60]}")
            return None
        return value


def parse_size_gib(text: str) -> float | None:
    """'124.95 GB' / '64 GB' / '512 MB' / '1 TB' -> GiB (Lemonade prints GiB with a GB label)."""
    m = _SIZE.match(text)
    if not m:
        return None
    value = float(m.group(1).replace(",", "."))
    return value * _UNIT_GIB[(m.group(2) or "GB").lower()]


def kfd_to_gfx(text: str) -> str | None:
    """A KFD gfx_target_version as text (Lemonade's Linux GPU name) '110501' -> 'gfx1151'."""
    return catalog.gfx_target(int(text)) if re.fullmatch(r"\d{5,6}", text.strip()) else None


def _load(doc: dict[str, Any] | str | bytes, source: str) -> dict[str, Any]:
    if isinstance(doc, dict):
        data: Any = doc
    else:
        text = doc.decode("utf-8", errors="replace") if isinstance(doc, bytes) else doc
        try:
            data = parse_json(text)
        except JSONProblem as err:
            hint = ""
            if err.line is not None and re.search(
                    r"Available devices:|ggml_(?:vulkan|cuda_init|metal_init)|^\s*\w+\d+: ", text, re.M):
                hint = " (this looks like llama.cpp device output: pass it as --llama-devices)"
            raise FactsInputError(source, [f"{err.where}: {err.message}{hint}"], kind=KIND) from None
    if not isinstance(data, dict):
        raise FactsInputError(source, [f"(document): expected a JSON object, got {type(data).__name__}"], kind=KIND)
    markers = ("devices", "OS Version", "Physical Memory", "Processor")
    if not any(k in data for k in markers):
        keys = ", ".join(sorted(data)[:8]) or "none"
        raise FactsInputError(source, [f"(document): none of the system-info keys {', '.join(markers)} "
                                       f"(top-level keys: {keys}); is this another kind of document?"],
                              kind=KIND)
    return data


def _os(version: str | None, label: str) -> OSInfo:
    if not version:
        return OSInfo()
    low = version.lower().removeprefix("microsoft ")  # C++ Lemonade on Windows: WMI's "Microsoft Windows 11 …"
    name = "linux" if low.startswith("linux") else "windows" if low.startswith("windows") else \
        "macos" if low.startswith(("macos", "darwin", "mac os")) else "unknown"
    return OSInfo(name=name, version=version, provenance={"name": f"{label}:OS Version"})


def _cpu_arch(family: str | None, name: str | None) -> str:
    if family in ("x86_64", "arm64"):
        return family
    low = (name or "").lower()
    if any(k in low for k in ("apple", "snapdragon", "qualcomm", "cortex", "neoverse", "grace")):
        return "arm64"
    if any(k in low for k in ("amd", "intel", "ryzen", "xeon", "epyc", "core")):
        return "x86_64"
    return "unknown"


class _Builder:
    def __init__(self, label: str) -> None:
        self.d = _Doc()
        self.label = label
        self.gpus: list[dict[str, Any]] = []
        self.absent: list[Absent] = []
        self.warnings: list[str] = []

    def prov(self, path: str) -> str:
        return f"{self.label}:{path}"

    def gib(self, obj: dict[str, Any], key: str, path: str) -> int | None:
        value = self.d.get(obj, key, "number", f"{path}.{key}")
        if value is None:
            return None
        if value == 0:  # 9.2-10.2 always print the iGPU sizes, 0.0 when Windows gives none: unknown, not 0
            return None
        if value < 0 or value > MAX_PLAUSIBLE_GIB:
            self.warnings.append(f"{path}.{key} = {value!r} GiB is implausible; ignored")
            return None
        return int(round(value * GIB))

    def gpu(self, entry: Any, path: str, vendor: str, *, integrated: bool | None) -> None:
        if not isinstance(entry, dict):
            self.d.problems.append(f"{path}: expected an object, got {json.dumps(entry)[:60]}")
            return
        available = self.d.get(entry, "available", "bool", f"{path}.available")
        name = self.d.get(entry, "name", "str", f"{path}.name")
        family = self.d.get(entry, "family", "str", f"{path}.family") or None
        integ = self.d.get(entry, "integrated", "bool", f"{path}.integrated")
        cc = self.d.get(entry, "compute_capability", "str", f"{path}.compute_capability")
        index = self.d.get(entry, "index", "int", f"{path}.index")
        uuid = self.d.get(entry, "uuid", "str", f"{path}.uuid")
        vram = self.gib(entry, "vram_gb", path)
        gtt = self.gib(entry, "virtual_mem_gb", path)
        if available is not True or not name:
            return  # placeholder ("No NVIDIA discrete GPU found") or a device Lemonade could not use
        g: dict[str, Any] = {"vendor": vendor, "name": name, "provenance": {"name": self.prov(f"{path}.name")}}
        arch, arch_key = None, None
        if vendor == "amd":
            if arch := kfd_to_gfx(name):
                arch_key = "name"  # Linux: the KFD gfx_target_version
            elif family and not family.lower().endswith("x"):
                arch, arch_key = family, "family"
            elif family:
                g["_arch_hint"] = family  # Lemonade's wildcard family (gfx110X): narrows the catalog match
        elif vendor == "nvidia":
            if cc and re.fullmatch(r"\d+\.\d+", cc):
                major, minor = cc.split(".")
                arch, arch_key = f"sm_{major}{minor}", "compute_capability"
            elif family and family.startswith("sm_"):
                arch, arch_key = family, "family"
        if arch:
            g["arch"] = arch
            g["provenance"]["arch"] = self.prov(f"{path}.{arch_key}")
        integrated = integ if integ is not None else integrated
        if integrated is not None:
            g["integrated"] = integrated
            g["provenance"]["integrated"] = self.prov(f"{path}.integrated" if integ is not None else path)
        if vendor == "apple":
            g.update(unified=True, integrated=True)
            if vram is not None:  # Metal recommendedMaxWorkingSetSize: the GPU's share of unified RAM
                g["shared_bytes"] = vram
                g["provenance"]["shared_bytes"] = self.prov(f"{path}.vram_gb")
        else:
            if vram is not None:
                g["dedicated_bytes"] = vram
                g["provenance"]["dedicated_bytes"] = self.prov(f"{path}.vram_gb")
            if gtt is not None:
                g["shared_bytes"] = gtt
                g["provenance"]["shared_bytes"] = self.prov(f"{path}.virtual_mem_gb")
        if index is not None and index >= 0:
            g["index"] = index
        if uuid:
            g["uuid"] = uuid
        g["_path"] = path
        self.gpus.append(g)

    def devices(self, devices: dict[str, Any]) -> NPU | None:
        npu = None
        for key, vendor, integrated in (("amd_gpu", "amd", None), ("nvidia_gpu", "nvidia", None),
                                        ("amd_dgpu", "amd", False), ("nvidia_dgpu", "nvidia", False)):
            arr = self.d.get(devices, key, "array", f"devices.{key}")
            for i, entry in enumerate(arr or []):
                self.gpu(entry, f"devices.{key}[{i}]", vendor, integrated=integrated)
        for key, vendor in (("amd_igpu", "amd"), ("nvidia_igpu", "nvidia"), ("metal", "apple")):
            obj = self.d.get(devices, key, "object", f"devices.{key}")
            if obj is not None:
                self.gpu(obj, f"devices.{key}", vendor, integrated=True)
        for key in ("amd_npu", "npu"):
            obj = self.d.get(devices, key, "object", f"devices.{key}")
            if obj is not None:
                name = self.d.get(obj, "name", "str", f"devices.{key}.name")
                fam = self.d.get(obj, "family", "str", f"devices.{key}.family")
                avail = self.d.get(obj, "available", "bool", f"devices.{key}.available")
                npu = NPU(name=name or None, family=fam or None, available=bool(avail),
                          provenance={"available": self.prov(f"devices.{key}.available")})
        return npu


def _recipes(b: _Builder, data: dict[str, Any]) -> tuple[list[str], list[str], dict[str, str]]:
    backends: list[str] = []
    installed: list[str] = []
    defaults: dict[str, str] = {}
    recipes = b.d.get(data, "recipes", "object", "recipes") or {}

    def order(item: tuple[str, Any]) -> tuple[int, str]:
        o = item[1].get("order") if isinstance(item[1], dict) else None
        return (o if isinstance(o, int) and not isinstance(o, bool) else 1_000_000, item[0])

    for recipe, info in sorted(recipes.items(), key=order):
        path = f"recipes.{recipe}"
        if not isinstance(info, dict):
            b.d.problems.append(f"{path}: expected an object, got {json.dumps(info)[:60]}")
            continue
        rows = b.d.get(info, "backends", "object", f"{path}.backends") or {}
        support = b.d.get(info, "support", "array", f"{path}.support") or []
        preference = [s.get("backend") for s in support if isinstance(s, dict) and isinstance(s.get("backend"), str)]
        # Lemonade's `support` list is its preference order; older documents (9.x) have none, and their keys
        # arrive sorted by name, so the order Lemonade's own table used then is taken (metal > vulkan > rocm > cpu)
        names = sorted(rows, key=lambda n: (preference.index(n) if n in preference else len(preference),
                                            _FALLBACK_ORDER.get(n, len(_FALLBACK_ORDER)), n))
        for name in names:
            row = rows[name]
            if not isinstance(row, dict):
                b.d.problems.append(f"{path}.backends.{name}: expected an object, got {json.dumps(row)[:60]}")
                continue
            state = b.d.get(row, "state", "str", f"{path}.backends.{name}.state")
            if state is None and "supported" in row:  # 9.3: {"supported": bool, "available": bool}
                supported = b.d.get(row, "supported", "bool", f"{path}.backends.{name}.supported")
                available = b.d.get(row, "available", "bool", f"{path}.backends.{name}.available")
                state = "unsupported" if not supported else "installed" if available else "installable"
            if state is None or state == "unsupported":
                continue
            backends.append(f"{recipe}:{name}")
            if state in _INSTALLED:
                installed.append(f"{recipe}:{name}")
        default = b.d.get(info, "default_backend", "str", f"{path}.default_backend")
        if default:
            defaults[recipe] = default
    # older schema: devices.<dev>.inference_engines {"llamacpp-vulkan": {"available": true}}
    devices = data.get("devices") if isinstance(data.get("devices"), dict) else {}
    for dev in devices.values():
        for entry in dev if isinstance(dev, list) else [dev]:
            engines = entry.get("inference_engines") if isinstance(entry, dict) else None
            for eng, st in (engines or {}).items() if isinstance(engines, dict) else ():
                m = _OLD_ENGINE.match(eng)
                if m and isinstance(st, dict) and st.get("available") is True:
                    name = f"llamacpp:{m.group(1)}"
                    for lst in (backends, installed):
                        if name not in lst:
                            lst.append(name)
    return backends, installed, defaults


def from_system_info(doc: dict[str, Any] | str | bytes, *, source: str = "system-info") -> HardwareFacts:
    """Parse a Lemonade system-info document; malformed input raises FactsInputError (one line per problem)."""
    data = _load(doc, source)
    label = source if source.startswith("system-info") else f"system-info:{source}"
    b = _Builder(label)
    d = b.d
    os_version = d.get(data, "OS Version", "str", "OS Version")
    processor = d.get(data, "Processor", "str", "Processor")
    phys_text = d.get(data, "Physical Memory", "str", "Physical Memory")
    devices = d.get(data, "devices", "object", "devices")
    if "devices" not in data:
        d.problems.append("devices: missing (every system-info document has a devices object)")
    if isinstance(data.get("error"), str):
        b.warnings.append(f"Lemonade reported a detection failure: {data['error']}")
    cpu_obj = d.get(devices or {}, "cpu", "object", "devices.cpu") or {}
    cpu_name = d.get(cpu_obj, "name", "str", "devices.cpu.name") or \
        (_CORES_SUFFIX.sub("", processor) if processor else None)
    cores = d.get(cpu_obj, "cores", "int", "devices.cpu.cores")
    threads = d.get(cpu_obj, "threads", "int", "devices.cpu.threads")
    family = d.get(cpu_obj, "family", "str", "devices.cpu.family")
    npu = b.devices(devices or {})
    backends, installed, defaults = _recipes(b, data)
    phys_gib = None
    if phys_text is not None:
        phys_gib = parse_size_gib(phys_text)
        if phys_gib is None:
            d.problems.append(f"Physical Memory: expected a size like \"124.95 GB\", got {json.dumps(phys_text)}")
        elif not 0.25 <= phys_gib <= 64 * 1024:
            b.warnings.append(f"Physical Memory {phys_text!r} is implausible; ignored")
            phys_gib = None
    if d.problems:
        raise FactsInputError(source, d.problems, kind=KIND)

    os_info = _os(os_version, label)
    cpu_prov = {field: f"{label}:devices.cpu.{key}" for field, key in
                (("name", "name"), ("physical_cores", "cores"), ("threads", "threads")) if cpu_obj.get(key)}
    if "name" not in cpu_prov and processor:
        cpu_prov["name"] = f"{label}:Processor"
    cpu = CPU(name=cpu_name, arch=_cpu_arch(family, cpu_name),
              physical_cores=cores if cores and cores > 0 else None,
              threads=threads if threads and threads > 0 else None, provenance=cpu_prov)

    # Linux MemTotal excludes an iGPU's BIOS carve-out: add it back for the nominal (box) size
    carve = sum(g.get("dedicated_bytes", 0) for g in b.gpus if g.get("integrated")) / GIB
    nominal = None
    mem_prov: dict[str, str] = {}
    if phys_gib is not None:
        extra = carve if os_info.name == "linux" else 0.0
        nominal = nominal_gb(phys_gib + extra)
        mem_prov = {"total_bytes": label + ":Physical Memory",
                    "nominal_gb": label + ":Physical Memory" + (" + iGPU carve-out" if extra else "") + " (rounded up)"}

    gpus: list[GPU] = []
    for i, g in enumerate(b.gpus):
        path = g.pop("_path")
        hint = g.pop("_arch_hint", None)
        pool = (g.get("dedicated_bytes") or 0) + (g.get("shared_bytes") or 0)
        if (g.get("integrated") or g["vendor"] == "apple") and phys_gib is not None and "shared_bytes" in g \
                and pool / GIB > (phys_gib + carve) * 1.10:
            b.warnings.append(f"{path}: GPU memory pool {pool / GIB:.1f} GiB exceeds Physical Memory "
                              f"{phys_gib:.2f} GiB; the shared pool is ignored")
            g.pop("shared_bytes")
            g["provenance"].pop("shared_bytes", None)
        gpu = GPU(**g)
        if hint and gpu.arch is None:
            cands, _ = catalog.resolve(vendor=gpu.vendor, name=gpu.name, arch=hint)
            archs = {r.arch for r in cands if catalog.arch_matches(r.arch, hint)}
            if len(archs) == 1:
                gpu = gpu.model_copy(update={"arch": archs.pop(),
                                             "provenance": {**gpu.provenance, "arch": f"{label}:{path}.family + gpus.csv"}})
        gpu = catalog.enrich(gpu, cpu_name=cpu_name, nominal_ram_gb=nominal)
        if gpu.integrated and gpu.dedicated_bytes is None and gpu.shared_bytes is None:
            why = "Lemonade reports no memory for integrated GPUs on Windows" if os_info.name == "windows" \
                else "not in the system-info document"
            b.absent.append(Absent(fact=f"gpus[{i}].dedicated_bytes", reason=why))
            b.absent.append(Absent(fact=f"gpus[{i}].shared_bytes", reason=why))
        gpus.append(gpu)

    # a unified part's box size cannot be below every configuration it was sold with
    for gpu in gpus:
        row = catalog.row(gpu.marketing_name) if gpu.marketing_name else None
        if nominal and row and row.unified and row.vram_gb and nominal < min(row.vram_gb) * 0.97:
            b.warnings.append(f"Physical Memory {phys_text} is below every configuration {row.marketing_name} "
                              f"was sold with ({'/'.join(f'{v:g}' for v in row.vram_gb)} GB): the BIOS carve-out "
                              "is probably not counted; nominal RAM unknown")
            nominal = None
            mem_prov.pop("nominal_gb", None)
    memory = Memory(total_bytes=int(phys_gib * GIB) if phys_gib else None, nominal_gb=nominal, provenance=mem_prov)
    if phys_gib is None:
        b.absent.append(Absent(fact="memory.total_bytes", reason="no usable 'Physical Memory' in the document"))
    b.absent.append(Absent(fact="memory.available_bytes", reason="system-info has no live free-memory figure"))
    return HardwareFacts(os=os_info, cpu=cpu, memory=memory, gpus=tuple(gpus), npu=npu, backends=tuple(backends),
                         installed_backends=tuple(installed), default_backends=defaults, source=label,
                         absent=tuple(b.absent), warnings=tuple(b.warnings))
