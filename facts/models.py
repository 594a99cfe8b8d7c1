"""Typed, frozen fact models: what the machine and the model *are* (no rules, no engine)."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Vendor = Literal["amd", "nvidia", "apple", "intel", "qualcomm", "unknown"]
OSName = Literal["linux", "windows", "macos", "unknown"]
MemClass = Literal["discrete", "unified"]
Confidence = Literal["high", "medium", "low"]

GIB = 1 << 30  # bytes per GiB: the one definition for every facts module


class Fact(BaseModel):
    """Base for every fact model: frozen, no unknown keys, no NaN/inf."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, defer_build=True)


class Absent(Fact):
    """A fact that could not be established, and why (a probe's missing tool, permission, timeout)."""

    fact: str  # dotted path, e.g. "gpus[0].bandwidth_gbs" or "memory.available_bytes"
    reason: str


class CPU(Fact):
    name: str | None = None
    arch: Literal["x86_64", "arm64", "unknown"] = "unknown"
    physical_cores: int | None = Field(default=None, ge=1)
    threads: int | None = Field(default=None, ge=1)
    performance_cores: int | None = Field(default=None, ge=0)
    efficiency_cores: int | None = Field(default=None, ge=0)
    isa: tuple[str, ...] = ()  # sorted subset of {"avx", "avx2", "avx512", "avx512_bf16", "avx_vnni", "f16c", "fma", "neon", "sve", "dotprod"}
    provenance: dict[str, str] = Field(default_factory=dict)  # field name -> source


class Memory(Fact):
    total_bytes: int | None = Field(default=None, gt=0)  # usable RAM (cgroup limit applied when lower)
    available_bytes: int | None = Field(default=None, ge=0)  # live; never part of an archetype id
    nominal_gb: int | None = Field(default=None, gt=0)  # printed-on-the-box RAM size (unified archetypes)
    provenance: dict[str, str] = Field(default_factory=dict)


class GPU(Fact):
    vendor: Vendor
    name: str  # as reported by the source (may be a KFD number on Linux AMD via Lemonade)
    marketing_name: str | None = None  # gpus.csv row key when matched
    arch: str | None = None  # gfx1151 / sm_89 / apple-m3-max-40c / intel-bmg-g21 / adreno-x1-85
    family: str | None = None  # rdna3.5 / ada / apple-m3 / xe2 ...
    device_class: str | None = None  # gpus.csv device_class (discrete, apu-igpu, display-igpu, ...)
    dedicated_bytes: int | None = Field(default=None, ge=0)  # VRAM, or the APU BIOS carve-out
    shared_bytes: int | None = Field(default=None, ge=0)  # GPU-visible system memory: GTT, Apple working set
    free_bytes: int | None = Field(default=None, ge=0)  # live; never part of an archetype id
    bandwidth_gbs: float | None = Field(default=None, gt=0)  # vendor spec peak, GB/s
    unified: bool | None = None
    integrated: bool | None = None
    compute_units: int | None = Field(default=None, ge=1)
    pci_id: str | None = None  # "1002:1586" lower-case hex
    uuid: str | None = None
    index: int | None = Field(default=None, ge=0)
    llama_devices: tuple[str, ...] = ()  # llama.cpp device names seen, e.g. ("Vulkan0", "ROCm0")
    provenance: dict[str, str] = Field(default_factory=dict)

    @field_validator("pci_id")
    @classmethod
    def _pci(cls, v: str | None) -> str | None:
        return v.lower() if v else v


class NPU(Fact):
    name: str | None = None
    family: str | None = None  # XDNA2
    available: bool = False
    provenance: dict[str, str] = Field(default_factory=dict)


class OSInfo(Fact):
    name: OSName = "unknown"
    version: str | None = None
    provenance: dict[str, str] = Field(default_factory=dict)


class HardwareFacts(Fact):
    """Everything known about one machine. Unknown is None (never 0); `absent` says why."""

    os: OSInfo = OSInfo()
    cpu: CPU = CPU()
    memory: Memory = Memory()
    gpus: tuple[GPU, ...] = ()
    npu: NPU | None = None
    # installed/usable backends as "recipe:backend" (e.g. "llamacpp:vulkan"), from Lemonade's recipes
    # section or detection; empty = unknown (the engine then assumes the recipe's platform defaults)
    backends: tuple[str, ...] = ()
    installed_backends: tuple[str, ...] = ()  # subset of `backends` already installed ("llamacpp:rocm")
    default_backends: dict[str, str] = Field(default_factory=dict)  # recipe -> Lemonade's default_backend
    source: str = "detect"  # "detect" | "system-info:<file>" | "llama-devices:<file>" | ...
    absent: tuple[Absent, ...] = ()
    warnings: tuple[str, ...] = ()


class Archetype(Fact):
    """A bounded, stable hardware class. Same archetype => same recommendations."""

    id: str  # e.g. amd-rdna3.5-gfx1151-unified-128gb-bw2
    vendor: str  # amd / nvidia / apple / intel / qualcomm / cpu
    family: str | None = None
    arch: str | None = None
    memclass: MemClass | Literal["cpu"]
    bucket_gb: int  # memory bucket (per device for discrete; nominal RAM for unified/cpu)
    bw_tier: int = Field(ge=0, le=6)
    count: int = Field(default=1, ge=1)  # identical inference devices
    isa: str | None = None  # CPU-only archetypes: "x86_64-avx512", "arm64-neon", ...
    backoff: tuple[str, ...]  # exact id first, then less specific ids, last = memclass only
    confidence: Confidence = "high"
    reasons: tuple[str, ...] = ()
    primary_gpus: tuple[int, ...] = ()  # indices into HardwareFacts.gpus that the id describes


