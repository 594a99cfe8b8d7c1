"""AMD GPUs from sysfs without ROCm: DRM card memory files and KFD topology (gfx target, CUs)."""

from __future__ import annotations

import os
import re

from facts.catalog import gfx_target
from facts.detect._probe import Probe
from facts.models import GPU

KFD_NODES = "/sys/class/kfd/kfd/topology/nodes"


def parse_properties(text: str) -> dict[str, int]:
    """A KFD `properties` file (`key value` lines) → {key: int}; non-integer lines are skipped."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        try:
            out[key] = int(value.strip())
        except ValueError:
            continue
    return out


def pci_address(props: dict[str, int]) -> str | None:
    """The node's PCI address from `domain` and `location_id` (bus << 8 | device << 3 | function)."""
    loc = props.get("location_id")
    if not loc:
        return None
    dom = props.get("domain", 0)
    return f"{dom:04x}:{loc >> 8:02x}:{(loc >> 3) & 0x1F:02x}.{loc & 0x7}"


def kfd_gpu_nodes(probe: Probe) -> list[tuple[str, dict[str, int]]]:
    """(node id, properties) of every KFD GPU node (simd_count > 0), in node order."""
    base = probe.path(KFD_NODES)
    try:
        names = sorted((n for n in os.listdir(base) if n.isdigit()), key=int)
    except OSError:
        return []
    nodes = []
    for n in names:
        text = probe.read(f"{KFD_NODES}/{n}/properties", f"kfd node {n}")
        if text is None:
            continue
        props = parse_properties(text)
        if props.get("simd_count", 0) > 0:
            nodes.append((n, props))
    return nodes


def _card_address(probe: Probe, card: str) -> str | None:
    dev = probe.path(f"/sys/class/drm/{card}/device")
    try:
        target = os.path.basename(os.readlink(dev))
    except OSError:
        target = ""
    if re.fullmatch(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]", target):
        return target
    uevent = probe.read(f"/sys/class/drm/{card}/device/uevent") or ""
    m = re.search(r"^PCI_SLOT_NAME=(\S+)", uevent, re.M)
    return m.group(1).lower() if m else None


def drm_cards(probe: Probe) -> list[dict[str, object]]:
    """AMD DRM cards (vendor 0x1002): address, pci_id, VRAM/GTT totals, board_info presence."""
    base = probe.path("/sys/class/drm")
    try:
        names = sorted((n for n in os.listdir(base) if re.fullmatch(r"card\d+", n)), key=lambda n: int(n[4:]))
    except OSError:
        return []
    cards = []
    for card in names:
        d = f"/sys/class/drm/{card}/device"
        vendor = probe.read_int(f"{d}/vendor")
        if vendor != 0x1002:
            continue
        device = probe.read_int(f"{d}/device")
        cards.append({
            "card": card,
            "address": _card_address(probe, card),
            "device_id": device,
            "vram": probe.read_int(f"{d}/mem_info_vram_total", f"{card} mem_info_vram_total"),
            "vram_used": probe.read_int(f"{d}/mem_info_vram_used"),
            "gtt": probe.read_int(f"{d}/mem_info_gtt_total", f"{card} mem_info_gtt_total"),
            "board_info": probe.path(f"{d}/board_info").exists(),
            "product_name": (probe.read(f"{d}/product_name") or "").strip() or None,
        })
    return cards


def _pair(cards: list[dict[str, object]], nodes: list[tuple[str, dict[str, int]]]):
    """Pair KFD nodes with DRM cards: by PCI address, else by a unique device id, else one-to-one."""
    pairs: list[tuple[dict[str, object] | None, tuple[str, dict[str, int]] | None]] = []
    left = list(nodes)
    for card in cards:
        hit = next((n for n in left if card["address"] and pci_address(n[1]) == card["address"]), None)
        if hit is None:
            same = [n for n in left if n[1].get("device_id") == card["device_id"]]
            hit = same[0] if len(same) == 1 else None
        if hit is None and len(cards) == 1 and len(left) == 1:
            hit = left[0]
        if hit is not None:
            left.remove(hit)
        pairs.append((card, hit))
    pairs.extend((None, n) for n in left)
    return pairs


