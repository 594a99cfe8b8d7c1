"""NVIDIA GPUs: NVML (nvidia-ml-py) when importable and initialised, else `nvidia-smi --query-gpu` CSV."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping

from facts.detect._probe import Probe
from facts.models import GPU

MIB = 1 << 20
SMI_FIELDS = ("index", "uuid", "name", "compute_cap", "memory.total", "memory.free", "pci.device_id")
SMI_ARGS = ["nvidia-smi", f"--query-gpu={','.join(SMI_FIELDS)}", "--format=csv,nounits"]
_NA = {"", "n/a", "[n/a]", "not supported", "[not supported]", "unknown error", "[unknown error]"}


def sm_arch(cc: str | tuple[int, int] | None) -> str | None:
    """CUDA compute capability → `sm_XY`: "8.9" → sm_89, (12, 1) → sm_121."""
    if cc is None:
        return None
    major, minor = (cc if isinstance(cc, tuple) else tuple(int(x) for x in str(cc).split(".", 1)))  # type: ignore[misc]
    return f"sm_{major}{minor}"


def pci_id_from_device_id(packed: int) -> str:
    """NVML/nvidia-smi pciDeviceId packs the device id in the high 16 bits, vendor in the low 16."""
    return f"{packed & 0xFFFF:04x}:{(packed >> 16) & 0xFFFF:04x}"


def gpu_from_nvml(values: Mapping[str, object]) -> GPU:
    """Map raw NVML values (index, name, uuid, memory_total, memory_free, cc, pci_device_id) to a GPU."""
    prov: dict[str, str] = {"name": "NVML nvmlDeviceGetName"}
    fields: dict[str, object] = {}
    if values.get("uuid"):
        fields["uuid"] = values["uuid"]
        prov["uuid"] = "NVML nvmlDeviceGetUUID"
    if isinstance(values.get("memory_total"), int):
        fields["dedicated_bytes"] = values["memory_total"]
        prov["dedicated_bytes"] = "NVML nvmlDeviceGetMemoryInfo.total"
    if isinstance(values.get("memory_free"), int):
        fields["free_bytes"] = values["memory_free"]
        prov["free_bytes"] = "NVML nvmlDeviceGetMemoryInfo.free"
    cc = values.get("cc")
    if cc:
        fields["arch"] = sm_arch(cc)  # type: ignore[arg-type]
        prov["arch"] = "NVML nvmlDeviceGetCudaComputeCapability"
    if isinstance(values.get("pci_device_id"), int):
        fields["pci_id"] = pci_id_from_device_id(values["pci_device_id"])  # type: ignore[arg-type]
        prov["pci_id"] = "NVML nvmlDeviceGetPciInfo.pciDeviceId"
    name = values.get("name")
    if isinstance(name, bytes):
        name = name.decode("utf-8", errors="replace")
    index = values.get("index")
    return GPU(vendor="nvidia", name=str(name or "NVIDIA GPU"), index=index if isinstance(index, int) else None,
               provenance=prov, **fields)  # type: ignore[arg-type]


def _cell(value: str) -> str | None:
    v = value.strip()
    return None if v.lower() in _NA else v


def parse_smi_csv(text: str) -> list[dict[str, str | None]]:
    """`nvidia-smi --format=csv` output (with its header) → one dict per GPU keyed by the header fields.

    Columns are split on ", "; a name containing commas is rebuilt from the surplus cells (parsed from both
    ends around it). Units in the header (`[MiB]`) or in cells (`24564 MiB`) are stripped later."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return []
    header = [re.sub(r"\s*\[.*?\]$", "", h.strip()) for h in lines[0].split(",")]
    if not any(h in SMI_FIELDS for h in header):
        raise ValueError(f"not nvidia-smi CSV output (no header): {lines[0][:80]!r}")
    rows = []
    for ln in lines[1:]:
        cells = ln.split(", ")
        extra = len(cells) - len(header)
        if extra < 0:
            raise ValueError(f"nvidia-smi CSV row has {len(cells)} cells, header has {len(header)}: {ln[:80]!r}")
        if extra and "name" in header:
            i = header.index("name")
            cells = cells[:i] + [", ".join(cells[i:i + extra + 1])] + cells[i + extra + 1:]
        elif extra:
            raise ValueError(f"nvidia-smi CSV row has too many cells: {ln[:80]!r}")
        rows.append({h: (_cell(c) if h != "name" else c.strip()) for h, c in zip(header, cells, strict=True)})
    return rows


