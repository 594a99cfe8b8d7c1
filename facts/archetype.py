"""classify(): hardware facts -> a bounded, stable archetype id, its back-off ids and a confidence."""

from __future__ import annotations

import functools
import math
import re

from facts import catalog
from facts.models import GIB, GPU, Archetype, HardwareFacts

BUCKETS_GB = (4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 512)
BUCKET_TOLERANCE = 0.03  # a "24 GB" card reporting 23.98 GiB stays in 24
# RAM sizes machines are sold with (the box size), for rounding the usable RAM a system reports
MARKETED_GB = (1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 512, 768, 1024, 1536, 2048)
TIER_EDGES_GBS = (60, 170, 340, 700, 1300, 2500)  # bw0 <60 ... bw6 >=2500, placed in gaps of real devices
ISA_ORDER = ("avx512", "avx2", "avx", "neon")

_NV_FAMILY = (("sm_5", "maxwell"), ("sm_6", "pascal"), ("sm_7", "volta"), ("sm_75", "turing"), ("sm_8", "ampere"), ("sm_89", "ada"),
              ("sm_9", "hopper"), ("sm_10", "blackwell"), ("sm_11", "blackwell"), ("sm_12", "blackwell"))
_AMD_FAMILY = (("gfx90", "gcn5"), ("gfx908", "cdna1"), ("gfx90a", "cdna2"), ("gfx94", "cdna3"), ("gfx95", "cdna4"),
               ("gfx101", "rdna1"), ("gfx103", "rdna2"), ("gfx110", "rdna3"), ("gfx115", "rdna3.5"),
               ("gfx120", "rdna4"))
# consumer series whose whole generation shares one architecture (names only; used when no id is known)
_SERIES = (
    (re.compile(r"\bGTX\s*10\d0", re.I), "pascal", "sm_61"),
    (re.compile(r"\b(?:RTX\s*20|GTX\s*16)\d0", re.I), "turing", "sm_75"),
    (re.compile(r"\bRTX\s*30\d0", re.I), "ampere", "sm_86"),
    (re.compile(r"\bRTX\s*40\d0", re.I), "ada", "sm_89"),
    (re.compile(r"\bRTX\s*50\d0", re.I), "blackwell", "sm_120"),
    (re.compile(r"\bRX\s*5[5-7]00", re.I), "rdna1", None),
    (re.compile(r"\bRX\s*6[4-9]\d0", re.I), "rdna2", None),
    (re.compile(r"\bRX\s*7[6-9]\d0", re.I), "rdna3", None),
    (re.compile(r"\bRX\s*90[5-7]0", re.I), "rdna4", None),
)
_MIG = re.compile(r"\bMIG \d+g\.(\d+)gb\b")
_APPLE = re.compile(r"\bApple\s*M(\d+)(?:\s*(Pro|Max|Ultra))?\b", re.IGNORECASE)
# CPU-only: conservative (slowest common) memory configuration per platform, GB/s
_CPU_PLATFORMS = (
    (re.compile(r"\bEPYC\b", re.I), 204.8, "8-channel DDR4-3200 (EPYC, slowest common configuration)"),
    (re.compile(r"\bThreadripper\b", re.I), 102.4, "4-channel DDR4-3200 (Threadripper)"),
    (re.compile(r"\bXeon\b", re.I), 140.8, "6-channel DDR4-2933 (Xeon)"),
    (re.compile(r"\bRyzen\s+\d\s+[789]\d{3}", re.I), 76.8, "dual-channel DDR5-4800 (AM5 desktop)"),
    (re.compile(r"\bCore\s*Ultra\b", re.I), 89.6, "dual-channel DDR5-5600 (Core Ultra)"),
)
_DEFAULT_DDR = (51.2, "dual-channel DDR4-3200 (assumed; the platform is not recognised)")


def bucket_gb(gib: float) -> int:
    """Largest bucket <= gib * 1.03 (never round up); 0 below the smallest bucket."""
    cap = gib * (1 + BUCKET_TOLERANCE)
    return max((b for b in BUCKETS_GB if b <= cap), default=0)