def amd_gpus(probe: Probe) -> list[GPU]:
    """AMD GPUs from DRM cards and KFD nodes under `probe.root`, with provenance; usability is warned."""
    cards = drm_cards(probe)
    nodes = kfd_gpu_nodes(probe)
    override = probe.env.get("HSA_OVERRIDE_GFX_VERSION")
    if override and (cards or nodes):
        probe.warn(f"HSA_OVERRIDE_GFX_VERSION={override} is set: ROCm will report that target; "
                   "the gfx target here is the real one from KFD sysfs")
    gpus = []
    for i, (card, node) in enumerate(_pair(cards, nodes)):
        prov: dict[str, str] = {}
        props = node[1] if node else {}
        nid = node[0] if node else None
        arch = gfx_target(props.get("gfx_target_version", 0))
        if arch:
            prov["arch"] = f"sysfs {KFD_NODES}/{nid}/properties gfx_target_version"
        cu = None
        if props.get("simd_per_cu"):
            cu = props["simd_count"] // props["simd_per_cu"] or None
            prov["compute_units"] = f"sysfs {KFD_NODES}/{nid}/properties simd_count/simd_per_cu"
        if card and card["device_id"] is not None:
            dev_id, dev_src = card["device_id"], f"sysfs /sys/class/drm/{card['card']}/device/device"
        else:
            dev_id, dev_src = props.get("device_id"), f"sysfs {KFD_NODES}/{nid}/properties device_id"
        pci_id = f"1002:{dev_id:04x}" if isinstance(dev_id, int) else None
        if pci_id:
            prov["pci_id"] = dev_src
        fields: dict[str, object] = {}
        if card:
            c = card["card"]
            base = f"sysfs /sys/class/drm/{c}/device"
            integrated = not card["board_info"]
            fields["integrated"] = integrated
            prov["integrated"] = f"{base}/board_info {'absent' if integrated else 'present'}"
            if integrated:
                fields["unified"] = True
                prov["unified"] = prov["integrated"]
            if isinstance(card["vram"], int):
                fields["dedicated_bytes"] = card["vram"]
                prov["dedicated_bytes"] = f"{base}/mem_info_vram_total" + (" (BIOS carve-out)" if integrated else "")
                if not integrated and isinstance(card["vram_used"], int):
                    fields["free_bytes"] = max(0, card["vram"] - card["vram_used"])
                    prov["free_bytes"] = f"{base}/mem_info_vram_total - mem_info_vram_used"
            if integrated and isinstance(card["gtt"], int):
                fields["shared_bytes"] = card["gtt"]
                prov["shared_bytes"] = f"{base}/mem_info_gtt_total (GTT)"
        if card and card["product_name"]:
            name, prov["name"] = card["product_name"], f"sysfs /sys/class/drm/{card['card']}/device/product_name"
        else:
            name = f"AMD {arch}" if arch else f"AMD GPU {pci_id or '?'}"
            prov["name"] = "synthesised from the gfx target / PCI id (sysfs has no name)"
        gpus.append(GPU(vendor="amd", name=str(name), arch=arch, compute_units=cu, pci_id=pci_id,
                        index=i, provenance=prov, **fields))  # type: ignore[arg-type]
        _check_usable(probe, arch or pci_id or "?", props.get("drm_render_minor"))
    return gpus


def _check_usable(probe: Probe, label: str, render_minor: int | None) -> None:
    """Warn when the GPU is visible in sysfs but its device nodes are missing or inaccessible."""
    needed = ["/dev/kfd"] + ([f"/dev/dri/renderD{render_minor}"] if render_minor else [])
    bad = [p for p in needed if not os.access(probe.path(p), os.R_OK | os.W_OK)]
    if bad:
        probe.warn(f"AMD GPU {label}: present, not usable here: {', '.join(bad)} missing or not accessible "
                   "(container without --device=/dev/kfd --device=/dev/dri, or not in the render group)")
