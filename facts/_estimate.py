"""llama.cpp memory arithmetic: KV / SWA / recurrent state / compute buffer / weights for one configuration."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from facts.errors import FactsInputError
from facts.models import ModelFacts

MIB = 1 << 20
# ggml KV cache types: (elements per block, bytes per block)  (ggml.c type_traits)
CACHE_TYPES: dict[str, tuple[int, int]] = {
    "f32": (1, 4), "f16": (1, 2), "bf16": (1, 2), "q8_0": (32, 34), "q5_1": (32, 24), "q5_0": (32, 22),
    "q4_1": (32, 20), "q4_0": (32, 18), "iq4_nl": (32, 18),
}
QUANTISED = frozenset(CACHE_TYPES) - {"f32", "f16", "bf16"}
CELL_PAD = 256  # llama_context pads n_ctx (and n_ctx_seq) to 256; the SWA cache is padded to 256 too
# Lemonade's size-based f16 KV bytes per token when the architecture is unknown (auto_tune.h)
LEMONADE_KV_TABLE: tuple[tuple[float, int], ...] = (
    (1, 128 * 1024), (3, 224 * 1024), (8, 256 * 1024), (16, 320 * 1024), (32, 512 * 1024),
    (64, 640 * 1024), (float("inf"), 768 * 1024),
)
DEFAULT_VOCAB = 152_064  # when unknown: a large modern vocabulary (Qwen), conservative for the logits term


def pad(n: int, to: int = CELL_PAD) -> int:
    return (n + to - 1) // to * to


def row_bytes(cache_type: str, n: int) -> int:
    block, size = CACHE_TYPES[cache_type]
    return (n + block - 1) // block * size


@dataclass(frozen=True)
class Config:
    """The llama-server parameters that change memory (llama-server defaults)."""

    ctx_size: int = 4096
    batch: int = 2048
    ubatch: int = 512
    cache_type_k: str = "f16"
    cache_type_v: str = "f16"
    flash_attn: bool = True  # "auto" resolves to on wherever the backend supports FA (CPU, CUDA, Vulkan, Metal)
    parallel: int = 4  # llama-server: -np -1 (auto) = 4 slots with a unified KV cache
    kv_unified: bool = True
    swa_full: bool = False
    n_gpu_layers: int = 999
    n_cpu_moe: int = 0


@dataclass(frozen=True)
class Estimate:
    """Bytes for one configuration; `gpu_bytes` is the part on the GPU given n_gpu_layers / n_cpu_moe."""

    weights_bytes: int
    kv_bytes: int
    swa_kv_bytes: int
    recurrent_bytes: int
    compute_bytes: int
    mmproj_bytes: int
    draft_bytes: int
    kv_cells: int
    swa_cells: int
    n_stream: int
    n_ctx: int
    kv_bytes_per_cell: int  # non-SWA K+V bytes per cell, all layers
    gpu_bytes: int
    cpu_bytes: int
    estimated: bool
    notes: tuple[str, ...] = field(default=())

    @property
    def total_bytes(self) -> int:
        return (self.weights_bytes + self.kv_bytes + self.swa_kv_bytes + self.recurrent_bytes
                + self.compute_bytes + self.mmproj_bytes + self.draft_bytes)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["total_bytes"] = self.total_bytes
        d["notes"] = list(self.notes)
        return d


@dataclass(frozen=True)
class Refusal:
    """A cache-type / flash-attention combination llama.cpp refuses (llama_init_from_model), and the nearest
    value it accepts. The one statement of these rules: validate() rejects them, the guards fix them."""

    parameter: str  # "cache_type_k" | "cache_type_v"
    value: str
    fix: str
    reason: str
    needs_flash_attn: bool = False  # turning flash attention on also resolves it


def cache_refusals(model: ModelFacts, cache_type_k: str, cache_type_v: str,
                   flash_attn: bool) -> tuple[Refusal, ...]:
    """What llama.cpp refuses about these (known) cache types, each with its fix applied before the next
    check: a quantised V cache needs flash attention; MLA needs K == V; a quantised type's block size must
    divide the head size."""
    out: list[Refusal] = []
    tk, tv = cache_type_k, cache_type_v
    if tv in QUANTISED and not flash_attn:
        out.append(Refusal("cache_type_v", tv, "f16", f"a quantised V cache requires flash attention (llama.cpp refuses {tv} with -fa off)",
                           needs_flash_attn=True))
        tv = "f16"
    if model.mla and tk != tv:
        out.append(Refusal("cache_type_v", tv, tk, "MLA models need equal K and V cache types"))
        tv = tk
    for name, t, dims in (("cache_type_k", tk, (model.key_length, model.key_length_swa)),
                          ("cache_type_v", tv, (model.value_length, model.value_length_swa))):
        block = CACHE_TYPES[t][0]
        bad = sorted(d for d in dims if d and d % block)
        if bad and not (name == "cache_type_v" and model.mla):
            out.append(Refusal(name, t, "f16", f"{name} {t}: block size {block} does not divide the head size "
                                               f"{bad[0]}"))
    return tuple(out)


def validate(model: ModelFacts, cfg: Config) -> None:
    """Reject configurations llama.cpp itself refuses (llama_init_from_model)."""
    problems = []
    for name, t in (("cache_type_k", cfg.cache_type_k), ("cache_type_v", cfg.cache_type_v)):
        if t not in CACHE_TYPES:
            problems.append(f"{name}: unknown cache type {t!r} (one of {', '.join(CACHE_TYPES)})")
    if problems:
        raise FactsInputError("memory", problems)
    refused = cache_refusals(model, cfg.cache_type_k, cfg.cache_type_v, cfg.flash_attn)
    problems += [f"{r.parameter} {r.value}: {r.reason}" for r in refused]
    for name, v, lo in (("ctx_size", cfg.ctx_size, 1), ("batch", cfg.batch, 1), ("ubatch", cfg.ubatch, 1),
                        ("parallel", cfg.parallel, 1)):
        if v < lo:
            problems.append(f"{name}: must be >= {lo}, got {v}")
    if problems:
        raise FactsInputError("memory", problems)


def layer_count(model: ModelFacts) -> int:
    """Blocks of the model: the header's, else a rough count from the parameter count."""
    if model.block_count:
        return model.block_count
    p = model.params_b or 8.0  # a rough layer count when the header is unknown
    for bound, n in ((1, 24), (3, 28), (10, 36), (20, 40), (40, 64), (90, 80)):
        if p < bound:
            return n
    return 94


