"""Intel GPUs from sysfs: VRAM of discrete cards (xe `tileN/physical_vram_size_bytes`, DKMS i915
`lmem_total_bytes`), integrated GPUs by their PCI slot; what mainline i915 does not publish stays absent."""

from __future__ import annotations

import os
import re

from facts.detect._probe import Probe
from facts.models import GPU

PCI = "/sys/bus/pci/devices"
IGPU_SLOT = "00:02.0"  # Intel integrated GPUs sit at bus 0, device 2, function 0


def _tiles(probe: Probe, base: str) -> list[str]:
    try:
        return sorted((n for n in os.listdir(probe.path(base)) if re.fullmatch(r"tile\d+", n)), key=lambda n: int(n[4:]))
    except OSError:
        return []


def _cards(probe: Probe, base: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir(probe.path(f"{base}/drm")) if re.fullmatch(r"card\d+", n))
    except OSError:
        return []


def _xe_vram(probe: Probe, base: str, tiles: list[str]) -> tuple[int | None, str | None]:
    """Sum of the tiles' physical VRAM (xe creates the file on discrete GPUs only)."""
    total, files = 0, []
    for tile in tiles:
        for rel in (f"{base}/{tile}/physical_vram_size_bytes", f"{base}/{tile}/memory/physical_vram_size_bytes"):
            value = probe.read_int(rel)
            if value:
                total += value
                files.append(rel)
                break
    return (total, " + ".join(files)) if files else (None, None)


def _has_vram_file(probe: Probe, base: str, tiles: list[str]) -> bool:
    return any(probe.path(f"{base}/{t}/{sub}physical_vram_size_bytes").exists() for t in tiles for sub in ("", "memory/"))


def _lmem(probe: Probe, base: str) -> tuple[int | None, str | None]:
    """i915's `lmem_total_bytes` (Intel's DKMS / backport driver; mainline i915 has no such file)."""
    for rel in [f"/sys/class/drm/{c}/lmem_total_bytes" for c in _cards(probe, base)] + [f"{base}/lmem_total_bytes"]:
        value = probe.read_int(rel)
        if value:
            return value, rel
    return None, None


def intel_gpu(probe: Probe, dev: dict[str, object], index: int, position: int) -> GPU:
    """One Intel display-class PCI device as a GPU fact; `position` is its place in the detected GPU list."""
    addr, driver = str(dev["address"]), dev["driver"]
    base = f"{PCI}/{addr}"
    pci_id = f"{dev['vendor']:04x}:{dev['device']:04x}"
    prov = {"pci_id": f"sysfs {base}/vendor,device", "name": "synthesised from the PCI id (sysfs has no name)"}
    fields: dict[str, object] = {}
    tiles = _tiles(probe, base)
    vram, src = _xe_vram(probe, base, tiles) if driver == "xe" else (None, None)
    if vram is None and driver == "i915":
        vram, src = _lmem(probe, base)
    if vram is not None:
        fields.update(dedicated_bytes=vram, integrated=False, unified=False)
        prov["dedicated_bytes"] = f"sysfs {src}"
        prov["integrated"] = prov["unified"] = f"sysfs {src} (local memory: a discrete GPU)"
    elif addr.endswith(IGPU_SLOT) or (driver == "xe" and tiles and not _has_vram_file(probe, base, tiles)):
        fields.update(integrated=True, unified=True)
        why = f"PCI {IGPU_SLOT}, Intel's integrated-GPU slot" if addr.endswith(IGPU_SLOT) else \
            "xe lists tiles without physical_vram_size_bytes (it writes that file on discrete GPUs only)"
        prov["integrated"] = prov["unified"] = f"sysfs {base} ({why})"
    else:
        if driver == "i915":
            why = ("mainline i915 publishes no VRAM size in sysfs (lmem_total_bytes exists only in Intel's DKMS "
                   "driver); pass llama.cpp's device list (--llama-devices) for it")
        elif driver == "xe":
            why = f"xe: no readable {base}/tileN/physical_vram_size_bytes"
        else:
            why = f"driver {driver or 'none'}: no VRAM source"
        probe.miss(f"gpus[{position}].dedicated_bytes", why)
    return GPU(vendor="intel", name=f"INTEL GPU {pci_id}", pci_id=pci_id, index=index, provenance=prov,
               **fields)  # type: ignore[arg-type]