def _mib(value: str | None) -> int | None:
    if value is None:
        return None
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(?:\s*MiB)?", value.strip())
    return int(float(m.group(1)) * MIB) if m else None


def gpu_from_smi(row: Mapping[str, str | None], position: int) -> tuple[GPU, list[str]]:
    """One parsed nvidia-smi row → (GPU, names of fields reported as N/A / Not Supported)."""
    src = "nvidia-smi --query-gpu"
    prov = {"name": f"{src} name"}
    fields: dict[str, object] = {}
    missing = []
    idx = row.get("index")
    fields["index"] = int(idx) if idx and idx.isdigit() else position
    if row.get("uuid"):
        fields["uuid"] = row["uuid"]
        prov["uuid"] = f"{src} uuid"
    for key, field in (("memory.total", "dedicated_bytes"), ("memory.free", "free_bytes")):
        if key in row:
            value = _mib(row[key])
            if value is None:
                missing.append(field)
            else:
                fields[field] = value
                prov[field] = f"{src} {key} (MiB)"
    if row.get("compute_cap"):
        fields["arch"] = sm_arch(row["compute_cap"])
        prov["arch"] = f"{src} compute_cap"
    if row.get("pci.device_id"):
        fields["pci_id"] = pci_id_from_device_id(int(str(row["pci.device_id"]), 16))
        prov["pci_id"] = f"{src} pci.device_id"
    return GPU(vendor="nvidia", name=row.get("name") or "NVIDIA GPU", provenance=prov, **fields), missing  # type: ignore[arg-type]


_L_GPU = re.compile(r"^GPU (?P<idx>\d+): (?P<name>.+?) \(UUID: (?P<uuid>GPU-[0-9a-fA-F-]+)\)\s*$")
_L_MIG = re.compile(r"^\s+MIG (?P<profile>\S+)\s+Device\s+(?P<dev>\d+): \(UUID: (?P<uuid>MIG-[0-9a-fA-F-]+)\)\s*$")


def parse_smi_list(text: str) -> list[dict[str, object]]:
    """`nvidia-smi -L` -> [{"index", "name", "uuid", "mig": [{"profile", "device", "uuid"}, ...]}, ...]."""
    gpus: list[dict[str, object]] = []
    for line in text.splitlines():
        if m := _L_GPU.match(line):
            gpus.append({"index": int(m["idx"]), "name": m["name"], "uuid": m["uuid"], "mig": []})
        elif (m := _L_MIG.match(line)) and gpus:
            gpus[-1]["mig"].append({"profile": m["profile"], "device": int(m["dev"]),  # type: ignore[union-attr]
                                    "uuid": m["uuid"]})
    return gpus


def gpu_from_mig(parent: GPU, mig: Mapping[str, object], source: str) -> GPU:
    """One MIG instance as its own GPU: the parent's identity (arch, PCI id), the instance's UUID and memory."""
    prov = {k: v for k, v in parent.provenance.items() if k in ("arch", "pci_id")}
    fields: dict[str, object] = {}
    if isinstance(mig.get("memory_total"), int):
        fields["dedicated_bytes"] = mig["memory_total"]
        prov["dedicated_bytes"] = f"{source} MIG device memory"
    if isinstance(mig.get("memory_free"), int):
        fields["free_bytes"] = mig["memory_free"]
    profile = mig.get("profile") or ""
    name = f"{parent.name} MIG {profile}".strip()
    prov["name"] = f"{source} (MIG instance of GPU {parent.index})"
    prov["uuid"] = source
    return GPU(vendor="nvidia", name=name, arch=parent.arch, pci_id=parent.pci_id, uuid=str(mig["uuid"]),
               index=parent.index, unified=False, integrated=False, provenance=prov, **fields)  # type: ignore[arg-type]


