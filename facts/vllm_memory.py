"""vLLM's memory for one model on one GPU: weights, runtime overhead and the KV cache in vLLM's block layout.

The facts behind the arithmetic (sources in docs/recipes.md):

- vLLM pages the KV cache in blocks of 16 tokens (its default block size); a sequence holds whole blocks.
- Per token and attention layer it caches K and V of every KV head (2 x heads x head size x dtype bytes), or one
  latent row (kv_lora_rank + rope dims) for multi-head-latent-attention models.
- Linear-attention / Mamba layers of hybrid models hold a fixed state per sequence instead; vLLM enlarges the
  attention block until one attention page is at least one state page.
- With `--kv-cache-memory-bytes N` vLLM allocates exactly N bytes for the cache; weights, the activations of
  its profiling run, the sampler warm-up and the runtime come on top. Its own default share of device memory
  is `--gpu-memory-utilization 0.9`, and its batch defaults are 2048 batched tokens / 256 sequences below
  70 GiB of device memory, 8192 / 1024 above.
- `--max-model-len` must fit one sequence in the cache and may not exceed the model's trained context.

The model's attention layout comes from the model facts (a GGUF header or model-facts file), else from the
shipped GGUF facts of a llama.cpp build of the same base model in Lemonade's registry (vLLM's
`Qwen3.5-9B-FP16-vLLM` and llama.cpp's `Qwen3.5-9B-GGUF` are one model), else from the model size (Lemonade's
own table; marked estimated). The runtime and activation terms are estimates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from facts.models import GIB, HardwareFacts, ModelFacts

MIB = 1 << 20
BLOCK_SIZE = 16  # vLLM's default KV block size (tokens)
UTILIZATION = 0.9  # vLLM's default --gpu-memory-utilization: the share of device memory it plans with
LEMONADE_KV_BYTES = 4 * GIB  # Lemonade's --kv-cache-memory-bytes 4G (vllm_server.cpp)
FLOOR_CTX = 4096  # Lemonade's AUTO_CTX_FALLBACK: below this a chat model is not useful
UNKNOWN_MAX_CTX = 32768  # Lemonade's AUTO_CTX_UNKNOWN_MAX: its auto size never goes above this for vLLM
MAX_MODEL_LEN = 1 << 20  # our ctx_size vocabulary's upper bound
KV_SEQUENCES = 4  # full-length sequences an `auto` pool holds (llama-server's default slot count) [estimated]
RUNTIME_BYTES = GIB  # HIP / PyTorch context and allocator slack [estimated]
KV_DTYPE_BYTES = {"auto": 2, "float16": 2, "bfloat16": 2, "fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1}
# Lemonade's size table (auto_tune.h): f16 KV bytes per token by registry size, when the layout is unknown
_SIZE_TABLE: tuple[tuple[float, int], ...] = (
    (1, 128 * 1024), (3, 224 * 1024), (8, 256 * 1024), (16, 320 * 1024), (32, 512 * 1024),
    (64, 640 * 1024), (float("inf"), 768 * 1024))


def _gib(n: float) -> str:
    return f"{n / GIB:.1f} GiB"


@dataclass(frozen=True)
class KvLayout:
    """What the KV cache costs per sequence: attention layers (elements per token), windows, recurrent state."""

    full: tuple[int, ...]  # per full-attention layer: cached elements per token
    swa: tuple[tuple[int, int], ...]  # per sliding-window layer: (elements per token, window)
    state_bytes: int  # per sequence, every recurrent layer together
    dtype_bytes: int
    block_size: int
    source: str
    estimated: bool
    from_size: bool = False  # per-token bytes from Lemonade's size table (the layout is unknown)

    def seq_bytes(self, tokens: int) -> int:
        """Bytes one sequence of `tokens` occupies (whole blocks)."""
        bs = self.block_size
        padded = -(-max(tokens, 1) // bs) * bs
        full = sum(self.full) * padded
        swa = sum(e * min(padded, -(-(w + bs) // bs) * bs) for e, w in self.swa)
        return (full + swa) * self.dtype_bytes + self.state_bytes

    def max_tokens(self, pool: int) -> int:
        """The longest single sequence `pool` bytes hold (0 when not even one block fits)."""
        if self.seq_bytes(1) > pool:
            return 0
        lo, hi = 1, 1 << 24
        if self.seq_bytes(hi) <= pool:
            return hi
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if self.seq_bytes(mid) <= pool else (lo, mid - 1)
        return lo

    @property
    def bytes_per_token(self) -> int:
        return (sum(self.full) + sum(e for e, _ in self.swa)) * self.dtype_bytes


@lru_cache(maxsize=512)
def _base_model_row(name: str) -> tuple[str, dict[str, Any]] | None:
    """The shipped GGUF facts of a llama.cpp registry build of the same base model as `name`, if any."""
    from facts._registry_gguf import registry_gguf_facts
    from facts.errors import ModelFactsError
    from facts.registry import load_registry, variants

    try:
        registry = load_registry()
        for other in variants(name):
            if registry[other].get("recipe") not in (None, "llamacpp"):
                continue
            row = registry_gguf_facts(other)
            if row and row.get("head_count_kv") and row.get("key_length"):
                return other, row
    except ModelFactsError:
        return None
    return None


def architecture(model: ModelFacts) -> tuple[ModelFacts, str | None]:
    """The model with its attention layout filled in, and where the layout came from (None: unknown).

    A registry vLLM model has no GGUF header; a llama.cpp build of the same base model does (shipped table)."""
    if model.head_count_kv and model.key_length:
        return model, f"model facts ({model.provenance.get('*', 'given')})"
    found = _base_model_row(model.name) if model.name else None
    if found is None:
        return model, None
    other, row = found
    keep = {k: v for k, v in row.items() if k != "provenance" and getattr(model, k, None) in (None, (), False)}
    return model.model_copy(update=keep), f"GGUF facts of {other} (same base model; {row['provenance']['*']})"


def kv_layout(model: ModelFacts, kv_dtype: str = "auto", *, extra_attention_layers: int = 0) -> KvLayout:
    """vLLM's KV layout for `model` (`extra_attention_layers`: e.g. an MTP draft layer with its own cache)."""
    dtype = KV_DTYPE_BYTES.get(kv_dtype, 2)
    arch, source = architecture(model)
    n = arch.block_count or 0
    heads = arch.head_count_kv * n if len(arch.head_count_kv) == 1 else arch.head_count_kv
    if source is None or not n or len(heads) != n or not arch.key_length:
        size_gb = (model.file_bytes or 0) / 1e9
        per_token = next(b for bound, b in _SIZE_TABLE if size_gb < bound)  # f16 bytes
        return KvLayout((per_token // 2,), (), 0, dtype, BLOCK_SIZE,
                        f"estimated from the model size ({size_gb:.1f} GB, Lemonade's table)", True, True)
    recurrent = arch.recurrent_layers if len(arch.recurrent_layers) == n else (False,) * n
    own = arch.kv_layers if len(arch.kv_layers) == n else tuple(not r for r in recurrent)
    swa_flags = arch.swa_layers if len(arch.swa_layers) == n else (False,) * n
    full: list[int] = []
    swa: list[tuple[int, int]] = []
    for i in range(n):
        if not own[i]:
            continue
        if arch.mla and arch.kv_lora_rank:
            elems = arch.kv_lora_rank + (arch.rope_dim or 0)
        else:
            k = arch.key_length_swa if swa_flags[i] and arch.key_length_swa else arch.key_length
            v = arch.value_length_swa if swa_flags[i] and arch.value_length_swa else (arch.value_length or k)
            elems = heads[i] * (k + v)
        if swa_flags[i] and arch.sliding_window:
            swa.append((elems, arch.sliding_window))
        else:
            full.append(elems)
    if full and extra_attention_layers:
        full.extend([max(full)] * extra_attention_layers)
    estimated = False
    state = 0
    n_rec = sum(recurrent)
    block = BLOCK_SIZE
    if n_rec:
        r, s = arch.recurrent_r_size, arch.recurrent_s_size
        if r is None or s is None:
            estimated = True
            width = arch.embedding_length or 4096
            r, s = width * 3, width * 256
        per_layer = r * 2 + s * 4  # conv state in the model dtype; temporal state taken as float32 [estimated]
        state = n_rec * per_layer
        page_per_token = max(full or [1]) * dtype
        block = max(BLOCK_SIZE, -(-per_layer // page_per_token // BLOCK_SIZE) * BLOCK_SIZE)
    return KvLayout(tuple(full), tuple(swa), state, dtype, block, source, estimated)


def device_bytes(hw: HardwareFacts) -> tuple[int, str, bool] | None:
    """(bytes vLLM sees on the primary GPU, how that was reached, unified) — None without a GPU."""
    from facts.memory import gpu_budget

    b = gpu_budget(hw, margin=0)
    if b is None or b.bytes <= 0:
        return None
    return b.bytes, b.explain.replace(" − margin 0.0 GiB", ""), b.device == "unified"


def batch_defaults(device: int) -> tuple[int, int]:
    """vLLM's (max_num_batched_tokens, max_num_seqs) defaults for the OpenAI server on this much memory."""
    return (8192, 1024) if device >= 70 * GIB else (2048, 256)


def overhead_bytes(model: ModelFacts, batched_tokens: int, seqs: int) -> int:
    """Runtime + profiling-run activations + sampler warm-up [estimated]."""
    arch, _ = architecture(model)
    hidden = arch.embedding_length or 4096
    ffn = max(arch.feed_forward_length or 0,
              (arch.expert_used_count or 0) * (arch.expert_feed_forward_length or 0)) or 4 * hidden
    vocab = arch.vocab_size or 152_064
    activations = batched_tokens * (hidden * 2 * 12 + ffn * 2 * 3)
    sampler = seqs * vocab * 4 * 2
    return RUNTIME_BYTES + activations + sampler


def trained_ctx(model: ModelFacts) -> int | None:
    arch, _ = architecture(model)
    return arch.trained_ctx


@dataclass(frozen=True)
class Plan:
    """vLLM's memory for one configuration and what the guard should set."""

    ctx: int | None  # --max-model-len (None: left as asked)
    kv_bytes: int | None  # --kv-cache-memory-bytes (None: not ours to set)
    weights: int
    overhead: int
    budget: int  # bytes vLLM may use on this device (its utilization share)
    fits: bool
    layout: KvLayout
    notes: tuple[str, ...] = field(default=())


def plan(hw: HardwareFacts, model: ModelFacts, *, ctx: int | None, kv: int | str | None,
         utilization: float | None = None, max_num_seqs: int | None = None,
         max_batched_tokens: int | None = None, kv_dtype: str = "auto", cpu_offload_gib: int = 0,
         extra_attention_layers: int = 0) -> Plan:
    """Size --max-model-len and the KV pool so weights + overhead + cache fit vLLM's share of device memory.

    `ctx`: wanted context (None = Lemonade's auto cap, 32768; never above the trained context). `kv`: "auto" (size it), bytes (fixed),
    or None (Lemonade's 4 GiB unless `utilization` is given: then vLLM's own rule sizes the pool).
    """
    layout = kv_layout(model, kv_dtype, extra_attention_layers=extra_attention_layers)
    dev = device_bytes(hw)
    weights = max(0, (model.file_bytes or 0) - cpu_offload_gib * GIB)
    trained = trained_ctx(model)
    cap = trained or MAX_MODEL_LEN
    target = min(ctx, cap) if ctx else min(UNKNOWN_MAX_CTX, cap)  # no wish: Lemonade's auto cap
    notes = [f"KV layout: {layout.source}; {layout.bytes_per_token // 1024} KiB per token"
             + (f", recurrent state {layout.state_bytes / MIB:.0f} MiB per sequence" if layout.state_bytes else "")
             + f", blocks of {layout.block_size} tokens"]
    if ctx and trained and ctx > trained:
        notes.append(f"{ctx} tokens exceed the model's trained context {trained}: vLLM refuses a longer "
                     "--max-model-len")
    if dev is None:
        return Plan(None, None, weights, 0, 0, False, layout, (*notes, "GPU memory unknown: nothing sized"))
    device, how, unified = dev
    budget = int(device * UTILIZATION)
    tokens, seqs = batch_defaults(device)
    overhead = overhead_bytes(model, max_batched_tokens or tokens, max_num_seqs or seqs)
    free = budget - weights - overhead
    head = (f"weights {_gib(weights)} + overhead {_gib(overhead)} (estimated) of vLLM's "
            f"{UTILIZATION:.0%} of {how} = {_gib(budget)}")
    if isinstance(kv, str):  # "auto": size the pool
        floor = min(FLOOR_CTX, target)
        if free < layout.seq_bytes(floor):
            return Plan(None, None, weights, overhead, budget, False, layout,
                        (*notes, f"does not fit: {head} leaves {_gib(max(free, 0))} for KV, less than "
                                 f"{floor} tokens need ({_gib(layout.seq_bytes(floor))})"))
        fit = layout.max_tokens(free)
        chosen = min(target, fit // 256 * 256 if fit >= 256 else fit)
        need = layout.seq_bytes(chosen)
        # a size-table layout over-states the cache several times: one sequence is plenty of headroom then
        want = need if layout.from_size else max(LEMONADE_KV_BYTES, need * KV_SEQUENCES)
        up = lambda n: -(-n // MIB) * MIB  # noqa: E731  (whole MiB, never below what is needed)
        pool = max(up(need), min(up(want), free // MIB * MIB))
        notes.append(f"{head}; KV pool {_gib(pool)} holds {layout.max_tokens(pool)} tokens "
                     f"(max-model-len {chosen}, {pool // max(need, 1)} such sequence(s))")
        return Plan(chosen, pool, weights, overhead, budget, True, layout, tuple(notes))
    if kv is None and utilization is not None:
        pool = int(device * utilization) - weights - overhead
        rule = f"--gpu-memory-utilization {utilization}: pool {_gib(max(pool, 0))}"
    else:
        pool = LEMONADE_KV_BYTES if kv is None else int(kv)
        rule = f"KV pool {_gib(pool)}" + (" (Lemonade's default)" if kv is None else "")
    fit = layout.max_tokens(max(pool, 0))
    chosen = min(target, fit // 256 * 256 if fit >= 256 else fit)
    total = weights + overhead + max(pool, 0)
    fits = fit >= min(FLOOR_CTX, target) and total <= max(budget, int(device * (utilization or 0)))
    notes.append(f"{head}; {rule} holds {fit} tokens" + ("" if fits else " — does not fit"))
    return Plan(chosen, pool, weights, overhead, budget, fits, layout, tuple(notes))


def fit_context(hw: HardwareFacts, model: ModelFacts) -> dict[str, int | float | bool]:
    """Fit facts for the rule context: gpu_budget_gib, fit_full_offload, fit_max_ctx (the longest single sequence
    the free memory holds, capped at the trained context)."""
    p = plan(hw, model, ctx=trained_ctx(model) or UNKNOWN_MAX_CTX, kv="auto")
    if p.budget <= 0:
        return {}
    out: dict[str, int | float | bool] = {"gpu_budget_gib": round(p.budget / GIB, 2), "fit_full_offload": p.fits}
    if p.fits and p.ctx:
        out["fit_max_ctx"] = p.ctx
    return out
