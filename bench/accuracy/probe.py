"""One real llama.cpp load (CPU) in this process: model + context with the given params; logs go to stderr.

Run as a subprocess (the C library logs to the process's stderr, which the parent captures):
    python bench/accuracy/probe.py MODEL.gguf '{"ctx_size": 4096, "ubatch": 512, ...}'
"""

from __future__ import annotations

import json
import sys

GGML_TYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q5_0": 6, "q5_1": 7, "q8_0": 8, "iq4_nl": 20, "bf16": 30}
FLASH = {"off": 0, "on": 1, "auto": -1}


def main() -> int:
    import llama_cpp as lib

    path, params = sys.argv[1], json.loads(sys.argv[2])
    lib.llama_backend_init()
    mp = lib.llama_model_default_params()
    mp.n_gpu_layers = 0
    model = lib.llama_model_load_from_file(path.encode(), mp)
    if not model:
        print("PROBE: model load failed", file=sys.stderr)
        return 1
    cp = lib.llama_context_default_params()
    # llama-server's (common_params) defaults, not the library's: swa_full off, batch 2048, ubatch 512
    cp.n_ctx = params["ctx_size"]
    cp.n_batch = params.get("batch", 2048)
    cp.n_ubatch = params.get("ubatch", 512)
    cp.type_k = GGML_TYPES[params.get("cache_type_k", "f16")]
    cp.type_v = GGML_TYPES[params.get("cache_type_v", "f16")]
    cp.flash_attn_type = FLASH[params.get("flash_attn", "on")]
    cp.n_seq_max = params.get("parallel", 1)
    cp.kv_unified = bool(params.get("kv_unified", False))
    cp.swa_full = bool(params.get("swa_full", False))
    cp.n_threads = cp.n_threads_batch = 1
    ctx = lib.llama_init_from_model(model, cp)
    print("PROBE: context ok" if ctx else "PROBE: context failed", file=sys.stderr)
    sys.stderr.flush()
    return 0 if ctx else 1


if __name__ == "__main__":
    sys.exit(main())