# Bounds to physical sense: far above any real model, low enough that sizing arithmetic stays small and exact.
MAX_LAYERS = 4096
MAX_WIDTH = 1 << 20  # embedding / head / FFN widths, expert counts
MAX_TOKENS = 1 << 27  # context lengths, vocabulary sizes
MAX_BYTES = 1 << 50  # 1 PiB


class ModelFacts(Fact):
    """What a model is. GGUF header > registry > name; `estimated` lists fields guessed from size/name."""

    name: str | None = None  # Lemonade registry name, or file stem
    checkpoint: str | None = None
    recipe: str = "llamacpp"
    labels: tuple[str, ...] = ()
    architecture: str | None = None  # GGUF general.architecture (llama, qwen3, qwen3moe, gemma3, ...)
    params_b: float | None = Field(default=None, gt=0, le=1e5)  # total parameters, billions
    active_params_b: float | None = Field(default=None, gt=0, le=1e5)  # MoE: active per token
    is_moe: bool = False
    quant: str | None = None  # Q4_K_M, Q8_0, BF16, MXFP4, UD-Q4_K_XL ...
    file_bytes: int | None = Field(default=None, gt=0, le=MAX_BYTES)  # main weights file(s)
    mmproj_bytes: int | None = Field(default=None, ge=0, le=MAX_BYTES)
    draft_bytes: int | None = Field(default=None, ge=0, le=MAX_BYTES)
    trained_ctx: int | None = Field(default=None, gt=0, le=MAX_TOKENS)
    embedding: bool = False
    reranker: bool = False
    # GGUF architecture details (None when unknown)
    block_count: int | None = Field(default=None, gt=0, le=MAX_LAYERS)
    embedding_length: int | None = Field(default=None, gt=0, le=MAX_WIDTH)
    head_count: int | None = Field(default=None, ge=0, le=MAX_WIDTH)
    head_count_kv: tuple[int, ...] = ()  # per layer (expanded from a scalar)
    key_length: int | None = Field(default=None, gt=0, le=MAX_WIDTH)
    value_length: int | None = Field(default=None, gt=0, le=MAX_WIDTH)
    key_length_swa: int | None = Field(default=None, gt=0, le=MAX_WIDTH)
    value_length_swa: int | None = Field(default=None, gt=0, le=MAX_WIDTH)
    kv_lora_rank: int | None = Field(default=None, gt=0, le=MAX_WIDTH)  # MLA
    rope_dim: int | None = Field(default=None, gt=0, le=MAX_WIDTH)  # MLA: qk_rope_head_dim
    sliding_window: int | None = Field(default=None, gt=0, le=MAX_TOKENS)
    swa_layers: tuple[bool, ...] = ()  # per layer: True = sliding-window attention
    recurrent_layers: tuple[bool, ...] = ()  # per layer: True = recurrent/SSM (no KV)
    ssm_conv_kernel: int | None = Field(default=None, gt=0, le=MAX_WIDTH)
    ssm_inner_size: int | None = Field(default=None, gt=0, le=MAX_WIDTH)
    ssm_state_size: int | None = Field(default=None, gt=0, le=MAX_WIDTH)
    ssm_group_count: int | None = Field(default=None, ge=0, le=MAX_WIDTH)
    ssm_time_step_rank: int | None = Field(default=None, ge=0, le=MAX_WIDTH)
    expert_count: int | None = Field(default=None, ge=0, le=MAX_WIDTH)
    expert_used_count: int | None = Field(default=None, ge=0, le=MAX_WIDTH)
    expert_shared_count: int | None = Field(default=None, ge=0, le=MAX_WIDTH)
    vocab_size: int | None = Field(default=None, gt=0, le=MAX_TOKENS)
    # llama.cpp memory layout (facts.gguf fills these with llama.cpp's per-architecture semantics)
    mla: bool = False  # multi-head latent attention (deepseek2 with key_length_mla): K only, no V
    kv_layers: tuple[bool, ...] = ()  # per layer: owns KV cells (empty = every non-recurrent layer)
    recurrent_r_size: int | None = Field(default=None, ge=0, le=MAX_BYTES)  # f32 elements per sequence per recurrent layer (conv)
    recurrent_s_size: int | None = Field(default=None, ge=0, le=MAX_BYTES)  # f32 elements per sequence per recurrent layer (state)
    feed_forward_length: int | None = Field(default=None, ge=0, le=MAX_WIDTH)  # largest dense FFN width over layers
    expert_feed_forward_length: int | None = Field(default=None, ge=0, le=MAX_WIDTH)  # MoE: per-expert FFN width
    layer_bytes: tuple[int, ...] = ()  # weight bytes per block (GGUF tensor infos), when known
    expert_bytes: tuple[int, ...] = ()  # per block: bytes of the *_exps tensors (MoE)
    output_bytes: int | None = Field(default=None, ge=0, le=MAX_BYTES)  # token embedding + output head + norms
    estimated: tuple[str, ...] = ()  # field names that were estimated, not read
    provenance: dict[str, str] = Field(default_factory=dict)

    @field_validator("head_count_kv", "swa_layers", "recurrent_layers", "kv_layers", "layer_bytes", "expert_bytes")
    @classmethod
    def _per_layer(cls, v: tuple[Any, ...]) -> tuple[Any, ...]:
        if len(v) > MAX_LAYERS:
            raise ValueError(f"{len(v):,} layers; no model has more than {MAX_LAYERS:,}")
        if any(not isinstance(x, bool) and not 0 <= x <= MAX_BYTES for x in v):
            raise ValueError("a per-layer value out of range")
        return v

    @field_validator("params_b", "active_params_b")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("must be finite")
        return v
