"""Header read speed: facts.gguf.read_model_facts vs gguf.GGUFReader on a realistic multi-GB GGUF header.

Builds (in a temp dir) a sparse file shaped like Qwen3-8B Q4_K_M: 152k-token vocabulary with merges,
326 tensor infos, ~5 GB of (sparse) tensor data, then prints median times of both readers.

    python bench/gguf_header_speed.py [--repeat 15]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from _timing import median_seconds


def build(path: Path) -> int:
    import gguf

    n_layer, n_embd, n_vocab, n_ff, kv = 36, 4096, 151936, 12288, 1024
    w = gguf.GGUFWriter(str(path), "qwen3")
    w.add_block_count(n_layer)
    w.add_context_length(40960)
    w.add_embedding_length(n_embd)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(32)
    w.add_head_count_kv(8)
    w.add_key_length(128)
    w.add_value_length(128)
    w.add_tokenizer_model("gpt2")
    w.add_token_list([f"token-{i:06d}" for i in range(n_vocab)])
    w.add_token_types([1] * n_vocab)
    w.add_token_merges([f"tok {i:05d}" for i in range(151387)])
    q4k = gguf.GGMLQuantizationType.Q4_K
    shapes = [("token_embd.weight", (n_vocab, n_embd)), ("output.weight", (n_vocab, n_embd))]
    for il in range(n_layer):
        shapes += [(f"blk.{il}.attn_q.weight", (n_embd, n_embd)), (f"blk.{il}.attn_k.weight", (kv, n_embd)),
                   (f"blk.{il}.attn_v.weight", (kv, n_embd)), (f"blk.{il}.attn_output.weight", (n_embd, n_embd)),
                   (f"blk.{il}.ffn_gate.weight", (n_ff, n_embd)), (f"blk.{il}.ffn_up.weight", (n_ff, n_embd)),
                   (f"blk.{il}.ffn_down.weight", (n_embd, n_ff)), (f"blk.{il}.attn_norm.weight", None),
                   (f"blk.{il}.ffn_norm.weight", None)]
    total = 0
    for name, shape in shapes:
        if shape is None:
            w.add_tensor_info(name, (n_embd,), np.dtype(np.float32), n_embd * 4, raw_dtype=gguf.GGMLQuantizationType.F32)
            total += n_embd * 4
        else:
            nbytes = shape[0] * shape[1] // 256 * 144
            byte_shape = (shape[0], shape[1] // 256 * 144)  # GGUFWriter takes quantised shapes in bytes
            w.add_tensor_info(name, byte_shape, np.dtype(np.uint8), nbytes, raw_dtype=q4k)
            total += nbytes + 31 & ~31
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(size + total + 4096)  # sparse tensor data
    return path.stat().st_size


def median_ms(fn, repeat: int) -> float:
    return median_seconds(fn, repeat) * 1e3


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    import gguf

    from facts.gguf import read_header, read_model_facts

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "qwen3-8b-shape.gguf"
        size = build(path)
        facts = read_model_facts(path)
        assert facts.vocab_size == 151936 and facts.block_count == 36
        ours = median_ms(lambda: read_model_facts(path), args.repeat)
        ref = median_ms(lambda: gguf.GGUFReader(str(path)), max(3, args.repeat // 3))
        print(f"file {size / 1e9:.2f} GB (sparse), {len(read_header(path).tensors)} tensors")
        print(f"facts.gguf.read_model_facts  median {ours:8.1f} ms")
        print(f"gguf.GGUFReader              median {ref:8.1f} ms   ratio {ref / ours:.1f}x")
        os.sync()
    return 0


if __name__ == "__main__":
    sys.exit(main())