def _weights(model: ModelFacts) -> tuple[tuple[int, ...], tuple[int, ...], int, bool]:
    """(per-layer bytes, per-layer expert bytes, output/embedding bytes, estimated)."""
    n = layer_count(model)
    if model.layer_bytes and len(model.layer_bytes) == n:
        experts = model.expert_bytes if len(model.expert_bytes) == n else (0,) * n
        return model.layer_bytes, experts, model.output_bytes or 0, False
    total = model.file_bytes or int((model.params_b or 8.0) * 1e9 * 0.6)
    out = total // (n + 1) // 2  # embeddings + head: about half a layer's share
    per = (total - out) // n
    moe_share = 0.9 if model.is_moe else 0.0  # MoE: ~90% of a layer's bytes are expert tensors
    return (per,) * n, (int(per * moe_share),) * n, total - per * n, True


@dataclass(frozen=True)
class Layout:
    """What an estimate needs that depends only on the model and the cache types (not on the context size,
    slots or placement): fit searches compute it once and reuse it for every configuration they try."""

    n_layer: int
    exact: bool  # per-layer KV heads and head sizes (and recurrent sizes) known, not size-based
    per_cell_base: int  # K+V bytes per cell of the non-SWA cache, all layers
    per_cell_swa: int  # K+V bytes per cell of the SWA cache, all layers
    swa_window: int  # SWA layers with a window: a separate, smaller SWA cache (0: none)
    cache: tuple[int, ...]  # per layer: 0 no KV cells, 1 the non-SWA cache, 2 the SWA cache
    recurrent: tuple[bool, ...]  # per layer
    rec_per_seq: int  # recurrent state bytes per sequence, all layers
    layer_bytes: tuple[int, ...]
    expert_bytes: tuple[int, ...]
    out_bytes: int
    weights_estimated: bool
    notes: tuple[str, ...]


