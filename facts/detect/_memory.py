"""RAM facts: /proc/meminfo parsing, cgroup limits, nominal (marketed) RAM size, Apple working-set estimate."""

from __future__ import annotations

from itertools import pairwise

from facts.archetype import nominal_gb
from facts.detect import _cgroup
from facts.detect._probe import Probe
from facts.models import GIB, Memory

_WORKING_SET_ANCHORS = ((16.0, 2 / 3), (64.0, 0.75), (128.0, 0.84))  # (RAM GiB, Metal working-set share)


def parse_meminfo(text: str) -> dict[str, int]:
    """`MemTotal:  24684084 kB` lines → {"MemTotal": bytes, ...}."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        fields = rest.split()
        if sep and fields and fields[0].isdigit():
            scale = 1024 if len(fields) > 1 and fields[1].lower() == "kb" else 1
            out[key.strip()] = int(fields[0]) * scale
    return out


def apple_working_set(memsize: int) -> int:
    """Estimated Metal recommendedMaxWorkingSetSize from RAM (research/hardware.md §2.4 anchors).

    16 GB → 2/3, 64 GB → 3/4, ≥128 GB → ~84 %; linear in between. Low confidence, marked "estimate"."""
    gib = memsize / GIB
    (lo, lo_share), (hi, hi_share) = _WORKING_SET_ANCHORS[0], _WORKING_SET_ANCHORS[-1]
    if gib <= lo:
        share = lo_share
    elif gib >= hi:
        share = hi_share
    else:  # linear on the segment that holds gib
        share = next(s0 + (s1 - s0) * (gib - g0) / (g1 - g0)
                     for (g0, s0), (g1, s1) in pairwise(_WORKING_SET_ANCHORS) if gib <= g1)
    return int(memsize * share)


def linux_memory(probe: Probe, carve_out_bytes: int = 0) -> Memory:
    """Usable RAM (MemTotal, lowered by a cgroup limit), MemAvailable and the nominal size.

    `carve_out_bytes` (an APU's BIOS VRAM carve-out) is added back for the nominal size only."""
    prov: dict[str, str] = {}
    text = probe.read("/proc/meminfo", "memory.total_bytes")
    info = parse_meminfo(text) if text else {}
    total = info.get("MemTotal") or None
    avail = info.get("MemAvailable")
    if text is not None and total is None:
        probe.miss("memory.total_bytes", "/proc/meminfo: no MemTotal line")
    if total:
        prov["total_bytes"] = "/proc/meminfo MemTotal"
    if avail is not None:
        prov["available_bytes"] = "/proc/meminfo MemAvailable"
    nominal = None
    if total:
        nominal = nominal_gb((total + carve_out_bytes) / GIB)
        prov["nominal_gb"] = "MemTotal" + (" + GPU carve-out" if carve_out_bytes else "") + \
            " rounded up to a marketed size"
    limit, src = _cgroup.memory_limit(probe)
    if limit is not None and (total is None or limit < total):
        total = limit
        prov["total_bytes"] = f"{src} (container limit, lower than MemTotal)"
        if avail is not None and avail > limit:
            avail = limit
            prov["available_bytes"] += f", capped by {src}"
    return Memory(total_bytes=total, available_bytes=avail, nominal_gb=nominal, provenance=prov)
