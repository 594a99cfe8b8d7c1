"""Context / GPU-layer table: our fit vs Lemonade's auto ctx on the six example machines x 20 registry models.

    python bench/ctx_table.py [--system-info DIR] [--models NAME ...]

Our side: facts.from_system_info -> facts.memory.guard (the chat need of 32768 tokens, llama-server defaults;
the placement shown is the one predicted for llama.cpp's --fit). Lemonade's side: a faithful re-implementation of `resolve_auto_ctx_size` from
src/cpp/include/lemon/auto_tune.h (research/lemonade.md section 5), used only here, for comparison.
Memory already in use is unknown for these documents and taken as 0 on both sides.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = [
    "Qwen3-0.6B-GGUF", "Qwen3-4B-GGUF", "Qwen3-8B-GGUF", "Qwen3-14B-GGUF", "Gemma-3-4b-it-GGUF",
    "Phi-4-mini-instruct-GGUF", "Devstral-Small-2507-GGUF", "Qwen2.5-Coder-32B-Instruct-GGUF",
    "Gemma-4-31B-it-GGUF", "Qwen3-30B-A3B-GGUF", "Qwen3-Coder-30B-A3B-Instruct-GGUF", "gpt-oss-20b-GGUF",
    "LFM2-8B-A1B-GGUF", "granite-4.0-h-tiny-GGUF", "Qwen3-Next-80B-A3B-Instruct-GGUF", "gpt-oss-120b-GGUF",
    "GLM-4.5-Air-UD-Q4K-XL-GGUF", "Qwen3.5-122B-A10B-GGUF", "nomic-embed-text-v1-GGUF",
    "Qwen3-Embedding-8B-GGUF",
]

# --- Lemonade's auto ctx (auto_tune.h), re-implemented for comparison only -------------------------
EMBEDDING_CTX_SIZE, AUTO_CTX_FALLBACK, AUTO_CTX_UNKNOWN_MAX = 8192, 4096, 32768


def lemonade_available_gb(doc: dict[str, Any]) -> float:
    """get_available_memory_gb(GPU device) with 0 GB in use."""
    dev = doc.get("devices", {})
    amd = [g for g in dev.get("amd_gpu", []) if g.get("available")]
    for g in amd:  # AMD iGPU with a carve-out: vram + gtt
        if g.get("integrated") and g.get("vram_gb", 0) > 0:
            return g["vram_gb"] + g.get("virtual_mem_gb", 0)
    for g in amd:
        if not g.get("integrated"):
            return g.get("vram_gb", 0)
    nv = [g for g in dev.get("nvidia_gpu", []) if g.get("available")]
    if nv:
        return nv[0].get("vram_gb", 0)
    metal = dev.get("metal")
    if isinstance(metal, dict) and metal.get("available"):
        ram = float(str(doc.get("Physical Memory", "0")).split()[0])
        return min(metal.get("vram_gb", 0), ram)
    return 0.0  # Windows iGPU without vram_gb, CPU-only: fallback 4096


def lemonade_ctx(doc: dict[str, Any], size_gb: float, embedding: bool) -> int:
    available = lemonade_available_gb(doc)
    if available <= 0:
        return EMBEDDING_CTX_SIZE if embedding else AUTO_CTX_FALLBACK
    from facts._estimate import LEMONADE_KV_TABLE  # Lemonade's size-based f16 KV bytes per token

    per_token = next(b for bound, b in LEMONADE_KV_TABLE if size_gb < bound)
    for_kv = available - size_gb  # registry GB treated as GiB, as Lemonade does
    if for_kv <= 0:
        return EMBEDDING_CTX_SIZE if embedding else AUTO_CTX_FALLBACK
    ctx = int(for_kv * (1 << 30) / per_token)
    ctx = min(ctx, AUTO_CTX_UNKNOWN_MAX)  # the registry carries no max context window
    return max(ctx, EMBEDDING_CTX_SIZE) if embedding else ctx


# --- ours ------------------------------------------------------------------------------------------
def ours(hw: Any, model: Any) -> str:
    from facts.memory import guard

    backend = "cpu" if not hw.gpus else "vulkan"
    fit = guard(hw, model, {"backend": backend, "ctx_size": "auto", "n_gpu_layers": "auto", "n_cpu_moe": "auto"},
                need=32768)
    p = fit.placement
    cell = f"{fit.params['ctx_size']}"
    cell += " all" if p.gpu_layers > p.n_layer else f" ngl {p.gpu_layers}"
    if p.experts_cpu:
        cell += f" cmoe {p.experts_cpu}"
    if fit.params.get("cache_type_k") == "q8_0":
        cell += " q8_0"
    return cell + ("" if fit.fits else " (no fit)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--system-info", type=Path, default=ROOT / "tests" / "fixtures" / "system-info")
    ap.add_argument("--models", nargs="*", default=MODELS)
    args = ap.parse_args()
    from facts.lemonade import from_system_info
    from facts.registry import load_registry, resolve_model_spec

    docs = sorted(p for p in args.system_info.glob("*.json") if not p.name.startswith("old-schema"))
    if not docs:
        print(f"ctx_table: no system-info documents in {args.system_info}", file=sys.stderr)
        return 2
    texts = [(p, p.read_text()) for p in docs]
    machines = [(p.stem, json.loads(text), from_system_info(text, source=p.name)) for p, text in texts]
    reg = load_registry()
    print("Cells: ours = `ctx` + GPU layers (`all`, `ngl N`, `cmoe N` = --n-cpu-moe) / Lemonade's auto ctx.\n")
    print("| model | GB | " + " | ".join(m[0] for m in machines) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in machines) + " |")
    for name in args.models:
        model = resolve_model_spec(name)
        size = float(reg[name]["size"])
        cells = [f"{ours(hw, model)} / {lemonade_ctx(doc, size, model.embedding)}" for _, doc, hw in machines]
        print(f"| {name} | {size:g} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
