"""The compute model against ggml's allocator replayed on real model shapes (no llama.cpp needed).

graph_sim.py replays ggml-alloc over the llama / qwen3 / qwen3moe graph; `--verify ROWS` checks that
replay against the sizes llama.cpp printed in a memory_accuracy.py --json run (the llama-family models),
and the default mode compares facts.memory.estimate() with the replay on full-width real models
(Llama 3, Qwen 2.5 / 3, Mistral, Phi-3, SmolLM2, Qwen3-30B-A3B), which tiny-model loads cannot reach:

    python bench/accuracy/real_shapes.py [--verify results.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))

import graph_sim as gs  # noqa: E402

# name: n_embd, n_head, n_head_kv, head_dim, n_ff, vocab, qk-norm, (experts, used, expert n_ff) - from the
# models' published configurations
REAL = {
    "SmolLM2-135M": (576, 9, 3, 64, 1536, 49152, False, None),
    "Qwen2.5-0.5B": (896, 14, 2, 64, 4864, 151936, False, None),
    "Qwen3-0.6B": (1024, 16, 8, 128, 3072, 151936, True, None),
    "Llama-3.2-1B": (2048, 32, 8, 64, 8192, 128256, False, None),
    "Phi-3-mini": (3072, 32, 32, 96, 8192, 32064, False, None),
    "Mistral-7B": (4096, 32, 8, 128, 14336, 32768, False, None),
    "Llama-3.1-8B": (4096, 32, 8, 128, 14336, 128256, False, None),
    "Qwen3-8B": (4096, 32, 8, 128, 12288, 151936, True, None),
    "Qwen3-30B-A3B": (2048, 32, 4, 128, 6144, 151936, True, (128, 8, 768)),
}
# the harness's llama-family tiny models (bench/accuracy/tiny_models.py and the committed fixtures)
HARNESS = {
    "llama-gqa": (256, 8, 2, 64, 128, 384, False, None, 3), "llama-vocab32k": (256, 4, 2, 64, 128, 32000, False, None, 2),
    "llama-mha": (128, 4, 4, 32, 128, 384, False, None, 2), "smollm2-135m": (576, 9, 3, 64, 1536, 49152, False, None, 2),
    "qwen3-0.6b": (1024, 16, 8, 128, 3072, 151936, True, None, 2),
    "qwen3moe": (128, 4, 2, 32, 128, 384, True, (8, 2, 64), 2),
    "qwen3moe-v32k": (512, 8, 4, 64, 1024, 32000, True, (64, 8, 256), 2),
    "fixture-llama-mha": (64, 4, 4, 32, 64, 384, False, None, 2), "fixture-llama-gqa": (64, 8, 2, 16, 64, 384, False, None, 3),
    "fixture-qwen3moe": (64, 4, 2, 32, 64, 384, True, (8, 2, 64), 2),
    "fixture-llama-h64": (64, 2, 1, 64, 64, 384, False, None, 2),
    "fixture-llama-v4k": (64, 4, 2, 16, 128, 4096, False, None, 2),
}
QUANT = ("q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "iq4_nl")


def shape(spec: tuple, n_layer: int = 3) -> gs.Shape:
    e, h, kv, hd, ff, vocab, qk, moe = spec[:8]
    return gs.Shape(e, h, kv, hd, ff, vocab, n_layer, qk_norm=qk, n_expert=moe[0] if moe else 0,
                    n_used=moe[1] if moe else 0, ff_exp=moe[2] if moe else 0)


def replay(m: gs.Shape, p: dict, kv_cells: int) -> int:
    """graph_sim's buffer for one configuration (llama.cpp's rounding of the ubatch, rotation inputs)."""
    n_out = min(p["ctx_size"], p["batch"], p["ubatch"])
    n_tok = -(-n_out // p["parallel"]) * p["parallel"]
    rot_k = rot_v = 0
    if p["cache_type_k"] in QUANT and m.head_dim % 64 == 0:
        rot_k = 64
        while m.head_dim % (rot_k * 2) == 0:
            rot_k *= 2
    if p["cache_type_v"] in QUANT and m.head_dim % 64 == 0:
        rot_v = 64
    g = gs.build_llama(m, n_tok=n_tok, n_kv=kv_cells, n_stream=1 if p["kv_unified"] else p["parallel"],
                       fa=p["flash_attn"] == "on", k_type=p["cache_type_k"], v_type=p["cache_type_v"],
                       v_idx_width=m.head_kv * m.head_dim, k_rot=rot_k, v_rot=rot_v, n_out=n_out)
    return gs.allocate(g)


def verify(rows: list[dict]) -> int:
    """Replay every logged llama-family load; count exact matches (llama.cpp prints 2 decimals)."""
    exact = total = 0
    for r in rows:
        spec = HARNESS.get(r["model"])
        if not spec or not r["llama_cpp"]["ok"]:
            continue
        got = replay(shape(spec, spec[8]), r["params"], r["llama_cpp"]["kv_cells"]) / (1 << 20)
        total += 1
        exact += abs(got - r["llama_cpp"]["compute_mib"]) <= 0.0051
    print(f"graph_sim = llama.cpp (to 0.01 MiB) in {exact}/{total} llama-family loads")
    return 0 if exact == total else 1


def compare() -> int:
    from facts.memory import Config, estimate
    from facts.models import ModelFacts

    print("| model | configs | within 10% | within 3% | error median [min, max] |")
    print("| --- | --- | --- | --- | --- |")
    everything = []
    for name, spec in REAL.items():
        e, h, kv, hd, ff, vocab, qk, moe = spec
        facts = ModelFacts(architecture="qwen3moe" if moe else "qwen3" if qk else "llama", block_count=3,
                           embedding_length=e, head_count=h, head_count_kv=(kv,) * 3, key_length=hd, value_length=hd,
                           feed_forward_length=ff, vocab_size=vocab, is_moe=bool(moe),
                           expert_count=moe[0] if moe else None, expert_used_count=moe[1] if moe else None,
                           expert_feed_forward_length=moe[2] if moe else None, expert_bytes=(1,) * 3 if moe else ())
        errors = []
        for ctx, ub, fa, (tk, tv), (par, uni) in itertools.product(
                [512, 4096, 32768], [64, 512, 2048], ["on", "off"], [("f16", "f16"), ("q8_0", "q8_0"), ("f32", "f32")],
                [(1, False), (4, True), (3, False)]):
            if fa == "off" and tv in QUANT:
                continue
            p = {"ctx_size": ctx, "ubatch": ub, "batch": 2048, "cache_type_k": tk, "cache_type_v": tv,
                 "flash_attn": fa, "parallel": par, "kv_unified": uni}
            est = estimate(facts, Config(ctx_size=ctx, ubatch=ub, cache_type_k=tk, cache_type_v=tv,
                                         flash_attn=fa == "on", parallel=par, kv_unified=uni))
            errors.append(est.compute_bytes / replay(shape(spec), p, est.kv_cells) - 1)
        everything += errors
        print(f"| {name} | {len(errors)} | {sum(abs(x) <= 0.1 for x in errors)} | {sum(abs(x) <= 0.03 for x in errors)} | "
              f"{statistics.median(errors) * 100:+.1f}% [{min(errors) * 100:+.1f}%, {max(errors) * 100:+.1f}%] |")
    within = sum(abs(x) <= 0.1 for x in everything)
    print(f"\nwithin 10% of the replay: {within}/{len(everything)} ({100 * within / len(everything):.1f}%)")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--verify", type=Path, help="a memory_accuracy.py --json file: check the replay against it")
    args = ap.parse_args()
    return verify(json.loads(args.verify.read_text())) if args.verify else compare()


if __name__ == "__main__":
    sys.exit(main())