def layout(model: ModelFacts, cache_type_k: str, cache_type_v: str, flash_attn: bool) -> Layout:
    """The model- and cache-type-dependent part of estimate() (cache types already validated)."""
    n_layer = layer_count(model)
    notes: tuple[str, ...] = ()
    heads = model.head_count_kv
    if len(heads) == 1 and n_layer > 1:  # a model-facts file may give one value for every layer
        heads = heads * n_layer
    exact = bool(model.block_count and len(heads) == n_layer and model.key_length)

    swa = model.swa_layers if len(model.swa_layers) == n_layer else (False,) * n_layer
    recr = model.recurrent_layers if len(model.recurrent_layers) == n_layer else (False,) * n_layer
    own = model.kv_layers if len(model.kv_layers) == n_layer else tuple(not r for r in recr)
    window = (model.sliding_window or 0) if any(swa) else 0
    cache = tuple(0 if not own[il] else 2 if swa[il] and window else 1 for il in range(n_layer))
    per_cell = [0, 0, 0]  # indexed by `cache`
    if exact:
        klen = [model.key_length_swa if swa[i] and model.key_length_swa else model.key_length for i in range(n_layer)]
        vlen = [model.value_length_swa if swa[i] and model.value_length_swa else (model.value_length or 0)
                for i in range(n_layer)]
        v_max = max(heads[i] * vlen[i] for i in range(n_layer))
        for il in range(n_layer):
            if cache[il]:
                k = row_bytes(cache_type_k, heads[il] * (klen[il] or 0))
                v = 0 if model.mla else row_bytes(cache_type_v, heads[il] * vlen[il] if flash_attn else v_max)
                per_cell[cache[il]] += k + v
    else:
        size_gb = (model.file_bytes or 0) / 1e9
        f16_per_token = next(b for bound, b in LEMONADE_KV_TABLE if size_gb < bound)
        width = (row_bytes(cache_type_k, 4096) + row_bytes(cache_type_v, 4096)) / (2 * 2 * 4096)
        per_cell[1] = int(f16_per_token * width)
        notes = (f"KV bytes per token from the model size ({size_gb:.1f} GB): Lemonade's table, "
                 f"{f16_per_token // 1024} KiB at f16",)

    rec_per_seq = 0
    if any(recr):
        r, s = model.recurrent_r_size, model.recurrent_s_size
        if r is None or s is None:
            exact = False
            r, s = (model.embedding_length or 4096) * 3, (model.embedding_length or 4096) * 128
        rec_per_seq = sum(recr) * (r + s) * 4
    layer_bytes, expert_bytes, out_bytes, w_est = _weights(model)
    return Layout(n_layer=n_layer, exact=exact, per_cell_base=per_cell[1], per_cell_swa=per_cell[2],
                  swa_window=window, cache=cache, recurrent=recr, rec_per_seq=rec_per_seq, layer_bytes=layer_bytes,
                  expert_bytes=expert_bytes, out_bytes=out_bytes, weights_estimated=w_est, notes=notes)


def estimate(model: ModelFacts, cfg: Config) -> Estimate:
    """Memory for `model` under `cfg` with llama.cpp's cache semantics (see docs/memory.md)."""
    validate(model, cfg)
    return estimate_with(model, cfg, layout(model, cfg.cache_type_k, cfg.cache_type_v, cfg.flash_attn))


