"""Speed of the memory fit: fit_context (cold and cached), guard and estimate, medians over repeats.

    python bench/fit_speed.py [--repeat 200]
"""

from __future__ import annotations

import argparse
import sys

from _timing import median_seconds


def median_us(fn, repeat: int) -> float:
    return median_seconds(fn, repeat) * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=200)
    args = ap.parse_args()
    from facts import fit as fit_module
    from facts.memory import GIB, Config, estimate, fit_context, guard
    from facts.models import GPU, HardwareFacts, Memory, ModelFacts

    mb = 10**6
    hw = HardwareFacts(gpus=(GPU(vendor="nvidia", name="bench", dedicated_bytes=12 * GIB, unified=False),),
                       memory=Memory(total_bytes=64 * GIB))
    model = ModelFacts(name="moe-30b", architecture="qwen3moe", params_b=30.5, active_params_b=3.3, is_moe=True,
                       quant="Q4_K_M", file_bytes=18_000 * mb, trained_ctx=40960, block_count=48,
                       embedding_length=2048, head_count=32, head_count_kv=(4,) * 48, key_length=128,
                       value_length=128, vocab_size=151936, expert_count=128, expert_used_count=8,
                       layer_bytes=(360 * mb,) * 48, expert_bytes=(340 * mb,) * 48, output_bytes=700 * mb)

    def cold() -> None:
        fit_module._cache.clear()
        fit_context(hw, model)

    rows = [
        ("estimate (48 layers)", median_us(lambda: estimate(model, Config(ctx_size=32768)), args.repeat)),
        ("fit_context, cold", median_us(cold, args.repeat)),
        ("fit_context, cached", median_us(lambda: fit_context(hw, model), args.repeat)),
        ("guard (MoE, experts to CPU)", median_us(lambda: guard(hw, model, {"backend": "cuda"}), args.repeat)),
    ]
    for name, us in rows:
        print(f"{name:<30} median {us:9.1f} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
