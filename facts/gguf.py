"""Model facts from a GGUF header (metadata + tensor infos), with llama.cpp's per-architecture semantics."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from facts._gguf_header import GGUFHeader, SkippedArray, read_header
from facts.errors import ModelFactsError
from facts.models import ModelFacts

__all__ = ["GGUFHeader", "model_facts_from_header", "read_header", "read_model_facts"]

# architectures whose llama.cpp context has no KV cache at all (encoders, diffusion models)
NO_MEMORY_ARCHS = frozenset({
    "bert", "modern-bert", "nomic-bert", "nomic-bert-moe", "neo-bert", "jina-bert-v2", "jina-bert-v3",
    "eurobert", "gemma-embedding", "wavtokenizer-dec", "dream", "llada", "llada-moe", "rnd1",
})
# the encoders among them (pooled embeddings), not the diffusion / audio-decoder models
EMBEDDING_ARCHS = NO_MEMORY_ARCHS - {"dream", "llada", "llada-moe", "rnd1", "wavtokenizer-dec"}
RECURRENT_ARCHS = frozenset({"mamba", "mamba2", "rwkv6", "rwkv6qwen2", "rwkv7", "arwkv7"})
# architectures whose SWA layout llama.cpp derives from a built-in period (llama-model.cpp / models/*.cpp):
# arch -> (period, dense_first, default window or None, needs a stored window > 0 to enable SWA)
SWA_PERIODS: dict[str, tuple[int, bool, int | None, bool]] = {
    "gemma2": (2, False, 4096, False),
    "gemma3": (6, False, None, True),
    "gemma3n": (5, False, None, False),
    "gemma-embedding": (6, False, None, False),
    "cohere2": (4, False, None, False),
    "cohere2moe": (4, True, None, False),
    "gpt-oss": (2, False, None, False),
    "olmo2": (4, False, None, True),
    "exaone-moe": (4, False, 128, False),
    "afmoe": (4, False, None, True),
    "mellum": (4, False, None, True),
    "muse-glimmer": (4, False, None, False),
    "plamo3": (8, False, None, True),
    "smallthinker": (4, True, 4096, True),
}
_EXPERT_TENSOR = re.compile(r"^blk\.(\d+)\.ffn_(?:up|down|gate|gate_up)_(?:ch)?exps\.")
_BLOCK_TENSOR = re.compile(r"^blk\.(\d+)\.")


def read_model_facts(path: str | os.PathLike[str]) -> ModelFacts:
    """Model facts from a GGUF file's header only (never tensor data); ModelFactsError when malformed."""
    header = read_header(path)
    return model_facts_from_header(header, name=Path(header.path).stem)


def _per_layer(value: Any, n: int, key: str, source: str) -> tuple[int, ...]:
    if isinstance(value, SkippedArray):
        raise ModelFactsError(source, f"{key}: array of {value.count} items is too long")
    if isinstance(value, (tuple, list)):
        if len(value) != n:
            raise ModelFactsError(source, f"{key}: {len(value)} values for {n} layers")
        return tuple(int(v) for v in value)
    return (int(value),) * n


def _swa_pattern(arch: str, md: dict[str, Any], n_layer: int, n_trunk: int, source: str
                 ) -> tuple[tuple[bool, ...], int | None]:
    """Per-layer SWA flags and the window, as llama.cpp's load_arch_hparams derives them."""
    key = f"{arch}.attention.sliding_window_pattern"
    window = md.get(f"{arch}.attention.sliding_window")
    stored = md.get(key)
    if isinstance(stored, (tuple, list)) and stored and not isinstance(stored[0], tuple):
        flags = tuple(bool(v) for v in stored)
        if len(flags) != n_layer:
            raise ModelFactsError(source, f"{key}: {len(flags)} values for {n_layer} layers")
        return (flags, int(window) if window else None) if any(flags) else ((), None)
    if arch == "llama4":
        if window == 0:
            return (), None
        period, dense_first, window = 4, False, 8192
    elif arch == "exaone4":
        if n_layer != 64:
            return (), None
        period, dense_first, window = 4, False, window or 4096
    elif arch == "lfm2" or arch == "lfm2moe":
        return (), None  # handled by the caller (every attention layer), needs head counts
    elif arch in SWA_PERIODS:
        period, dense_first, default, needs_window = SWA_PERIODS[arch]
        if needs_window and not window:
            return (), None
        window = window or default
    else:
        return (), None
    if isinstance(stored, int):
        period = stored
    if not window:
        return (), None
    flags = []
    for il in range(n_layer):
        if il >= n_trunk:
            flags.append(False)
        elif dense_first:
            flags.append(period == 0 or il % period != 0)
        else:
            flags.append(period == 0 or il % period < period - 1)
    return tuple(flags), int(window)