def nominal_gb(gib: float) -> int:
    """The marketed RAM size a machine reporting `gib` usable most likely has (round up).

    The one rounding for every source: Lemonade's Physical Memory, /proc/meminfo, a GPU pool."""
    for size in MARKETED_GB:
        if gib <= size * 1.005:
            return size
    return int(math.ceil(gib))


def bw_tier(gbs: float) -> int:
    """Bandwidth tier 0..6 for a spec bandwidth in GB/s."""
    return sum(1 for edge in TIER_EDGES_GBS if gbs >= edge)


def family_from_arch(arch: str | None) -> str | None:
    """Family from a ground-truth id: compute capability (sm_XY) or gfx target; longest prefix wins."""
    if not arch:
        return None
    table = _NV_FAMILY if arch.startswith("sm_") else _AMD_FAMILY if arch.startswith("gfx") else ()
    hits = [(len(p), fam) for p, fam in table if arch.lower().startswith(p)]
    return max(hits)[1] if hits else None


def family_from_name(name: str) -> tuple[str, str | None] | None:
    """(family, arch or None) for a GPU of a consumer series that shares one architecture."""
    return next(((fam, arch) for rx, fam, arch in _SERIES if rx.search(name or "")), None)


def apple_chip(name: str) -> tuple[str, str, str] | None:
    """'Apple M5 Max' -> ('apple-m5', 'apple-m5-max', 'max'); tier 'base' for the plain chip."""
    m = _APPLE.search(name or "")
    if not m:
        return None
    gen, tier = m.group(1), (m.group(2) or "").lower()
    family = f"apple-m{gen}"
    return family, f"{family}-{tier}" if tier else family, tier or "base"


@functools.cache
def _apple_bandwidth(tier: str) -> float | None:
    """A newer chip of a known line: minimum over the last two known generations of that tier."""
    by_gen: dict[int, list[float]] = {}
    for r in catalog.rows():
        chip = apple_chip(r.marketing_name)
        if r.vendor == "apple" and chip and chip[2] == tier and r.spec_bandwidth_gbs:
            by_gen.setdefault(int(chip[0][len("apple-m"):]), []).append(r.spec_bandwidth_gbs)
    gens = sorted(by_gen)[-2:]
    return min(min(by_gen[g]) for g in gens) if gens else None


