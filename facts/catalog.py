"""The GPU spec catalog (facts/data/gpus.csv): load once, match devices, enrich GPU facts."""

from __future__ import annotations

import csv
import functools
import io
import re
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

from facts.models import GIB

if TYPE_CHECKING:
    from facts.models import GPU

VRAM_TOLERANCE = 0.03  # a "24 GB" card reports 23.98 GiB

# device classes whose memory is the system RAM pool (the GPU sits in the CPU package / SoC)
INTEGRATED_CLASSES = frozenset({"apu-igpu", "display-igpu", "soc-igpu", "soc", "datacenter-apu"})

_MARKS = re.compile(r"\((?:TM|R|C)\)|[\u2122\u00ae\u00a9]", re.IGNORECASE)
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class CatalogRow:
    """One row of gpus.csv, typed. `vram_gb` and `compute_units` hold the sold options."""

    vendor: str  # lower-case: amd, nvidia, apple, intel, qualcomm
    marketing_name: str
    match_source: str  # the CSV's regex text; compiled on first use (start-up time matters)
    fallback_source: str
    arch: str
    family: str
    device_class: str
    memory_type: str
    vram_gb: tuple[float, ...]
    bus_width_bits: int | None
    bandwidth_gbs: float | None
    bandwidth_min_gbs: float | None
    unified: bool
    year: int | None
    compute_units: tuple[int, ...]
    pci_ids: tuple[str, ...]
    disambiguate_by: tuple[str, ...]

    @property
    def match_patterns(self) -> re.Pattern[str] | None:
        return _pattern(self.match_source)

    @property
    def fallback_patterns(self) -> re.Pattern[str] | None:
        return _pattern(self.fallback_source)

    @property
    def integrated(self) -> bool:
        return self.device_class in INTEGRATED_CLASSES

    @property
    def spec_bandwidth_gbs(self) -> float | None:
        """The vendor-spec peak; the slowest common configuration when the peak is not confirmed."""
        return self.bandwidth_gbs if self.bandwidth_gbs is not None else self.bandwidth_min_gbs


def normalize(name: str) -> str:
    """Remove (TM)/(R)/(C)/™/®/©, collapse whitespace, trim."""
    return _SPACES.sub(" ", _MARKS.sub("", name)).strip()


def _floats(cell: str) -> tuple[float, ...]:
    return tuple(float(x) for x in cell.split(";") if x.strip())


def _opt_float(cell: str) -> float | None:
    return float(cell) if cell.strip() else None


@functools.cache
def _pattern(cell: str) -> re.Pattern[str] | None:
    return re.compile(cell, re.IGNORECASE) if cell.strip() else None


@functools.lru_cache(maxsize=1)
def rows() -> tuple[CatalogRow, ...]:
    """All catalog rows, parsed once from the package data."""
    text = resources.files("facts").joinpath("data/gpus.csv").read_text(encoding="utf-8")
    out = []
    for rec in csv.DictReader(io.StringIO(text)):
        out.append(
            CatalogRow(
                vendor=rec["vendor"].strip().lower(),
                marketing_name=rec["marketing_name"].strip(),
                match_source=rec["match_patterns"],
                fallback_source=rec["fallback_patterns"],
                arch=rec["architecture_id"].strip(),
                family=rec["family"].strip(),
                device_class=rec["device_class"].strip(),
                memory_type=rec["memory_type"].strip(),
                vram_gb=_floats(rec["vram_gb"]),
                bus_width_bits=int(rec["bus_width_bits"]) if rec["bus_width_bits"].strip() else None,
                bandwidth_gbs=_opt_float(rec["memory_bandwidth_gbs"]),
                bandwidth_min_gbs=_opt_float(rec["memory_bandwidth_min_gbs"]),
                unified=rec["unified_memory"].strip().lower() == "true",
                year=int(rec["year"]) if rec["year"].strip() else None,
                compute_units=tuple(int(x) for x in rec["compute_units"].split(";") if x.strip()),
                pci_ids=tuple(x.strip().lower() for x in rec["pci_ids"].split(";") if x.strip()),
                disambiguate_by=tuple(x.strip() for x in rec["disambiguate_by"].split(";") if x.strip()),
            )
        )
    return tuple(out)


@functools.lru_cache(maxsize=1)
def _position() -> dict[str, int]:
    """Marketing name (the table's key) -> row position, built once."""
    return {r.marketing_name: i for i, r in enumerate(rows())}


def row(marketing_name: str) -> CatalogRow | None:
    """The row with this exact marketing name (the table's key), or None."""
    i = _position().get(marketing_name)
    return None if i is None else rows()[i]


def _name_hits(name: str, pool: tuple[CatalogRow, ...] | list[CatalogRow]) -> list[CatalogRow]:
    norm = normalize(name)
    if not norm:
        return []
    hits = [r for r in pool if r.match_patterns is not None and r.match_patterns.search(norm)]
    if not hits:
        hits = [r for r in pool if r.fallback_patterns is not None and r.fallback_patterns.search(norm)]
    return hits