def _quant(md: dict[str, Any], tensor_types: dict[int, int]) -> str | None:
    ft = md.get("general.file_type")
    if isinstance(ft, int):
        try:
            from gguf.constants import LlamaFileType

            name = LlamaFileType(ft).name
            return "F32" if name == "ALL_F32" else name.removeprefix("MOSTLY_")
        except ValueError:
            pass
    if not tensor_types:
        return None
    from gguf.constants import GGMLQuantizationType

    dominant = max(tensor_types, key=lambda t: tensor_types[t])
    try:
        return GGMLQuantizationType(dominant).name
    except ValueError:
        return None


def model_facts_from_header(header: GGUFHeader, name: str | None = None) -> ModelFacts:
    """Build ModelFacts from a parsed header (per-layer KV heads, SWA/recurrent layout, weight bytes)."""
    try:
        return _facts(header, name)
    except ModelFactsError:
        raise
    except (ValueError, TypeError, ArithmeticError) as err:  # wrongly typed or out-of-range metadata
        detail = str(err).splitlines()
        raise ModelFactsError(header.path, "GGUF metadata does not describe a valid model: "
                                           + "; ".join(d.strip() for d in detail[:3])) from err


def _facts(header: GGUFHeader, name: str | None) -> ModelFacts:
    md, src = header.metadata, header.path
    arch = md.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise ModelFactsError(src, "GGUF metadata has no general.architecture string")

    def get(key: str, default: Any = None) -> Any:
        return md.get(f"{arch}.{key}", default)

    def pos_int(key: str) -> int | None:
        v = get(key)
        return int(v) if isinstance(v, int) and not isinstance(v, bool) and v > 0 else None

    n_layer = pos_int("block_count")
    n_embd = pos_int("embedding_length")
    for key, value, limit in (("block_count", n_layer, 1 << 16), ("embedding_length", n_embd, 1 << 24)):
        if value is not None and value > limit:
            raise ModelFactsError(src, f"{arch}.{key} = {value} is implausible (more than {limit})")
    facts: dict[str, Any] = {
        "name": md.get("general.name") if isinstance(md.get("general.name"), str) else name,
        "architecture": arch,
        "file_bytes": header.file_size,
        "trained_ctx": pos_int("context_length"),
        "block_count": n_layer,
        "embedding_length": n_embd,
        "expert_count": pos_int("expert_count"),
        "expert_used_count": pos_int("expert_used_count"),
        "expert_shared_count": pos_int("expert_shared_count"),
        "ssm_conv_kernel": pos_int("ssm.conv_kernel"),
        "ssm_inner_size": pos_int("ssm.inner_size"),
        "ssm_state_size": pos_int("ssm.state_size"),
        "ssm_group_count": get("ssm.group_count") if isinstance(get("ssm.group_count"), int) else None,
        "ssm_time_step_rank": get("ssm.time_step_rank") if isinstance(get("ssm.time_step_rank"), int) else None,
        "provenance": {"*": f"gguf:{src}"},
    }
    ff = get("feed_forward_length")
    ff_max = max(ff) if isinstance(ff, tuple) and ff else ff
    if isinstance(ff_max, int) and ff_max > 0:
        facts["feed_forward_length"] = ff_max
    ffe = get("expert_feed_forward_length")
    ffe_max = max(ffe) if isinstance(ffe, tuple) and ffe else ffe
    if isinstance(ffe_max, int) and ffe_max > 0:
        facts["expert_feed_forward_length"] = ffe_max
    vocab = pos_int("vocab_size")
    tokens = md.get("tokenizer.ggml.tokens")
    if vocab is None and isinstance(tokens, (SkippedArray, tuple)):
        vocab = tokens.count if isinstance(tokens, SkippedArray) else len(tokens)
    facts["vocab_size"] = vocab or None
    pooling = get("pooling_type")
    facts["embedding"] = arch in EMBEDDING_ARCHS or (isinstance(pooling, int) and pooling not in (0, -1))
    facts["reranker"] = pooling == 4

    # weights from tensor infos
    layer_bytes = [0] * (n_layer or 0)
    expert_bytes = [0] * (n_layer or 0)
    other = total_elems = expert_elems = 0
    types: dict[int, int] = {}
    for t in header.tensors:
        elems = 1
        for d in t.shape:
            elems *= d
        total_elems += elems
        types[t.ggml_type] = types.get(t.ggml_type, 0) + t.nbytes
        m = _BLOCK_TENSOR.match(t.name)
        if m and n_layer and int(m.group(1)) < n_layer:
            il = int(m.group(1))
            layer_bytes[il] += t.nbytes
            if _EXPERT_TENSOR.match(t.name):
                expert_bytes[il] += t.nbytes
                expert_elems += elems
        else:
            other += t.nbytes
    if header.tensors:
        facts["params_b"] = total_elems / 1e9 if total_elems else None
        facts["layer_bytes"] = tuple(layer_bytes)
        facts["output_bytes"] = other
        if any(expert_bytes):
            facts["expert_bytes"] = tuple(expert_bytes)
    facts["quant"] = _quant(md, types)
    n_exp, n_used = facts["expert_count"], facts["expert_used_count"]
    facts["is_moe"] = bool(n_exp and n_exp > 1) or bool(expert_elems)
    if facts["is_moe"] and expert_elems and n_exp and n_used:
        facts["active_params_b"] = (total_elems - expert_elems * (1 - n_used / n_exp)) / 1e9

    if n_layer:
        _attention_facts(facts, arch, md, n_layer, n_embd, src)
    return ModelFacts(**{k: v for k, v in facts.items() if v is not None})


