"""Write tiny random-weight GGUF models (llama, gemma2/3, qwen3moe, deepseek2 MLA, lfm2) with gguf.GGUFWriter."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

VOCAB = 384  # 3 specials + 256 byte tokens + 125 plain tokens


@dataclass
class Spec:
    """One tiny model: architecture, sizes, extra metadata and a tensor builder."""

    name: str
    arch: str
    n_layer: int = 2
    n_embd: int = 64
    n_head: int = 4
    n_head_kv: int | list[int] = 2
    head_dim: int = 16
    n_ff: int = 128
    n_ctx_train: int = 8192
    extra: dict[str, Any] = field(default_factory=dict)
    vocab: int = VOCAB
    tied: bool = False  # no output.weight: the head reuses token_embd (Qwen3-0.6B, gemma)
    matrix_type: str = "F16"  # deepseek2's MLA graph needs F32 weights on the CPU backend at these sizes
    build: Callable[[Spec, Callable[[str, tuple[int, ...]], None]], None] | None = None


def _kv(spec: Spec, il: int) -> int:
    return spec.n_head_kv[il] if isinstance(spec.n_head_kv, list) else spec.n_head_kv


def _attn(spec: Spec, add: Callable[[str, tuple[int, ...]], None], il: int, qk_norm: bool = False,
          post_norm: bool = False) -> None:
    e, hd, kv = spec.n_embd, spec.head_dim, _kv(spec, il)
    add(f"blk.{il}.attn_norm.weight", (e,))
    add(f"blk.{il}.attn_q.weight", (spec.n_head * hd, e))
    add(f"blk.{il}.attn_k.weight", (kv * hd, e))
    add(f"blk.{il}.attn_v.weight", (kv * hd, e))
    add(f"blk.{il}.attn_output.weight", (e, spec.n_head * hd))
    if qk_norm:
        add(f"blk.{il}.attn_q_norm.weight", (hd,))
        add(f"blk.{il}.attn_k_norm.weight", (hd,))
    if post_norm:
        add(f"blk.{il}.post_attention_norm.weight", (e,))
        add(f"blk.{il}.post_ffw_norm.weight", (e,))


def _ffn(spec: Spec, add: Callable[[str, tuple[int, ...]], None], il: int) -> None:
    e, f = spec.n_embd, spec.n_ff
    add(f"blk.{il}.ffn_norm.weight", (e,))
    add(f"blk.{il}.ffn_gate.weight", (f, e))
    add(f"blk.{il}.ffn_up.weight", (f, e))
    add(f"blk.{il}.ffn_down.weight", (e, f))


def _experts(spec: Spec, add: Callable[[str, tuple[int, ...]], None], il: int, n_exp: int, n_ff_exp: int) -> None:
    e = spec.n_embd
    add(f"blk.{il}.ffn_norm.weight", (e,))
    add(f"blk.{il}.ffn_gate_inp.weight", (n_exp, e))
    add(f"blk.{il}.ffn_gate_exps.weight", (n_exp, n_ff_exp, e))
    add(f"blk.{il}.ffn_up_exps.weight", (n_exp, n_ff_exp, e))
    add(f"blk.{il}.ffn_down_exps.weight", (n_exp, e, n_ff_exp))


def _common(spec: Spec, add: Callable[[str, tuple[int, ...]], None], output: bool = True,
            norm: str = "output_norm") -> None:
    add("token_embd.weight", (spec.vocab, spec.n_embd))
    add(f"{norm}.weight", (spec.n_embd,))
    if output:
        add("output.weight", (spec.vocab, spec.n_embd))


def build_dense(spec: Spec, add: Callable[[str, tuple[int, ...]], None]) -> None:
    gemma = spec.arch.startswith("gemma")
    _common(spec, add, output=not gemma and not spec.tied)
    for il in range(spec.n_layer):
        _attn(spec, add, il, qk_norm=spec.arch in ("gemma3", "qwen3"), post_norm=gemma)
        _ffn(spec, add, il)


def build_qwen3moe(spec: Spec, add: Callable[[str, tuple[int, ...]], None]) -> None:
    _common(spec, add)
    for il in range(spec.n_layer):
        _attn(spec, add, il, qk_norm=True)
        _experts(spec, add, il, spec.extra["expert_count"], spec.extra["expert_feed_forward_length"])


def build_deepseek2(spec: Spec, add: Callable[[str, tuple[int, ...]], None]) -> None:
    x = spec.extra
    e, nh = spec.n_embd, spec.n_head
    rank, rope, k_mla, v_mla = x["attention.kv_lora_rank"], x["rope.dimension_count"], x[
        "attention.key_length_mla"], x["attention.value_length_mla"]
    _common(spec, add)
    for il in range(spec.n_layer):
        add(f"blk.{il}.attn_norm.weight", (e,))
        add(f"blk.{il}.attn_kv_a_norm.weight", (rank,))
        q_rank = x["attention.q_lora_rank"]
        add(f"blk.{il}.attn_q_a_norm.weight", (q_rank,))
        add(f"blk.{il}.attn_q_a.weight", (q_rank, e))
        add(f"blk.{il}.attn_q_b.weight", (nh * k_mla, q_rank))
        add(f"blk.{il}.attn_kv_a_mqa.weight", (rank + rope, e))
        add(f"blk.{il}.attn_k_b.weight", (nh, rank, k_mla - rope))
        add(f"blk.{il}.attn_v_b.weight", (nh, v_mla, rank))
        add(f"blk.{il}.attn_output.weight", (e, nh * v_mla))
        if il < x.get("leading_dense_block_count", 0):
            _ffn(spec, add, il)
        else:
            _experts(spec, add, il, x["expert_count"], x["expert_feed_forward_length"])
            sh = x["expert_feed_forward_length"] * x["expert_shared_count"]
            add(f"blk.{il}.ffn_gate_shexp.weight", (sh, e))
            add(f"blk.{il}.ffn_up_shexp.weight", (sh, e))
            add(f"blk.{il}.ffn_down_shexp.weight", (e, sh))


def build_lfm2(spec: Spec, add: Callable[[str, tuple[int, ...]], None]) -> None:
    e = spec.n_embd
    _common(spec, add, output=False, norm="token_embd_norm")
    for il in range(spec.n_layer):
        add(f"blk.{il}.attn_norm.weight", (e,))
        if _kv(spec, il) > 0:
            hd, kv = spec.head_dim, _kv(spec, il)
            add(f"blk.{il}.attn_q_norm.weight", (hd,))
            add(f"blk.{il}.attn_k_norm.weight", (hd,))
            add(f"blk.{il}.attn_q.weight", (e, e))
            add(f"blk.{il}.attn_k.weight", (kv * hd, e))
            add(f"blk.{il}.attn_v.weight", (kv * hd, e))
            add(f"blk.{il}.attn_output.weight", (e, e))
        else:
            add(f"blk.{il}.shortconv.conv.weight", (e, spec.extra["shortconv.l_cache"]))
            add(f"blk.{il}.shortconv.in_proj.weight", (3 * e, e))
            add(f"blk.{il}.shortconv.out_proj.weight", (e, e))
        _ffn(spec, add, il)


def specs() -> list[Spec]:
    """The accuracy-harness model set (one per memory layout llama.cpp distinguishes)."""
    return [
        Spec("llama-gqa", "llama", n_layer=3, n_head=8, n_head_kv=2, head_dim=64, n_embd=256,
             extra={"rope.dimension_count": 64}, build=build_dense),
        Spec("llama-vocab32k", "llama", n_layer=2, n_head=4, n_head_kv=2, head_dim=64, n_embd=256, vocab=32000,
             extra={"rope.dimension_count": 64}, build=build_dense),
        Spec("llama-mha", "llama", n_layer=2, n_head=4, n_head_kv=4, head_dim=32, n_embd=128,
             extra={"rope.dimension_count": 32}, build=build_dense),
        Spec("gemma2-swa", "gemma2", n_layer=4, n_head=4, n_head_kv=2, head_dim=32, n_embd=128,
             extra={"attention.sliding_window": 512}, build=build_dense),
        Spec("gemma3-swa", "gemma3", n_layer=7, n_head=4, n_head_kv=1, head_dim=32, n_embd=128,
             extra={"attention.sliding_window": 1024}, build=build_dense),
        Spec("qwen3moe", "qwen3moe", n_layer=2, n_head=4, n_head_kv=2, head_dim=32, n_embd=128,
             extra={"expert_count": 8, "expert_used_count": 2, "expert_feed_forward_length": 64},
             build=build_qwen3moe),
        Spec("deepseek2-mla", "deepseek2", n_layer=2, n_head=4, n_head_kv=1, head_dim=0, n_embd=128,
             extra={"attention.kv_lora_rank": 64, "attention.q_lora_rank": 32, "rope.dimension_count": 32, "attention.key_length": 96,
                    "attention.value_length": 64, "attention.key_length_mla": 64,
                    "attention.value_length_mla": 32, "expert_count": 4, "expert_used_count": 2,
                    "expert_shared_count": 1, "expert_feed_forward_length": 64,
                    "leading_dense_block_count": 1},
             matrix_type="F32", build=build_deepseek2),
        Spec("lfm2-hybrid", "lfm2", n_layer=4, n_head=4, n_head_kv=[0, 2, 0, 2], head_dim=256, n_embd=1024,
             extra={"shortconv.l_cache": 3}, build=build_lfm2),
    ] + small_real_specs()


def small_real_specs() -> list[Spec]:
    """Models with the widths and vocabularies of real small models (few layers: the compute buffer of the
    worst-case ubatch does not grow with the layer count), so the output phase is sized as in practice."""
    return [
        Spec("smollm2-135m", "llama", n_layer=2, n_embd=576, n_head=9, n_head_kv=3, head_dim=64, n_ff=1536,
             vocab=49152, extra={"rope.dimension_count": 64}, build=build_dense),
        Spec("qwen3-0.6b", "qwen3", n_layer=2, n_embd=1024, n_head=16, n_head_kv=8, head_dim=128, n_ff=3072,
             vocab=151936, tied=True, build=build_dense),
        Spec("gemma3-1b-v32k", "gemma3", n_layer=6, n_embd=1152, n_head=4, n_head_kv=1, head_dim=256, n_ff=6912,
             vocab=32000, extra={"attention.sliding_window": 512}, build=build_dense),
        Spec("qwen3moe-v32k", "qwen3moe", n_layer=2, n_embd=512, n_head=8, n_head_kv=4, head_dim=64, n_ff=1024,
             vocab=32000, extra={"expert_count": 64, "expert_used_count": 8, "expert_feed_forward_length": 256},
             build=build_qwen3moe),
        Spec("lfm2-v65k", "lfm2", n_layer=4, n_embd=1024, n_head=16, n_head_kv=[0, 8, 0, 8], head_dim=64,
             n_ff=4608, vocab=65536, extra={"shortconv.l_cache": 3}, build=build_lfm2),
    ]


def _vocab(writer: Any, n_vocab: int) -> None:
    import gguf

    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)]
    tokens += [f"tok{i}" for i in range(n_vocab - len(tokens))]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    types += [gguf.TokenType.BYTE] * 256 + [gguf.TokenType.NORMAL] * (n_vocab - 259)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * n_vocab)
    writer.add_token_types([int(t) for t in types])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)


def write(spec: Spec, path: Path, seed: int = 0) -> Path:
    """Write `spec` as a GGUF file at `path` (random weights, F32 vectors, F16/F32 matrices)."""
    import gguf

    rng = np.random.default_rng(seed)
    matrix_type = spec.matrix_type
    w = gguf.GGUFWriter(str(path), spec.arch)
    w.add_name(spec.name)
    w.add_block_count(spec.n_layer)
    w.add_context_length(spec.n_ctx_train)
    w.add_embedding_length(spec.n_embd)
    w.add_feed_forward_length(spec.n_ff)
    w.add_head_count(spec.n_head)
    w.add_head_count_kv(spec.n_head_kv)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if matrix_type == "F16" else gguf.LlamaFileType.ALL_F32)
    if spec.head_dim and "attention.key_length" not in spec.extra:
        w.add_key_length(spec.head_dim)
        w.add_value_length(spec.head_dim)
    for key, value in spec.extra.items():
        full = f"{spec.arch}.{key}"
        if isinstance(value, bool):
            w.add_bool(full, value)
        elif isinstance(value, int):
            w.add_uint32(full, value)
        elif isinstance(value, float):
            w.add_float32(full, value)
        elif isinstance(value, list):
            w.add_array(full, value)
    _vocab(w, spec.vocab)
    tensors: list[tuple[str, tuple[int, ...]]] = []
    assert spec.build is not None
    spec.build(spec, lambda name, shape: tensors.append((name, shape)))
    for name, shape in tensors:
        dtype = np.float16 if len(shape) >= 2 and matrix_type == "F16" else np.float32
        data = (rng.standard_normal(shape) * 0.02).astype(dtype)
        if name.endswith("norm.weight"):
            data = np.ones(shape, dtype=np.float32)
        w.add_tensor(name, data)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("outdir", type=Path)
    args = ap.parse_args()
    args.outdir.mkdir(parents=True, exist_ok=True)
    for spec in specs():
        print(write(spec, args.outdir / f"{spec.name}.gguf"))


if __name__ == "__main__":
    main()