_VENDOR_WORDS = (("nvidia", ("nvidia", "geforce", "quadro", "tesla", "rtx ")),
                 ("amd", ("amd", "radeon", "instinct", "radv")), ("apple", ("apple",)),
                 ("intel", ("intel", " arc", "iris")), ("qualcomm", ("qualcomm", "adreno")))


def vendor_from_name(text: str) -> str:
    """The vendor a device name (or name plus driver) names: 'NVIDIA GeForce RTX 4090' -> 'nvidia'; else 'unknown'."""
    low = f" {text.lower()}"
    return next((vendor for vendor, words in _VENDOR_WORDS if any(w in low for w in words)), "unknown")


def arch_matches(row_arch: str, arch: str) -> bool:
    """`gfx110X` (Lemonade's family wildcard) matches gfx1100..gfx1103; otherwise equality."""
    arch = arch.lower()
    if arch.endswith("x") and arch.startswith("gfx"):
        return row_arch.lower().startswith(arch[:-1])
    return row_arch.lower() == arch


def gfx_target(version: int) -> str | None:
    """KFD gfx_target_version -> LLVM target: 110501 -> gfx1151, 90010 -> gfx90a, 90402 -> gfx942.

    (major*10000 + minor*100 + stepping; minor and stepping are hex digits)"""
    major, minor, step = version // 10000, (version // 100) % 100, version % 100
    if major <= 0 or minor > 15 or step > 15:
        return None
    return f"gfx{major}{minor:x}{step:x}"


def _nearest_vram(cands: list[CatalogRow], vram_gb: float) -> list[CatalogRow]:
    def dist(r: CatalogRow) -> float:
        return min((abs(v - vram_gb) for v in r.vram_gb), default=float("inf"))

    best = min(dist(r) for r in cands)
    return [r for r in cands if dist(r) == best] if best != float("inf") else cands


def _by_units(cands: list[CatalogRow], units: int) -> list[CatalogRow]:
    exact = [r for r in cands if units in r.compute_units]
    if exact:
        return exact
    known = [r for r in cands if r.compute_units]
    if not known:
        return cands
    best = min(min(abs(u - units) for u in r.compute_units) for r in known)
    return [r for r in known if min(abs(u - units) for u in r.compute_units) == best]


def disambiguate(
    cands: list[CatalogRow],
    *,
    vram_gb: float | None = None,
    compute_units: int | None = None,
    cpu_brand: str | None = None,
    device_tree_model: str | None = None,
    used: list[str] | None = None,
) -> list[CatalogRow]:
    """Narrow candidates with each `disambiguate_by` key whose value is known; never narrow to nothing.

    The keys that actually narrowed the set are appended to `used` when given."""
    keys: list[str] = []
    for r in cands:
        keys.extend(k for k in r.disambiguate_by if k not in keys)
    for key in keys:
        if len(cands) <= 1:
            break
        narrowed: list[CatalogRow] = cands
        if key == "vram" and vram_gb is not None:
            narrowed = _nearest_vram(cands, vram_gb)
        elif key == "compute_units" and compute_units is not None:
            narrowed = _by_units(cands, compute_units)
        elif key in ("cpu_brand", "device_tree_model"):
            text = cpu_brand if key == "cpu_brand" else device_tree_model
            if text:
                hits = {r.marketing_name for r in _name_hits(text, cands)}
                narrowed = [r for r in cands if r.marketing_name in hits]
        if narrowed and len(narrowed) < len(cands):
            if used is not None:
                used.append(key)
            cands = narrowed
    if len(cands) > 1 and vram_gb is not None:
        # a memory size that only one variant was sold with (e.g. M3 Max 64 GB exists only as 40-core)
        sold = [r for r in cands if any(abs(v - vram_gb) <= v * VRAM_TOLERANCE for v in r.vram_gb)]
        if sold and len(sold) < len(cands):
            if used is not None:
                used.append("memory size sold")
            cands = sold
    return cands


def match_name(
    name: str,
    *,
    vram_gb: float | None = None,
    compute_units: int | None = None,
    cpu_brand: str | None = None,
    device_tree_model: str | None = None,
    unified_only: bool = False,
) -> list[CatalogRow]:
    """The rows a device name resolves to (several when undecidable), in table order.
    `unified_only` restricts the search to SoC / APU rows (a CPU brand string naming its iGPU)."""
    cands = _name_hits(name, [r for r in rows() if r.unified] if unified_only else rows())
    if len(cands) > 1:
        cands = disambiguate(
            cands,
            vram_gb=vram_gb,
            compute_units=compute_units,
            cpu_brand=cpu_brand,
            device_tree_model=device_tree_model,
        )
    return cands


def conservative(cands: list[CatalogRow]) -> CatalogRow:
    """The lowest-bandwidth row (then fewest compute units, then table order): never over-promise."""
    order = _position()

    def key(r: CatalogRow) -> tuple[float, int, int]:
        bw = r.spec_bandwidth_gbs
        return (bw if bw is not None else float("inf"), min(r.compute_units, default=0),
                order.get(r.marketing_name, 0))

    return min(cands, key=key)