def estimate_with(model: ModelFacts, cfg: Config, lay: Layout) -> Estimate:
    """estimate() for a validated `cfg` whose cache types and flash attention `lay` was made for."""
    n_seq = max(1, cfg.parallel)
    n_ctx = pad(cfg.ctx_size)
    if cfg.kv_unified:
        n_stream, kv_size = 1, n_ctx
    else:
        n_stream, kv_size = n_seq, pad(n_ctx // n_seq)
        n_ctx = kv_size * n_seq
    n_batch = min(n_ctx, cfg.batch)
    n_ubatch = min(n_batch, cfg.ubatch)
    n_layer = lay.n_layer
    swa_cells = 0
    if lay.swa_window:
        swa_cells = kv_size if cfg.swa_full else pad(
            min(kv_size, lay.swa_window * (n_seq if cfg.kv_unified else 1) + n_ubatch))
    kv_bytes = lay.per_cell_base * kv_size * n_stream
    swa_bytes = lay.per_cell_swa * swa_cells * n_stream
    rec_bytes = lay.rec_per_seq * n_seq
    compute = compute_bytes(model, cfg, n_ubatch=n_ubatch, kv_size=kv_size, swa_cells=swa_cells,
                            n_stream=n_stream)
    weights = sum(lay.layer_bytes) + lay.out_bytes
    # placement: llama.cpp offloads the *last* n_gpu_layers blocks, the output head when all fit;
    # --n-cpu-moe N keeps the expert tensors of the first N blocks on the CPU.
    # KV bytes are split evenly over the layers of each cache, recurrent state over the recurrent layers.
    ngl = max(0, min(cfg.n_gpu_layers, n_layer + 1))
    first_gpu = n_layer - min(ngl, n_layer)
    kv_share = (0, kv_bytes // (lay.cache.count(1) or 1), swa_bytes // (lay.cache.count(2) or 1))
    rec_share = rec_bytes // max(1, sum(lay.recurrent))
    gpu = 0
    for il in range(first_gpu, n_layer):
        gpu += lay.layer_bytes[il] - (lay.expert_bytes[il] if il < cfg.n_cpu_moe else 0) + kv_share[lay.cache[il]]
        if lay.recurrent[il]:
            gpu += rec_share
    if ngl > n_layer:
        gpu += lay.out_bytes
    mm, draft = model.mmproj_bytes or 0, model.draft_bytes or 0
    if ngl > 0:
        gpu += compute + mm + draft
    total = weights + kv_bytes + swa_bytes + rec_bytes + compute + mm + draft
    return Estimate(weights_bytes=weights, kv_bytes=kv_bytes, swa_kv_bytes=swa_bytes, recurrent_bytes=rec_bytes,
                    compute_bytes=compute, mmproj_bytes=mm, draft_bytes=draft, kv_cells=kv_size,
                    swa_cells=swa_cells, n_stream=n_stream, n_ctx=n_ctx, kv_bytes_per_cell=lay.per_cell_base,
                    gpu_bytes=gpu, cpu_bytes=max(0, total - gpu),
                    estimated=not lay.exact or lay.weights_estimated or bool(model.estimated), notes=lay.notes)


def compute_bytes(model: ModelFacts, cfg: Config, *, n_ubatch: int, kv_size: int, swa_cells: int,
                  n_stream: int) -> int:
    """The compute buffer llama.cpp reserves for the worst-case prompt ubatch (CPU backend).

    ggml's graph allocator places the graph inputs first, then every activation in graph order, reusing
    freed space (best fit); the buffer is the highest address reached: the inputs plus the span of one
    layer's activations (attention, FFN or recurrent phase), or the output phase (the logits, once the
    inputs are freed), whichever is larger. docs/memory.md ("Compute buffer") names the llama.cpp
    function behind each term.
    """
    del n_ubatch  # recomputed: llama.cpp caps the ubatch with the unpadded ctx, then rounds it to the slots
    n_seq = max(1, cfg.parallel)
    n_out = min(cfg.ctx_size, cfg.batch, cfg.ubatch)  # every token of the worst-case ubatch is an output
    n_tok = -(-n_out // n_seq) * n_seq  # llama_context::graph_reserve: a multiple of n_seq_max
    g = _Shapes.of(model, n_tok)
    n_kv = max(kv_size, swa_cells)  # the widest attention (KQ scores, f32 -> f16 casts): the larger cache
    layers = max(_attention_span(model, cfg, g, n_kv, n_stream), _ffn_span(model, g), _recurrent_span(model, g))
    # output phase: masks and indices are free again; the unused inp_embd input, the normed hidden state
    # of the output rows (a graph output, never freed) and their logits remain
    output = _a(n_tok * 4) + g.e + _a(g.n_embd * n_out * F32) + _a(g.vocab * n_out * F32)
    return max(_inputs(model, cfg, g, n_out, kv_size, swa_cells) + layers, output)


F32 = 4
ALIGN = 32  # ggml CPU buffer alignment (TENSOR_ALIGNMENT): every tensor is padded to it


def _a(n: int) -> int:
    return pad(n, ALIGN)


@dataclass(frozen=True)
class _Shapes:
    """Bytes of one ubatch's f32 activations, each padded to the buffer alignment."""

    n_tok: int
    n_embd: int
    e: int  # hidden state [n_embd, n_tok]
    q: int  # queries [n_head * head_k, n_tok] (MLA: absorbed, head_k = kv_lora_rank + rope)
    o: int  # attention output [n_head * head_v, n_tok]
    k: int  # keys of one layer [n_head_kv * head_k, n_tok]
    f: int  # dense FFN width [n_ff, n_tok]
    vocab: int
    n_head: int
    heads_kv: int
    hk: int
    hv: int

    @classmethod
    def of(cls, model: ModelFacts, n_tok: int) -> _Shapes:
        n_embd = model.embedding_length or 4096
        n_head = model.head_count or max(1, n_embd // 128)
        hk = model.key_length or n_embd // n_head
        hv = model.value_length or hk
        heads_kv = max(model.head_count_kv) if model.head_count_kv else n_head
        n_ff = model.feed_forward_length or 4 * n_embd
        return cls(n_tok=n_tok, n_embd=n_embd, e=_a(n_embd * n_tok * F32), q=_a(n_head * hk * n_tok * F32),
                   o=_a(n_head * hv * n_tok * F32), k=_a(heads_kv * hk * n_tok * F32), f=_a(n_ff * n_tok * F32),
                   vocab=model.vocab_size or DEFAULT_VOCAB, n_head=n_head, heads_kv=heads_kv, hk=hk, hv=hv)


def _rotation(model: ModelFacts, cfg: Config, g: _Shapes) -> tuple[int, int]:
    """Side of the Hadamard matrices llama.cpp rotates Q/K and V with for a quantised K / V cache whose
    head size 64 divides (llama_kv_cache::build_input_k_rot / build_input_v_rot); 0 when off."""
    k_rot = v_rot = 0
    if model.mla:  # the K-only attention input of MLA builds no rotation
        return 0, 0
    if cfg.cache_type_k in QUANTISED and g.hk % 64 == 0:
        k_rot = 64
        while g.hk % (k_rot * 2) == 0:
            k_rot *= 2
    if cfg.cache_type_v in QUANTISED and g.hv % 64 == 0:
        v_rot = 64
    return k_rot, v_rot


def _inputs(model: ModelFacts, cfg: Config, g: _Shapes, n_out: int, kv_size: int, swa_cells: int) -> int:
    """Graph inputs, allocated before any activation: token ids, the embeddings input (unused for a token
    batch and never freed), positions, output ids; per KV cache its K / V row indices (one per V element
    without flash attention: V is transposed) and the KQ mask (f16 with flash attention, else f32);
    the rotation matrices."""
    n_tok = g.n_tok
    total = _a(n_tok * 4) + g.e + _a(n_tok * 4) + _a(n_out * 4)
    heads = model.head_count_kv or (g.heads_kv,)
    caches = [] if not any(heads) else [kv_size] if not swa_cells else [swa_cells] + (
        [kv_size] if not all(model.swa_layers) else [])
    v_idx = 0 if model.mla else 1 if cfg.flash_attn else max(heads) * g.hv  # MLA: a K-only cache
    for n_kv in caches:
        total += _a(n_tok * 8) + _a(n_tok * 8 * v_idx) + _a(n_kv * n_tok * (2 if cfg.flash_attn else 4))
    k_rot, v_rot = _rotation(model, cfg, g)
    return total + _a(k_rot * k_rot * F32) + _a(v_rot * v_rot * F32)


def _attention_span(model: ModelFacts, cfg: Config, g: _Shapes, n_kv: int, n_stream: int) -> int:
    """One attention block above the inputs: the layer input and its norm, Q from the projection and its
    RoPE'd copy (ggml_rope of a reshaped view cannot run in place), K / V where the freed space does not
    hold them; then the KQ scores [n_kv, n_tok, n_head] without flash attention, or the f16 copies of one
    layer's f32 cache view with it (the CPU kernel reads f16 K/V). MLA: the absorbed Q next to its no-RoPE
    part and RoPE'd part; without flash attention a contiguous copy of one layer's latent V."""
    if model.mla and model.kv_lora_rank:
        return _mla_span(model, cfg, g, n_kv, n_stream)
    span = 2 * g.e + 2 * g.q + (g.k if 2 * g.k > g.q else 0) + (g.k if g.k > g.e else 0)
    if g.q > g.e >= g.f and 2 * g.k < g.q and layer_count(model) > 1:  # a wide grouped Q, a narrow FFN:
        span += g.f  # from the second layer on the layer input sits above the previous FFN's freed GLU output
    if cfg.flash_attn:
        casts = [_a(n_kv * n_stream * g.heads_kv * h * 2)
                 for t, h in ((cfg.cache_type_k, g.hk), (cfg.cache_type_v, g.hv)) if t == "f32"]
        return max(span, 2 * g.e + 2 * g.q + sum(casts))
    return max(span, 2 * g.e + 2 * g.q + _a(n_kv * g.n_tok * g.n_head * F32))


def _mla_span(model: ModelFacts, cfg: Config, g: _Shapes, n_kv: int, n_stream: int) -> int:
    """MLA attention (deepseek2 graph): the layer input and its norm, the Q projection (n_head x (nope +
    rope), taken as 3 x rope: DeepSeek's 128 + 64, the facts do not carry it), its RoPE'd part, the no-RoPE
    part absorbed into the latent space (n_head x kv_lora_rank) and their concatenation, the absorbed Q
    (n_head x (kv_lora_rank + rope)), which the freed pieces cannot hold; then the KQ scores and a
    contiguous copy of one layer's latent V without flash attention, or the f16 copies of an f32 cache."""
    rope = model.rope_dim or 0
    q_b, q_pe = (_a(g.n_head * n * rope * g.n_tok * F32) for n in (3, 1))
    span = 2 * g.e + q_b + q_pe + g.o + g.q
    holes = g.e + q_b + q_pe + g.o  # freed by the time the cache is read
    if not cfg.flash_attn:
        v_cont = _a(n_kv * n_stream * (model.kv_lora_rank or 0) * (4 if cfg.cache_type_k == "f32" else 2))
        return span + _a(n_kv * g.n_tok * g.n_head * F32) + (v_cont if v_cont > holes else 0)
    for t, h in ((cfg.cache_type_k, g.hk), (cfg.cache_type_v, g.hv)):
        cast = _a(n_kv * n_stream * h * 2) if t == "f32" else 0
        if cast <= holes:
            holes -= cast
        else:
            span += cast
    return span


def _ffn_span(model: ModelFacts, g: _Shapes) -> int:
    """FFN block: the FFN input (in place of the attention output, whose slot lies above the layer input
    and the freed attention pieces) and its norm, gate, up and GLU output of width u each (a GLU output no
    wider than the hidden state takes the freed norm's slot), then the down projection d where the freed
    gate + up cannot hold it. MoE: u covers the used experts (ggml_mul_mat_id), d is one hidden state per
    used expert (summed afterwards); the router's small tensors keep the slot below the FFN input."""
    spans = []
    moe = model.is_moe and model.expert_used_count
    if not moe or not model.expert_bytes or not all(model.expert_bytes):  # dense layers (deepseek2's first)
        spans.append((2 * g.e if g.f > 2 * g.e else g.e, g.f, g.e))
    if moe:
        used = model.expert_used_count or 1
        fe = model.expert_feed_forward_length or (model.feed_forward_length or 0) // used
        q = g.q if not model.mla else g.e  # MLA's absorbed Q leaves a hole the attention output takes
        spans.append((g.e + max(g.e, q), _a(fe * used * g.n_tok * F32), used * g.e))
    return max(p + g.e + 3 * u - (u if u <= g.e else 0) + (d if d > 2 * u else 0) for p, u, d in spans)


def _recurrent_span(model: ModelFacts, g: _Shapes) -> int:
    """Recurrent blocks: mamba-style in_proj / conv / scan, or lfm2's short convolution."""
    if not any(model.recurrent_layers):
        return 0
    if model.ssm_inner_size:
        d_in, groups = model.ssm_inner_size, (model.ssm_group_count or 1) * (model.ssm_state_size or 0)
        return 2 * g.e + _a((3 * d_in + 2 * groups) * g.n_tok * F32) + _a((model.recurrent_s_size or 0) * F32)
    # short convolution: the layer input, in_proj (b, c, x), b * x in the freed norm's slot, the
    # state-prefixed conv input, then the conv output in b * x's slot
    return g.e + 3 * g.e + g.e + g.e
