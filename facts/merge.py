"""merge(): combine HardwareFacts from several sources; one physical GPU stays one GPU."""

from __future__ import annotations

import re

from facts.catalog import normalize
from facts.models import CPU, GPU, NPU, Absent, HardwareFacts, Memory, OSInfo

MEMORY_TOLERANCE = 0.03
_DRIVER_SUFFIX = re.compile(r"\s*\((?:RADV|radv|NVIDIA|AMD proprietary driver|Intel[^()]*)[^()]*\)")


def _norm_name(name: str) -> str:
    return _DRIVER_SUFFIX.sub("", normalize(name)).lower().strip()


def _total(g: GPU) -> int | None:
    if g.dedicated_bytes is None and g.shared_bytes is None:
        return None
    if g.unified:
        return (g.dedicated_bytes or 0) + (g.shared_bytes or 0)
    return g.dedicated_bytes


def _guessed(g: GPU) -> bool:
    """The catalog row was a conservative pick among several (a generic name like 'AMD Radeon(TM) Graphics')."""
    return "ambiguous" in g.provenance.get("marketing_name", "")


def same_gpu(a: GPU, b: GPU) -> bool:
    """Two reports of one physical GPU: same vendor, same identity (uuid / catalog row / arch / name), same memory."""
    if a.uuid and b.uuid:
        return a.uuid == b.uuid
    if a.pci_id and b.pci_id and a.pci_id != b.pci_id:
        return False
    if "unknown" not in (a.vendor, b.vendor) and a.vendor != b.vendor:
        return False
    if a.marketing_name and b.marketing_name and not (_guessed(a) or _guessed(b)):
        ident = a.marketing_name == b.marketing_name
    elif a.arch and b.arch:
        ident = a.arch == b.arch
    else:
        ident = _norm_name(a.name) == _norm_name(b.name)
    if not ident:
        return False
    if a.unified or b.unified:
        return True  # an APU's pool differs by source (carve-out, GTT, working set) but it is one device
    ta, tb = _total(a), _total(b)
    if ta and tb:
        return abs(ta - tb) <= MEMORY_TOLERANCE * max(ta, tb)
    return True


def combine_gpu(a: GPU, b: GPU) -> GPU:
    """`a` with its unknown fields filled from `b`; llama.cpp device names and provenance united."""
    update: dict[str, object] = {}
    prov = {**b.provenance, **a.provenance}
    for name in GPU.model_fields:
        if name in ("provenance", "llama_devices"):
            continue
        mine, theirs = getattr(a, name), getattr(b, name)
        from_table = a.provenance.get(name, "").startswith("gpus.csv:")
        if theirs is not None and (mine is None or (from_table and _guessed(a) and not _guessed(b))):
            update[name] = theirs  # a gap, or a conservative catalog guess that b's report resolves
            if name in b.provenance:
                prov[name] = b.provenance[name]
    update["llama_devices"] = tuple(dict.fromkeys(a.llama_devices + b.llama_devices))
    update["provenance"] = prov
    return a.model_copy(update=update)


def dedupe_gpus(gpus: list[GPU]) -> list[GPU]:
    """Fold devices that llama.cpp reports through several backends (Vulkan0 + ROCm0) into one GPU.

    Devices of the same backend are always distinct (two identical cards stay two)."""
    out: list[GPU] = []
    for g in gpus:
        backends = {re.sub(r"\d+$", "", d) for d in g.llama_devices}
        match = next((i for i, o in enumerate(out)
                      if not backends & {re.sub(r"\d+$", "", d) for d in o.llama_devices} and same_gpu(o, g)), None)
        if match is None:
            out.append(g)
        else:
            out[match] = combine_gpu(out[match], g)
    return out


def _fill(a, b):
    """Model `a` with None fields filled from `b` (same model type); provenance united, `a` first."""
    update: dict[str, object] = {}
    for name in type(a).model_fields:
        va, vb = getattr(a, name), getattr(b, name)
        if name == "provenance":
            update[name] = {**vb, **va}
        elif va in (None, (), "unknown") and vb not in (None, (), "unknown"):
            update[name] = vb
    return a.model_copy(update=update)


def merge(*facts: HardwareFacts) -> HardwareFacts:
    """Combine facts: earlier sources win, later ones fill gaps (never overwrite a value with None)."""
    if not facts:
        return HardwareFacts()
    os_info, cpu, memory = OSInfo(), CPU(), Memory()
    npu: NPU | None = None
    gpus: list[GPU] = []
    backends: list[str] = []
    installed: list[str] = []
    defaults: dict[str, str] = {}
    sources: list[str] = []
    warnings: list[str] = []
    absent: list[Absent] = []
    for hw in facts:
        os_info, cpu, memory = _fill(os_info, hw.os), _fill(cpu, hw.cpu), _fill(memory, hw.memory)
        if hw.npu is not None:
            npu = hw.npu if npu is None else _fill(npu, hw.npu)
            if hw.npu.available and not npu.available:
                npu = npu.model_copy(update={"available": True})
        index_map: dict[int, int] = {}
        taken: set[int] = set()
        for i, g in enumerate(hw.gpus):
            j = next((k for k, o in enumerate(gpus) if k not in taken and same_gpu(o, g)), None)
            if j is None:
                gpus.append(g)
                j = len(gpus) - 1
            else:
                gpus[j] = combine_gpu(gpus[j], g)
            taken.add(j)
            index_map[i] = j
        for a in hw.absent:
            m = re.match(r"gpus\[(\d+)\](.*)", a.fact)
            if m and int(m.group(1)) in index_map:
                a = Absent(fact=f"gpus[{index_map[int(m.group(1))]}]{m.group(2)}", reason=a.reason)
            absent.append(a)
        backends += [b for b in hw.backends if b not in backends]
        installed += [b for b in hw.installed_backends if b not in installed]
        for recipe, backend in hw.default_backends.items():
            defaults.setdefault(recipe, backend)
        sources += [hw.source] if hw.source not in sources else []
        warnings += [w for w in hw.warnings if w not in warnings]
    merged = HardwareFacts(os=os_info, cpu=cpu, memory=memory, gpus=tuple(gpus), npu=npu, backends=tuple(backends),
                           installed_backends=tuple(installed), default_backends=defaults,
                           source=" + ".join(sources), warnings=tuple(warnings))
    still = [a for a in dict.fromkeys(absent) if _lookup(merged, a.fact) is None]
    return merged.model_copy(update={"absent": tuple(still)})


def _lookup(hw: HardwareFacts, path: str) -> object:
    """The value at a dotted fact path like 'gpus[0].dedicated_bytes' (None when unknown or not found)."""
    obj: object = hw
    for part in path.split("."):
        m = re.fullmatch(r"(\w+)(?:\[(\d+)\])?", part)
        if not m or not hasattr(obj, m.group(1)):
            return None
        obj = getattr(obj, m.group(1))
        if m.group(2) is not None:
            idx = int(m.group(2))
            obj = obj[idx] if isinstance(obj, tuple) and idx < len(obj) else None
        if obj is None:
            return None
    return obj
