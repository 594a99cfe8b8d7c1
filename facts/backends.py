"""Lemonade's backend support matrix: which recipe backends this hardware supports, in preference order."""

from __future__ import annotations

from dataclasses import dataclass

from facts.catalog import arch_matches
from facts.models import HardwareFacts

CUDA_ARCHS = ("sm_75", "sm_80", "sm_86", "sm_89", "sm_90", "sm_100", "sm_120", "sm_121")
ROCM_FAMILIES = ("gfx103X", "gfx110X", "gfx1150", "gfx1151", "gfx1152", "gfx120X", "gfx908", "gfx90a", "gfx942",
                 "gfx950")
CDNA = ("gfx908", "gfx90a", "gfx942", "gfx950")  # ROCm on Linux only
# Lemonade on Windows names AMD GPUs from a marketing-name table that lacks these APUs (780M/760M, 680M, 2-CU iGPU)
_WINDOWS_NAME_TABLE_GAPS = ("gfx1103", "gfx1035", "gfx1036")
WIN_LINUX = ("windows", "linux")


@dataclass(frozen=True)
class Support:
    """One support row: a backend, the OSes, and device kinds with their families (empty = any)."""

    backend: str
    os: tuple[str, ...]
    devices: tuple[tuple[str, tuple[str, ...]], ...]


def _row(backend: str, os: tuple[str, ...], *devices: tuple[str, tuple[str, ...]]) -> Support:
    return Support(backend, os, devices)


CPU_ANY = ("cpu", ("x86_64", "arm64"))
# research/lemonade.md §2.1 (LEMON_BACKENDS order = preference order); `system` needs llama-server on PATH
MATRIX: dict[str, tuple[Support, ...]] = {
    "llamacpp": (
        _row("system", ("linux",), CPU_ANY),
        _row("metal", ("macos",), ("metal", ())),
        _row("cuda", WIN_LINUX, ("nvidia_gpu", CUDA_ARCHS)),
        _row("vulkan", WIN_LINUX, ("amd_gpu", ()), CPU_ANY),
        _row("rocm", WIN_LINUX, ("amd_gpu", ROCM_FAMILIES)),
        _row("cpu", WIN_LINUX, CPU_ANY),
    ),
    "whispercpp": (
        _row("npu", ("windows",), ("npu", ("XDNA2",))),
        _row("metal", ("macos",), ("metal", ())),
        _row("vulkan", WIN_LINUX, ("amd_gpu", ()), ("cpu", ("x86_64",))),
        _row("rocm", WIN_LINUX, ("amd_gpu", ("gfx1150", "gfx1151", "gfx110X", "gfx120X"))),
        _row("cpu", WIN_LINUX, CPU_ANY),
    ),
    "sd-cpp": (
        _row("metal", ("macos",), ("metal", ())),
        _row("cuda", WIN_LINUX, ("nvidia_gpu", CUDA_ARCHS)),
        _row("vulkan", WIN_LINUX, ("amd_gpu", ()), ("nvidia_gpu", ()), CPU_ANY),
        _row("rocm", WIN_LINUX, ("amd_gpu", ("gfx1150", "gfx1151", "gfx1152", "gfx103X", "gfx110X", "gfx120X"))),
        _row("cpu", WIN_LINUX, CPU_ANY),
    ),
    "flm": (_row("npu", WIN_LINUX, ("npu", ("XDNA2",))),),
    "ryzenai-llm": (_row("npu", ("windows",), ("npu", ("XDNA2",))),),
    "vllm": (_row("rocm", ("linux",), ("amd_gpu", ("gfx1150", "gfx1151", "gfx110X", "gfx120X"))),),
}


def backends_of(recipe: str) -> tuple[str, ...]:
    """Every backend Lemonade has for `recipe`, in its preference order (empty for a recipe it lacks)."""
    return tuple(row.backend for row in MATRIX.get(recipe, ()))


def _matches(family: str, allowed: tuple[str, ...]) -> bool:
    return not allowed or any(arch_matches(family, a) for a in allowed)


def _devices(hw: HardwareFacts) -> dict[str, list[str]]:
    """Device kind -> families present, the way Lemonade names them (amd_gpu gfx targets, nvidia_gpu sm_XY ...)."""
    os = hw.os.name
    kinds: dict[str, list[str]] = {"cpu": [hw.cpu.arch] if hw.cpu.arch != "unknown" else []}
    for g in hw.gpus:
        if g.device_class == "display-igpu":
            continue
        if g.vendor == "amd":
            fam = g.arch or ""
            if os == "windows" and fam in _WINDOWS_NAME_TABLE_GAPS:
                fam = ""
            kinds.setdefault("amd_gpu", []).append(fam)
        elif g.vendor == "nvidia":
            kinds.setdefault("nvidia_gpu", []).append(g.arch or "")
        elif g.vendor == "apple" and os == "macos":
            kinds.setdefault("metal", []).append("")
    if hw.npu is not None and hw.npu.available and hw.npu.family:
        kinds["npu"] = [hw.npu.family]
    return kinds


def supported_backends(hw: HardwareFacts) -> dict[str, tuple[str, ...]]:
    """recipe -> backends this hardware supports, in Lemonade's preference order (recipes with none left out).

    `llamacpp:system` appears only when the facts already list it (it needs llama-server on PATH)."""
    kinds = _devices(hw)
    out: dict[str, tuple[str, ...]] = {}
    for recipe, rows in MATRIX.items():
        found = []
        for row in rows:
            if hw.os.name not in row.os:
                continue
            if recipe == "llamacpp" and row.backend == "system" and "llamacpp:system" not in hw.backends:
                continue
            ok = False
            for kind, allowed in row.devices:
                for fam in kinds.get(kind, []):
                    if kind == "amd_gpu" and fam in CDNA and hw.os.name != "linux":
                        continue
                    if (fam or not allowed) and _matches(fam, allowed):
                        ok = True
            if ok:
                found.append(row.backend)
        if found:
            out[recipe] = tuple(found)
    return out