def _estimate_tier(g: GPU, family: str | None, memclass: str, bucket: int) -> tuple[int, str]:
    """Conservative tier for a device with no spec bandwidth (research/hardware.md §5)."""
    rows = [r for r in catalog.rows() if r.vendor == g.vendor and r.spec_bandwidth_gbs]
    if g.vendor == "apple":
        chip = apple_chip(g.name) or apple_chip(g.marketing_name or "")
        bw = _apple_bandwidth(chip[2]) if chip else None
        if bw:
            return bw_tier(bw), f"bandwidth of an unknown Apple chip: {bw:g} GB/s, the lower of the last two known generations"
    fam_rows = [r for r in rows if family and r.family == family]
    same = [r for r in fam_rows if ("unified" if r.unified else "discrete") == memclass
            and any(bucket_gb(v) == bucket for v in r.vram_gb)]
    if same:
        tiers = sorted(bw_tier(r.spec_bandwidth_gbs) for r in same)
        tier = tiers[(len(tiers) - 1) // 2]  # median, the lower middle on ties
        return tier, f"bandwidth tier estimated: median of {len(same)} {family} {memclass} {bucket} GB parts"
    if fam_rows:
        tier = min(bw_tier(r.spec_bandwidth_gbs) for r in fam_rows)
        return tier, f"bandwidth tier estimated: lowest tier seen in family {family}"
    kin = [r for r in rows if ("unified" if r.unified else "discrete") == memclass]
    if kin:
        tier = min(bw_tier(r.spec_bandwidth_gbs) for r in kin)
        return tier, f"bandwidth tier estimated: lowest tier of known {g.vendor} {memclass} parts"
    return 0, "bandwidth unknown: lowest tier assumed"


def _memory(hw: HardwareFacts, g: GPU, unified: bool) -> tuple[int, str, bool]:
    """(bucket, reason, estimated) for one GPU: per-device VRAM, or nominal RAM for unified parts."""
    row = catalog.row(g.marketing_name) if g.marketing_name else None
    if not unified:
        if g.dedicated_bytes:
            gib = g.dedicated_bytes / GIB
            # the id uses the nominal size: CUDA/Vulkan report a few % less than nvidia-smi for the same card
            sold = [v for v in (row.vram_gb if row else ()) if v * 0.90 <= gib <= v * (1 + BUCKET_TOLERANCE)]
            if sold:
                nominal = min(sold, key=lambda v: abs(v - gib))
                return bucket_gb(nominal), f"VRAM {gib:.2f} GiB reported, {nominal:g} GB nominal (gpus.csv)", False
            return bucket_gb(gib), f"VRAM {gib:.2f} GiB", False
        if row and row.vram_gb:
            est = min(row.vram_gb)
            return bucket_gb(est), f"VRAM unknown: {est:g} GB from gpus.csv (smallest variant)", True
        return 0, "VRAM unknown", True
    mem = hw.memory
    if mem.nominal_gb:
        return bucket_gb(mem.nominal_gb), f"unified: nominal RAM {mem.nominal_gb} GB", False
    smallest = min(row.vram_gb) if row and row.vram_gb else None
    if mem.total_bytes:
        gib = mem.total_bytes / GIB
        if smallest and gib < smallest * 0.97:
            return bucket_gb(smallest), (f"unified: usable RAM {gib:.2f} GiB is below every configuration sold; "
                                         f"smallest configuration {smallest:g} GB assumed"), True
        return bucket_gb(nominal_gb(gib)), f"unified: usable RAM {gib:.2f} GiB rounded up to a marketed size", True
    pool = ((g.dedicated_bytes or 0) + (g.shared_bytes or 0)) / GIB
    if pool:
        est, how = _ram_from_pool(pool, g.vendor, row.vram_gb if row else ())
        return bucket_gb(est), f"unified: RAM estimated {est:g} GB from the GPU pool {pool:.1f} GiB ({how})", True
    if smallest:
        return bucket_gb(smallest), f"unified: RAM unknown; smallest configuration sold ({smallest:g} GB) assumed", True
    return 0, "unified: RAM unknown", True


def _ram_from_pool(pool: float, vendor: str, sold: tuple[float, ...]) -> tuple[float, str]:
    """The RAM size behind a unified GPU pool: Metal's working set is ~3/4 of RAM (more when the wired limit
    is raised), other pools at most all of it. A size the part was sold with is preferred; the RAM is
    never below the pool."""
    ratio = 0.75 if vendor == "apple" else 1.0
    guess = pool / ratio
    fits = [s for s in sold if s >= guess * (1 - BUCKET_TOLERANCE)]
    if fits:
        return min(fits), f"the smallest size sold at or above {guess:.1f} GiB"
    above = [s for s in sold if s >= pool * (1 - BUCKET_TOLERANCE)]
    if above:
        return min(above), "the smallest size sold at or above the pool"
    if sold:  # more than every size sold: a raised limit; the pool itself bounds the RAM from below
        return nominal_gb(pool), "the pool rounded up to a marketed size"
    return nominal_gb(guess), "rounded up to a marketed size" + (" at 3/4 working set" if ratio < 1 else "")


def _mig_slice(g: GPU, profile_gb: float) -> tuple[int, int, str, str]:
    """A MIG instance with no memory reading: its profile names its memory (1g.10gb), and a slice gets the
    share of the GPU's bandwidth that its share of the memory carries (estimates, for the id only)."""
    row = catalog.row(g.marketing_name) if g.marketing_name else None
    whole = max(row.vram_gb) if row and row.vram_gb else None
    share = min(1.0, profile_gb / whole) if whole else 1.0
    gbs = (g.bandwidth_gbs or 0) * share
    return (bucket_gb(profile_gb), bw_tier(gbs), f"MIG profile {profile_gb:g} GB (estimate from its name)",
            f"bandwidth estimated {gbs:.0f} GB/s: the MIG slice's share ({share:.2f}) of the GPU's")


def _ids(vendor: str, family: str | None, arch: str | None, memclass: str, bucket: int, tier: int,
         count: int) -> tuple[str, ...]:
    def strip(tok: str | None) -> str | None:
        return tok[len(vendor) + 1:] if tok and tok.startswith(vendor + "-") else tok

    fam, arc = strip(family) or "unknown", strip(arch)
    tail = f"{memclass}-{bucket}gb-bw{tier}"
    if arc and (arc == fam or arc.startswith(fam + "-")):
        exact = f"{vendor}-{arc}-{tail}"
    else:
        exact = "-".join(t for t in (vendor, fam, arc, tail) if t)
    levels = [exact, f"{vendor}-{fam}-{tail}", f"{vendor}-{tail}", tail]
    ids = [lv + f"-x{count}" for lv in levels] + levels if count > 1 else levels
    return tuple(dict.fromkeys(i.lower() for i in ids))


def _cpu_only(hw: HardwareFacts, reasons: list[str]) -> Archetype:
    cpu, mem = hw.cpu, hw.memory
    arch = cpu.arch if cpu.arch != "unknown" else "unknown"
    best = next((i for i in ISA_ORDER if i in cpu.isa), None)
    if best is None and arch == "arm64":
        best = "neon"  # Advanced SIMD is mandatory on ARMv8-A
    if best is None:
        reasons.append("CPU vector extensions unknown: the id carries no ISA level")
    if mem.nominal_gb:
        bucket, what = bucket_gb(mem.nominal_gb), f"RAM {mem.nominal_gb} GB nominal"
    elif mem.total_bytes:
        bucket, what = bucket_gb(mem.total_bytes / GIB), f"RAM {mem.total_bytes / GIB:.2f} GiB usable"
    else:
        bucket, what = 0, "RAM unknown"
    reasons.append(f"CPU-only: memory bucket from {what}")
    confidence = "medium"
    rows = catalog.match_name(cpu.name, unified_only=True) if cpu.name else []
    rows = [r for r in rows if r.spec_bandwidth_gbs]
    if rows:
        row = catalog.conservative(rows)
        gbs, how = row.spec_bandwidth_gbs, f"the {row.marketing_name} SoC spec (gpus.csv, matched by CPU name)"
    else:
        gbs, how = next(((bw, d) for rx, bw, d in _CPU_PLATFORMS if rx.search(cpu.name or "")), _DEFAULT_DDR)
        confidence = "low" if how == _DEFAULT_DDR[1] else "medium"
    tier = bw_tier(gbs)
    reasons.append(f"CPU-only bandwidth is an estimate: {gbs:g} GB/s from {how} -> bw{tier}")
    isa = f"{arch}-{best}" if best else arch
    tail = f"{bucket}gb-bw{tier}"
    ids = tuple(dict.fromkeys((f"cpu-{isa}-{tail}", f"cpu-{arch}-{tail}", f"cpu-{tail}")))
    return Archetype(id=ids[0], vendor="cpu", memclass="cpu", bucket_gb=bucket, bw_tier=tier, isa=isa,
                     backoff=ids, confidence=confidence, reasons=tuple(reasons))


def _enriched(hw: HardwareFacts) -> list[GPU]:
    out = []
    for g in hw.gpus:
        if g.marketing_name is None or g.bandwidth_gbs is None or g.device_class is None:
            g = catalog.enrich(g, cpu_name=hw.cpu.name, nominal_ram_gb=hw.memory.nominal_gb)
        out.append(g)
    return out


def classify(hw: HardwareFacts) -> Archetype:
    """The archetype of a machine: primary inference GPU group (or CPU-only), memory bucket, bandwidth tier."""
    reasons: list[str] = []
    gpus = _enriched(hw)
    pool = []
    for i, g in enumerate(gpus):
        if g.device_class == "display-igpu":
            reasons.append(f"ignored {g.marketing_name or g.name}: display-only iGPU")
        else:
            pool.append(i)
    discrete = [i for i in pool if not catalog.unified_memory(gpus[i])]
    if discrete:
        for i in pool:
            if i not in discrete:
                reasons.append(f"ignored {gpus[i].marketing_name or gpus[i].name}: integrated GPU next to a discrete GPU")
        pool = discrete
    if not pool:
        reasons.append("no inference GPU")
        return _cpu_only(hw, reasons)
    unified = not discrete  # the pool is all discrete GPUs, or all unified ones
    memclass = "unified" if unified else "discrete"

    per: dict[int, tuple[int, str, bool, int, str | None, bool, str]] = {}
    for i in pool:
        g = gpus[i]
        series = family_from_name(g.name) if g.vendor in ("nvidia", "amd") else None
        family = g.family or family_from_arch(g.arch) or (apple_chip(g.name) or (None,))[0] \
            or (series[0] if series else None)
        bucket, mem_reason, mem_est = _memory(hw, g, unified)
        mig = _MIG.search(g.name)
        if mig and g.dedicated_bytes is None and g.bandwidth_gbs:
            bucket, tier, mem_reason, bw_reason = _mig_slice(g, float(mig.group(1)))
            per[i] = (bucket, mem_reason, True, tier, family, True, bw_reason)
            continue
        if g.bandwidth_gbs:
            tier, bw_reason, bw_est = bw_tier(g.bandwidth_gbs), f"bandwidth {g.bandwidth_gbs:g} GB/s", False
        else:
            tier, bw_reason = _estimate_tier(g, family, memclass, bucket)
            bw_est = True
        per[i] = (bucket, mem_reason, mem_est, tier, family, bw_est, bw_reason)

    def key(i: int) -> tuple[str, str, str, int, int]:
        g = gpus[i]
        return (g.vendor, g.marketing_name or g.name.lower(), g.arch or "", per[i][0], per[i][3])

    groups: dict[tuple[str, str, str, int, int], list[int]] = {}
    for i in pool:
        groups.setdefault(key(i), []).append(i)
    members = max(groups.values(), key=lambda idx: (len(idx) * per[idx[0]][0], per[idx[0]][3], -idx[0]))
    for idx in groups.values():
        if idx is not members:
            o = gpus[idx[0]]
            what = ", ".join(t for t in (o.arch, f"{per[idx[0]][0]} GB bucket" if per[idx[0]][0] else "memory unknown",
                                         f"bw{per[idx[0]][3]}") if t)
            reasons.append(f"secondary GPU(s) kept out of the id: {o.marketing_name or o.name}"
                           + (f" x{len(idx)}" if len(idx) > 1 else "") + f" ({what})")
    first = members[0]
    g = gpus[first]
    bucket, mem_reason, mem_est, tier, family, bw_est, bw_reason = per[first]
    arch = g.arch
    if arch is None and g.vendor == "apple":
        chip = apple_chip(g.name)
        arch = chip[1] if chip else None
    if arch is None and g.vendor == "nvidia":
        arch = (family_from_name(g.name) or (None, None))[1]
    count = len(members)
    matched = g.marketing_name is not None
    ambiguous = any("ambiguous" in v for v in g.provenance.values() if v.startswith("gpus.csv:"))
    label = g.marketing_name or g.name
    reasons.insert(0, f"primary GPU: {label}" + (f" x{count}" if count > 1 else "")
                   + (" (gpus.csv)" if matched else " (not in gpus.csv: unknown hardware)"))
    reasons.append(f"memory bucket {bucket} GB: {mem_reason}")
    reasons.append(f"bw{tier}: {bw_reason}")
    if ambiguous:
        reasons.append("catalog match ambiguous: the lowest-bandwidth variant was assumed")
    if not family:
        reasons.append("family unknown")
    if not matched or bw_est or not family:
        confidence = "low"
    elif mem_est or ambiguous:
        confidence = "medium"
    else:
        confidence = "high"
    ids = _ids(g.vendor, family, arch, memclass, bucket, tier, count)
    return Archetype(id=ids[0], vendor=g.vendor, family=family, arch=arch, memclass=memclass, bucket_gb=bucket,
                     bw_tier=tier, count=count, backoff=ids, confidence=confidence, reasons=tuple(reasons),
                     primary_gpus=tuple(members))
