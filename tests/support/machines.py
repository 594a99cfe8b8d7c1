"""System-info machines the recipe tests need beyond the six examples, derived in code from those documents
(tests/fixtures/system-info/, see its README): nothing hand-typed is stored.

- `rdna4_16gb_linux`: the RX 7900 XTX desktop with its GPU replaced by a 16 GB gfx1201 (RX 9070 XT class) card;
  vLLM's ROCm row (gfx120X) and the rest of Lemonade's recipes section stay as Lemonade reported them.
- `cuda_16gb_linux`: the RTX 4090 desktop with 16 GB of VRAM (an RTX 4080 class card).
- `strix_point_windows`: the Radeon 780M laptop with a Strix Point CPU/iGPU and an available XDNA2 NPU, so
  ryzenai-llm, flm and whispercpp's npu rows are installable (as Lemonade marks a supported, not installed row).
- `small_cpu_linux`: the CPU-only box with 8 GB of RAM.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path

from facts.lemonade import from_system_info
from facts.models import HardwareFacts

SYSINFO = Path(__file__).resolve().parents[1] / "fixtures" / "system-info"
SIX = ("strix-halo-128gb-linux.json", "radeon-780m-laptop-windows.json", "rx-7900-xtx-desktop-linux.json",
       "rtx-4090-desktop-linux.json", "apple-m3-max-64gb-macos.json", "cpu-only-linux.json")


@cache
def document(name: str) -> dict:
    return json.loads((SYSINFO / name).read_text(encoding="utf-8"))


def facts(name: str) -> HardwareFacts:
    return from_system_info(json.dumps(document(name)), source=name)


def _installable(doc: dict, recipe: str, backend: str) -> None:
    row = doc["recipes"][recipe]["backends"][backend]
    row.update(state="installable", message="Backend is supported but not installed.",
               action=f"lemonade backends install {recipe}:{backend}")
    doc["recipes"][recipe].setdefault("default_backend", backend)


def rdna4_16gb_linux() -> HardwareFacts:
    doc = copy.deepcopy(document("rx-7900-xtx-desktop-linux.json"))
    doc["devices"]["amd_gpu"][0].update(family="gfx1201", name="120001", vram_gb=16.0, virtual_mem_gb=31.3)
    return from_system_info(json.dumps(doc), source="rdna4-16gb (derived from rx-7900-xtx-desktop-linux.json)")


def cuda_16gb_linux() -> HardwareFacts:
    doc = copy.deepcopy(document("rtx-4090-desktop-linux.json"))
    doc["devices"]["nvidia_gpu"][0].update(name="NVIDIA GeForce RTX 4080", vram_gb=15.99)
    return from_system_info(json.dumps(doc), source="rtx-4080-16gb (derived from rtx-4090-desktop-linux.json)")


def strix_point_windows() -> HardwareFacts:
    doc = copy.deepcopy(document("radeon-780m-laptop-windows.json"))
    cpu = "AMD Ryzen AI 9 HX 370 w/ Radeon 890M"
    doc["Processor"] = cpu
    doc["devices"]["cpu"].update(name=cpu, cores=12, threads=24)
    doc["devices"]["amd_gpu"][0].update(name="AMD Radeon 890M Graphics")
    doc["devices"]["amd_npu"] = {"available": True, "family": "XDNA2", "name": cpu, "power_mode": "DEFAULT",
                                 "tops_max_int": 50, "utilization": 0.0}
    for recipe in ("ryzenai-llm", "flm", "whispercpp"):
        _installable(doc, recipe, "npu")
    doc["recipes"]["whispercpp"]["default_backend"] = "npu"
    return from_system_info(json.dumps(doc), source="strix-point-windows (derived from radeon-780m-laptop-windows.json)")


def small_cpu_linux() -> HardwareFacts:
    doc = copy.deepcopy(document("cpu-only-linux.json"))
    doc["Physical Memory"] = "7.70 GB"
    return from_system_info(json.dumps(doc), source="cpu-8gb (derived from cpu-only-linux.json)")