def apply_mig(gpus: list[GPU], listing: list[dict[str, object]], probe: Probe | None = None) -> list[GPU]:
    """Replace every GPU in MIG mode by its instances: CUDA sees the instances, never the whole GPU."""
    out: list[GPU] = []
    for g in gpus:
        entry = next((e for e in listing if g.uuid and e["uuid"] == g.uuid), None) or \
            next((e for e in listing if not g.uuid and e["index"] == g.index), None)
        migs = entry["mig"] if entry else []
        if not migs:
            out.append(g)
            continue
        if probe is not None:
            probe.warn(f"NVIDIA GPU {g.index} ({g.name}) is in MIG mode: {len(migs)} instance(s), each its own "  # type: ignore[arg-type]
                       "CUDA device; the whole GPU's memory is no budget")
        for m in migs:  # type: ignore[union-attr]
            gpu = gpu_from_mig(g, m, "nvidia-smi -L")
            if probe is not None:
                probe.miss(f"gpus[{len(out)}].dedicated_bytes",
                           f"MIG instance {m['profile']}: nvidia-smi -L names the profile, not its usable memory "
                           "(NVML gives it; nvidia-ml-py not usable here)")
            out.append(gpu)
    return out


def apply_visible_devices(gpus: list[GPU], value: str | None) -> tuple[list[GPU], str | None]:
    """Keep and reorder GPUs as CUDA_VISIBLE_DEVICES lists them (indices or UUID prefixes); CUDA stops at
    the first entry that names no device. Returns (gpus, note) where note says what was applied."""
    if value is None:
        return gpus, None
    chosen: list[GPU] = []
    for entry in (e.strip() for e in value.split(",")):
        hit = None
        if entry.isdigit():
            hit = next((g for g in gpus if g.index == int(entry)), None)
        elif entry:
            hit = next((g for g in gpus if g.uuid and g.uuid.lower().startswith(entry.lower())), None)
        if hit is None or hit in chosen:
            break
        chosen.append(hit)
    return chosen, f"CUDA_VISIBLE_DEVICES={value!r} keeps {len(chosen)} of {len(gpus)} NVIDIA GPU(s)"


def _nvml_values(probe: Probe) -> list[dict[str, object]] | None:
    """Raw per-device values from NVML, or None (with an Absent) when pynvml is missing or init fails."""
    try:
        import pynvml
    except ImportError:
        probe.miss("gpus[nvidia] via NVML", "nvidia-ml-py (pynvml) is not installed")
        return None
    try:
        pynvml.nvmlInit()
    except Exception as err:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...: all mean "not usable here"
        probe.miss("gpus[nvidia] via NVML", f"nvmlInit failed: {err}")
        return None
    out: list[dict[str, object]] = []
    try:
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            v: dict[str, object] = {"index": i, "name": pynvml.nvmlDeviceGetName(h)}
            for key, call in (("uuid", pynvml.nvmlDeviceGetUUID), ("cc", pynvml.nvmlDeviceGetCudaComputeCapability),
                              ("pci", pynvml.nvmlDeviceGetPciInfo), ("mem", pynvml.nvmlDeviceGetMemoryInfo)):
                try:
                    v[key] = call(h)
                except Exception as err:  # NOT_SUPPORTED on GB10 / Jetson memory
                    field = {"uuid": "uuid", "cc": "arch", "pci": "pci_id", "mem": "dedicated_bytes"}[key]
                    probe.miss(f"gpus[{i}].{field}", f"NVML {call.__name__}: {err}")
            uuid = v.pop("uuid", None)
            v["uuid"] = uuid.decode() if isinstance(uuid, bytes) else uuid
            v["mig"] = _nvml_mig(pynvml, h, i, probe)
            if "pci" in v:
                v["pci_device_id"] = v.pop("pci").pciDeviceId  # type: ignore[union-attr]
            if "mem" in v:
                mem = v.pop("mem")
                v["memory_total"], v["memory_free"] = int(mem.total), int(mem.free)  # type: ignore[union-attr]
            out.append(v)
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()
    return out