def resolve(
    *,
    vendor: str | None = None,
    name: str | None = None,
    pci_id: str | None = None,
    arch: str | None = None,
    vram_gb: float | None = None,
    compute_units: int | None = None,
    cpu_brand: str | None = None,
    device_tree_model: str | None = None,
) -> tuple[list[CatalogRow], str]:
    """Candidate rows from every key known (PCI id → arch id → name), and how they were matched.

    Stronger keys pick the pool; weaker ones only narrow it (never to nothing)."""
    pool: tuple[CatalogRow, ...] | list[CatalogRow] = rows()
    if vendor and vendor != "unknown":
        pool = [r for r in pool if r.vendor == vendor]
    cands: list[CatalogRow] = []
    how: list[str] = []
    if pci_id:
        cands = [r for r in pool if pci_id.lower() in r.pci_ids]
        if cands:
            how.append(f"pci_id {pci_id.lower()}")
    if arch:
        by_arch = [r for r in (cands or pool) if arch_matches(r.arch, arch)]
        if by_arch:
            cands = by_arch
            how.append(f"arch {arch}")
    if name:
        by_name = _name_hits(name, cands or pool)
        if by_name:
            cands = by_name
            how.append(f"name {normalize(name)!r}")
    if len(cands) > 1:
        used: list[str] = []
        cands = disambiguate(cands, vram_gb=vram_gb, compute_units=compute_units,
                             cpu_brand=cpu_brand, device_tree_model=device_tree_model, used=used)
        if used:
            how.append("narrowed by " + ", ".join(k.replace("_", " ") for k in used))
    return cands, ", ".join(how)


def unified_memory(gpu: GPU) -> bool:
    """The GPU computes from the system RAM pool: unified, integrated, or an Apple GPU."""
    return bool(gpu.unified or gpu.integrated or gpu.vendor == "apple")


def _gpu_mem_gb(gpu: GPU, nominal_ram_gb: float | None) -> float | None:
    unified = unified_memory(gpu)
    if unified and nominal_ram_gb:
        return float(nominal_ram_gb)
    if gpu.dedicated_bytes and not unified:
        return gpu.dedicated_bytes / GIB
    if unified and (gpu.dedicated_bytes or gpu.shared_bytes):
        return ((gpu.dedicated_bytes or 0) + (gpu.shared_bytes or 0)) / GIB
    return None


def _arch_only(how: str, cands: list[CatalogRow]) -> bool:
    """Discrete parts matched by the architecture id alone ('RTX XXXX', sm_75) in a report without memory:
    the arch says which generation, not which card, so no row's memory or bandwidth may be taken for it."""
    return how.startswith("arch ") and "," not in how and not any(r.unified for r in cands)


def _agreed(gpu: GPU, cands: list[CatalogRow], how: str) -> GPU:
    """Only the facts every candidate row agrees on (family, device class)."""
    label = f"gpus.csv: {len(cands)} rows share it (matched by {how}; no single card identified)"
    update: dict[str, object] = {}
    prov = dict(gpu.provenance)
    for field, values in (("family", {r.family for r in cands}), ("device_class", {r.device_class for r in cands})):
        value = values.pop() if len(values) == 1 else None
        if getattr(gpu, field) is None and value:
            update[field] = value
            prov[field] = label
    if not update:
        return gpu
    return gpu.model_copy(update={**update, "provenance": prov})


def enrich(gpu: GPU, *, cpu_name: str | None = None, nominal_ram_gb: float | None = None) -> GPU:
    """A copy of `gpu` with catalog facts filled where unknown (detected values are never overwritten).

    `nominal_ram_gb` (optional) helps pick variants of unified parts sold with one memory size."""
    mem_gb = _gpu_mem_gb(gpu, nominal_ram_gb)
    cands, how = resolve(
        vendor=gpu.vendor,
        name=gpu.name,
        pci_id=gpu.pci_id,
        arch=gpu.arch,
        vram_gb=mem_gb,
        compute_units=gpu.compute_units,
        cpu_brand=cpu_name,
    )
    if not cands:
        return gpu
    if mem_gb is None and _arch_only(how, cands):
        return _agreed(gpu, cands, how)
    chosen = conservative(cands)
    label = f"gpus.csv:{chosen.marketing_name} (matched by {how}"
    if len(cands) > 1:
        others = ", ".join(r.marketing_name for r in cands if r is not chosen)
        label += f"; ambiguous with {others}: took the lowest bandwidth"
    label += ")"
    fill = {
        "marketing_name": chosen.marketing_name,
        "arch": chosen.arch or None,
        "family": chosen.family or None,
        "device_class": chosen.device_class or None,
        "bandwidth_gbs": chosen.spec_bandwidth_gbs,
        "unified": chosen.unified,
        "integrated": chosen.integrated,
    }
    update: dict[str, object] = {}
    prov = dict(gpu.provenance)
    for field, value in fill.items():
        if getattr(gpu, field) is None and value is not None:
            update[field] = value
            prov[field] = label
    if not update:
        return gpu
    update["provenance"] = prov
    return gpu.model_copy(update=update)