def _attention_facts(facts: dict[str, Any], arch: str, md: dict[str, Any], n_layer: int,
                     n_embd: int | None, src: str) -> None:
    """Heads, head sizes, MLA, SWA, recurrent layout and which layers own KV cells (llama.cpp semantics)."""

    def get(key: str, default: Any = None) -> Any:
        return md.get(f"{arch}.{key}", default)

    head = get("attention.head_count", 0)
    heads = _per_layer(head, n_layer, f"{arch}.attention.head_count", src)
    kv = get("attention.head_count_kv")
    heads_kv = heads if kv is None else _per_layer(kv, n_layer, f"{arch}.attention.head_count_kv", src)
    n_head0 = heads[0] if heads else 0
    facts["head_count"] = n_head0
    facts["head_count_kv"] = heads_kv
    if n_head0 > 0 and n_embd:
        key_len = int(get("attention.key_length", n_embd // n_head0))
        val_len = int(get("attention.value_length", n_embd // n_head0))
        facts["key_length"] = key_len or None
        facts["value_length"] = val_len or None
        facts["key_length_swa"] = int(get("attention.key_length_swa", key_len)) or None
        facts["value_length_swa"] = int(get("attention.value_length_swa", val_len)) or None
    rope = get("rope.dimension_count")
    if isinstance(rope, int) and rope > 0:
        facts["rope_dim"] = rope
    if get("attention.key_length_mla") and get("attention.value_length_mla"):
        facts["mla"] = True
        rank = get("attention.kv_lora_rank")
        if isinstance(rank, int) and rank > 0:
            facts["kv_lora_rank"] = rank

    nextn = get("nextn_predict_layers", 0)
    n_trunk = n_layer - (nextn if isinstance(nextn, int) and 0 < nextn < n_layer else 0)

    # recurrent layers (llama_hparams::is_recr as set by each architecture)
    recr: tuple[bool, ...] = ()
    if arch in RECURRENT_ARCHS:
        recr = (True,) * n_layer
    elif arch in ("qwen3next", "qwen35", "qwen35moe"):
        stored = get("attention.recurrent_layers")
        if isinstance(stored, tuple):
            recr = tuple(bool(v) for v in stored)
        else:
            interval = int(get("full_attention_interval", 4))
            recr = tuple(il < n_trunk and (il + 1) % interval != 0 for il in range(n_layer))
    elif arch in ("lfm2", "lfm2moe", "granitehybrid", "jamba", "falcon-h1", "nemotron_h", "nemotron_h_moe",
                  "plamo2", "kimi-linear", "minimax-01"):
        ff = get("feed_forward_length")
        ffs = ff if isinstance(ff, tuple) and len(ff) == n_layer else None
        if arch == "falcon-h1":
            recr = (True,) * n_layer
        elif arch.startswith("nemotron_h") and ffs:
            recr = tuple(heads_kv[il] == 0 and ffs[il] == 0 for il in range(n_layer))
        else:
            recr = tuple(h == 0 for h in heads_kv)
    if any(recr):
        facts["recurrent_layers"] = recr
        facts["recurrent_r_size"], facts["recurrent_s_size"] = _recurrent_sizes(facts, md, arch, n_embd)

    swa, window = _swa_pattern(arch, md, n_layer, n_trunk, src)
    if arch in ("lfm2", "lfm2moe"):
        w = get("attention.sliding_window")
        if isinstance(w, int) and w > 0:
            swa, window = tuple(not r for r in (recr or (False,) * n_layer)), w
    if any(swa):
        facts["swa_layers"] = swa
        facts["sliding_window"] = window

    # which layers own KV cells: not recurrent, not a NextN/MTP head, not sharing another layer's KV
    if arch in NO_MEMORY_ARCHS:
        own = (False,) * n_layer
    else:
        shared = get("attention.shared_kv_layers", 0)
        kv_from_start = n_layer - shared if arch == "gemma4" and isinstance(shared, int) else None
        if arch == "gemma3n":
            kv_from_start = 20
        own = tuple(
            not (recr[il] if recr else False)
            and il < n_trunk
            and (kv_from_start is None or il < kv_from_start)
            and heads_kv[il] > 0
            for il in range(n_layer))
        if arch.startswith("nemotron_h"):
            ff = get("feed_forward_length")
            if isinstance(ff, tuple) and len(ff) == n_layer:
                own = tuple(o and ff[il] == 0 for il, o in enumerate(own))
    facts["kv_layers"] = own


def _recurrent_sizes(facts: dict[str, Any], md: dict[str, Any], arch: str, n_embd: int | None
                     ) -> tuple[int | None, int | None]:
    """llama_hparams::n_embd_r / n_embd_s (f32 elements per sequence and recurrent layer)."""
    l_cache = md.get(f"{arch}.shortconv.l_cache")
    if isinstance(l_cache, int) and l_cache > 0 and n_embd:
        return n_embd * (l_cache - 1), 0
    wkv = md.get(f"{arch}.wkv.head_size")
    if isinstance(wkv, int) and wkv > 0 and n_embd:
        shift = md.get(f"{arch}.token_shift_count", 2)
        return int(shift) * n_embd, n_embd * wkv
    d_conv = facts.get("ssm_conv_kernel") or 0
    d_inner = facts.get("ssm_inner_size") or 0
    d_state = facts.get("ssm_state_size") or 0
    n_group = facts.get("ssm_group_count") or 0
    if not d_inner:
        return None, None
    return max(d_conv - 1, 0) * (d_inner + 2 * n_group * d_state), d_state * d_inner