def _nvml_mig(pynvml, handle, i: int, probe: Probe) -> list[dict[str, object]]:  # pragma: no cover - needs NVML
    """The MIG instances of one device (empty when MIG is off or unsupported), with their exact memory."""
    try:
        current, _pending = pynvml.nvmlDeviceGetMigMode(handle)
    except Exception:  # NOT_SUPPORTED: no MIG on this GPU
        return []
    if current != 1:
        return []
    out: list[dict[str, object]] = []
    try:
        count = pynvml.nvmlDeviceGetMaxMigDeviceCount(handle)
    except Exception as err:
        probe.miss(f"gpus[{i}] MIG instances", f"NVML nvmlDeviceGetMaxMigDeviceCount: {err}")
        return []
    for j in range(count):
        try:
            mh = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, j)
        except Exception:  # NOT_FOUND: an empty slot
            continue
        entry: dict[str, object] = {}
        try:
            uuid = pynvml.nvmlDeviceGetUUID(mh)
            entry["uuid"] = uuid.decode() if isinstance(uuid, bytes) else uuid
            name = pynvml.nvmlDeviceGetName(mh)
            entry["profile"] = (name.decode() if isinstance(name, bytes) else str(name)).rsplit("MIG", 1)[-1].strip()
            mem = pynvml.nvmlDeviceGetMemoryInfo(mh)
            entry["memory_total"], entry["memory_free"] = int(mem.total), int(mem.free)
        except Exception as err:
            probe.miss(f"gpus[{i}] MIG instance {j}", f"NVML: {err}")
        if entry.get("uuid"):
            out.append(entry)
    return out


def nvidia_gpus(probe: Probe, *, use_nvml: bool) -> list[GPU] | None:
    """NVIDIA GPUs via NVML (when `use_nvml`) else nvidia-smi; None when neither source answered."""
    gpus: list[GPU] | None = None
    values = _nvml_values(probe) if use_nvml else None
    if values is not None:
        gpus = []
        for v in values:
            parent = gpu_from_nvml(v)
            migs = v.get("mig") or []
            if migs:
                probe.warn(f"NVIDIA GPU {parent.index} ({parent.name}) is in MIG mode: {len(migs)} instance(s), "  # type: ignore[arg-type]
                           "each its own CUDA device")
                gpus.extend(gpu_from_mig(parent, m, "NVML") for m in migs)  # type: ignore[union-attr]
            else:
                gpus.append(parent)
    else:
        text = probe.run(SMI_ARGS, "gpus[nvidia] via nvidia-smi")
        if text is not None:
            try:
                rows = parse_smi_csv(text)
                gpus = []
                for pos, row in enumerate(rows):
                    gpu, missing = gpu_from_smi(row, pos)
                    for field in missing:
                        probe.miss(f"gpus[{gpu.index}].{field}",
                                   "nvidia-smi reports [N/A] / Not Supported (unified-memory part: GB10, Jetson)")
                    gpus.append(gpu)
            except ValueError as err:
                probe.miss("gpus[nvidia] via nvidia-smi", f"unparsable output: {err}")
        if gpus:
            listing = probe.run(["nvidia-smi", "-L"], "gpus[nvidia] MIG instances (nvidia-smi -L)")
            if listing is not None:
                gpus = apply_mig(gpus, parse_smi_list(listing), probe)
    if gpus is None:
        return None
    gpus, note = apply_visible_devices(gpus, probe.env.get("CUDA_VISIBLE_DEVICES"))
    if note:
        probe.warn(note)
    return gpus
