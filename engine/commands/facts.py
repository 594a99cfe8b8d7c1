"""`engine facts`: the hardware facts, the archetype with its back-off chain, and where each fact came from."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from engine.commands._common import add_json_flag

GIB = 1024**3


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "facts", help="show hardware facts and the archetype",
        description="Show the hardware facts (from a Lemonade system-info document, llama.cpp device output, "
                    "both merged, or by detecting this machine), the archetype with its back-off chain and "
                    "confidence, and where each fact came from.")
    p.add_argument("--system-info", metavar="FILE|-", help="Lemonade GET /v1/system-info JSON (file or - for stdin)")
    p.add_argument("--llama-devices", metavar="FILE|-",
                   help="llama.cpp `--list-devices` output or start-up log (file or - for stdin)")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.inputs import hardware
    from facts.archetype import classify

    hw = hardware(args.system_info, args.llama_devices)
    archetype = classify(hw)
    if args.json:
        from engine.commands._common import print_json

        print_json("facts", {"hardware": hw.model_dump(mode="json"), "archetype": archetype.model_dump(mode="json")})
    else:
        sys.stdout.write(render_text(hw, archetype))
    for warning in hw.warnings:
        print(f"engine facts: warning: {warning}", file=sys.stderr)
    return 0


def _gib(n: int | None) -> str:
    return f"{n / GIB:.2f} GiB" if n is not None else "?"


def render_text(hw: Any, arch: Any) -> str:
    """A readable, aligned summary: machine, GPUs, backends, archetype, provenance, absent facts."""
    rows: list[tuple[str, str]] = [("Source", hw.source)]
    os_line = hw.os.name + (f"  ({hw.os.version})" if hw.os.version else "")
    rows.append(("OS", os_line))
    cpu = hw.cpu
    cores = ", ".join(x for x in (f"{cpu.physical_cores} cores" if cpu.physical_cores else "",
                                  f"{cpu.threads} threads" if cpu.threads else "",
                                  " ".join(cpu.isa)) if x)
    rows.append(("CPU", f"{cpu.name or '?'}  [{cpu.arch}{', ' + cores if cores else ''}]"))
    mem = hw.memory
    mem_line = f"{_gib(mem.total_bytes)} usable" if mem.total_bytes else "unknown"
    if mem.nominal_gb:
        mem_line += f", {mem.nominal_gb} GB nominal"
    if mem.available_bytes is not None:
        mem_line += f", {_gib(mem.available_bytes)} available now"
    rows.append(("Memory", mem_line))
    if hw.npu is not None:
        rows.append(("NPU", f"{hw.npu.name or '?'} ({hw.npu.family or 'family ?'}, "
                            f"{'available' if hw.npu.available else 'not available'})"))
    for i, g in enumerate(hw.gpus):
        kind = "unified" if g.unified else "discrete" if g.unified is False else "memory kind ?"
        ident = " ".join(x for x in (g.vendor, g.arch, g.family) if x)
        klass = ", ".join(dict.fromkeys((g.device_class or "class ?", kind)))
        rows.append((f"GPU {i}", f"{g.marketing_name or g.name}  [{ident}, {klass}]"))
        if g.marketing_name and g.marketing_name != g.name:
            rows.append(("  reported", g.name))
        parts = [f"{_gib(g.dedicated_bytes)} dedicated" if g.dedicated_bytes is not None else "",
                 f"{_gib(g.shared_bytes)} shared" if g.shared_bytes is not None else "",
                 f"{_gib(g.free_bytes)} free now" if g.free_bytes is not None else ""]
        rows.append(("  memory", " + ".join(p for p in parts[:2] if p) + (f"; {parts[2]}" if parts[2] else "")
                     if any(parts) else "unknown"))
        rows.append(("  bandwidth", f"{g.bandwidth_gbs:g} GB/s (spec)" if g.bandwidth_gbs else "unknown"))
        if g.llama_devices:
            rows.append(("  llama.cpp", ", ".join(g.llama_devices)))
    if not hw.gpus:
        rows.append(("GPU", "none"))
    recipes: dict[str, list[str]] = {}
    for entry in hw.backends:
        recipe, _, backend = entry.partition(":")
        mark = "*" if entry in hw.installed_backends else ""
        recipes.setdefault(recipe, []).append(backend + mark)
    for recipe, names in recipes.items():
        default = hw.default_backends.get(recipe)
        rows.append((f"Backends {recipe}" if recipe == next(iter(recipes)) else f"         {recipe}",
                     " ".join(names) + (f"   (default {default})" if default else "")))
    if recipes:
        rows.append(("", "* installed"))
    rows.append(("Archetype", f"{arch.id}   confidence {arch.confidence}"))
    rows.append(("  back-off", " -> ".join(arch.backoff[1:]) or "-"))
    rows += [("  why" if i == 0 else "", r) for i, r in enumerate(arch.reasons)]
    prov: list[tuple[str, str]] = []
    for name, model in (("os", hw.os), ("cpu", hw.cpu), ("memory", hw.memory), ("npu", hw.npu)):
        if model is not None:
            prov += [(f"{name}.{k}", v) for k, v in model.provenance.items()]
    for i, g in enumerate(hw.gpus):
        prov += [(f"gpus[{i}].{k}", v) for k, v in g.provenance.items()]
    width = max([len(k) for k, _ in rows] + [12]) + 2
    lines = [f"{k:<{width}}{v}".rstrip() for k, v in rows]
    if prov:
        pw = max(len(k) for k, _ in prov) + 2
        lines.append("Provenance")
        lines += [f"  {k:<{pw}}{v}" for k, v in prov]
    if hw.absent:
        aw = max(len(a.fact) for a in hw.absent) + 2
        lines.append("Absent")
        lines += [f"  {a.fact:<{aw}}{a.reason}" for a in hw.absent]
    return "\n".join(lines) + "\n"
