"""llama-server's vocabulary: the parameters, their flags, the extra-argument allowlist, reserved flags."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from engine.errors import ParamError
from engine.recipes._spec import ParamSpec
from facts.backends import backends_of
from facts.memory import CACHE_TYPES as _CACHE_LAYOUT

BACKENDS: tuple[str, ...] = backends_of("llamacpp")
CACHE_TYPES: tuple[str, ...] = tuple(_CACHE_LAYOUT)
GPU_BACKENDS: frozenset[str] = frozenset({"vulkan", "rocm", "cuda", "metal"})

# Flags Lemonade sets itself or rejects in custom args (research/lemonade.md §2.5): never emitted, never
# allowlisted.
RESERVED_FLAGS: frozenset[str] = frozenset({
    "-m", "--model", "-hf", "--hf-repo", "-mr", "--hf-file", "-mf", "--ctx-size", "-c", "--device", "-dev",
    "--port", "--jinja", "--no-jinja", "--metrics", "--mmproj", "-mm", "-mmu", "--mmproj-url", "--no-mmproj",
    "--mmproj-auto", "--no-mmproj-auto", "--model-draft", "-md", "--spec-draft-model", "--embeddings",
    "--embedding", "--reranking", "--rerank",
})

# extra_args allowlist: flag -> accepted value (None = takes no value; a tuple = one of these words;
# "int" = a non-negative integer; "csv" = comma-separated non-negative numbers), and the llamacpp
# backends the flag is meaningful for ("all" includes cpu and system). The flags the llama.cpp builds
# Lemonade pins (b10375 and later) accept: --mmap/--no-mmap, --mlock and --direct-io were folded into
# --load-mode (llama.cpp PR #20834) and are refused now, so the `mmap` parameter renders --load-mode.
_ALL, _GPU = frozenset(BACKENDS), GPU_BACKENDS | {"system"}
_LONG_ARGS: dict[str, tuple[Any, frozenset[str]]] = {
    "--no-op-offload": (None, _GPU),
    "--swa-full": (None, _ALL),
    "--cont-batching": (None, _ALL),
    "--no-cont-batching": (None, _ALL),
    "--fit": (("on", "off"), _ALL),
    "--no-warmup": (None, _ALL),
    "--no-kv-offload": (None, _GPU),
    "--cpu-moe": (None, _GPU),
    "--split-mode": (("none", "layer", "row"), _GPU),
    "--main-gpu": ("int", _GPU),
    "--tensor-split": ("csv", _GPU),
    "--numa": (("distribute", "isolate", "numactl"), _ALL),
    "--poll": ("int", _ALL),
    "--prio": (("0", "1", "2", "3"), _ALL),
    "--cache-reuse": ("int", _ALL),
    "--no-context-shift": (None, _ALL),
    "--context-shift": (None, _ALL),
}
# short spellings: the same value and backends as their long flag
_SHORT_ARGS = {"-nkvo": "--no-kv-offload", "-cmoe": "--cpu-moe", "-sm": "--split-mode",
               "-mg": "--main-gpu", "-ts": "--tensor-split"}
EXTRA_ARGS: Mapping[str, tuple[Any, frozenset[str]]] = MappingProxyType(
    {**_LONG_ARGS, **{short: _LONG_ARGS[long] for short, long in _SHORT_ARGS.items()}})
assert not (set(EXTRA_ARGS) & RESERVED_FLAGS)

_UINT = re.compile(r"[0-9]+")  # ASCII digits only: llama-server parses nothing else
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def extra_args_problems(args: Sequence[str], backend: str | None) -> list[str]:
    """Why `args` is not allowed (empty when fine). `backend=None` accepts a flag any backend allows."""
    problems: list[str] = []
    i = 0
    while i < len(args):
        flag = args[i]
        if flag in RESERVED_FLAGS or flag.split("=", 1)[0] in RESERVED_FLAGS:
            problems.append(f"{flag!r} is reserved by Lemonade")
            i += 1
            continue
        if flag not in EXTRA_ARGS:
            problems.append(f"{flag!r} is not an allowlisted llama-server argument "
                            "(engine.recipes.llamacpp.flags.EXTRA_ARGS)")
            i += 1
            continue
        kind, backends = EXTRA_ARGS[flag]
        if backend is not None and backend not in backends:
            problems.append(f"{flag!r} is not allowed with backend {backend!r}")
        i += 1
        if kind is None:
            continue
        if i >= len(args):
            problems.append(f"{flag!r} needs a value")
            break
        arg = args[i]
        i += 1
        if isinstance(kind, tuple) and arg not in kind:
            problems.append(f"{flag!r} takes one of {', '.join(kind)}, got {arg!r}")
        elif kind == "int" and not _UINT.fullmatch(arg):
            problems.append(f"{flag!r} takes a non-negative integer (ASCII digits), got {arg!r}")
        elif kind == "csv" and not all(_NUMBER.fullmatch(p) for p in arg.split(",")):
            problems.append(f"{flag!r} takes comma-separated numbers (ASCII digits), got {arg!r}")
    return problems


_DEVICE = re.compile(r"(?:Vulkan|ROCm|CUDA|MTL|SYCL)[0-9]+")


def device_problems(names: Sequence[str], backend: str | None) -> list[str]:
    """Why `names` is not a llamacpp_device list (empty when fine): llama.cpp device names such as Vulkan0."""
    problems = [f"{n!r} is not a llama.cpp device name (Vulkan0, ROCm1, CUDA0, MTL0, ...)" for n in names
                if not _DEVICE.fullmatch(n)]
    if len(set(names)) != len(names):
        problems.append("a device is named twice")
    prefix = {"vulkan": "Vulkan", "rocm": "ROCm", "cuda": "CUDA", "metal": "MTL"}.get(backend or "")
    if prefix and not problems:
        problems += [f"{n!r} is not a {backend} device" for n in names if not n.startswith(prefix)]
    return problems


def tensor_split_problems(values: Sequence[str], backend: str | None) -> list[str]:
    """Why `values` is not a --tensor-split (empty when fine): non-negative numbers, not all zero."""
    bad = [v for v in values if not _NUMBER.fullmatch(v)]
    if bad:
        return [f"--tensor-split takes non-negative numbers (ASCII digits), got {bad[0]!r}"]
    if values and not any(float(v) > 0 for v in values):
        return ["--tensor-split needs at least one share above 0"]
    return []


_D = ("default",)
SPECS: tuple[ParamSpec, ...] = (
    ParamSpec("n_gpu_layers", "layers offloaded to the GPU; 'all' = every layer, 'auto' = memory fit",
              0, 999, ("all", "auto", "default"), "-ngl"),
    ParamSpec("batch", "logical batch size", 32, 65536, _D, "-b"),
    ParamSpec("ubatch", "physical batch size", 16, 65536, _D, "-ub"),
    ParamSpec("threads", "CPU threads for generation", 1, 1024,
              ("default", "physical-cores", "performance-cores"), "-t"),
    ParamSpec("flash_attn", "flash attention", words=("on", "off", "auto", "default"), flag="-fa"),
    ParamSpec("cache_type_k", "KV cache type for K", words=(*CACHE_TYPES, "default"), flag="-ctk"),
    ParamSpec("cache_type_v", "KV cache type for V", words=(*CACHE_TYPES, "default"), flag="-ctv"),
    ParamSpec("mmap", "memory-map the model file (llama.cpp --load-mode mmap / none)", words=("on", "off", "default"),
              flag="--load-mode"),
    ParamSpec("n_cpu_moe", "MoE expert layers kept on the CPU; 'auto' = memory fit", 0, 999,
              ("auto", "default"), "--n-cpu-moe"),
    ParamSpec("parallel", "server slots", 1, 64, _D, "-np"),
    ParamSpec("kv_unified", "one KV buffer shared by all slots", words=("on", "off", "default"), flag="-kvu"),
    ParamSpec("extra_args", "allowlisted llama-server arguments appended verbatim",
              list_check=extra_args_problems),
    ParamSpec("device", "GPUs to use (Lemonade's llamacpp_device option, e.g. Vulkan1 or ROCm0,ROCm1); "
              "empty = llama.cpp's default devices", list_check=device_problems),
    ParamSpec("split_mode", "how a model is split over several GPUs", words=("none", "layer", "row", "default"),
              flag="--split-mode"),
    ParamSpec("tensor_split", "each GPU's share of the layers, in device order (--tensor-split); empty = by free "
              "memory", list_check=tensor_split_problems, flag="--tensor-split"),
)
_BY_NAME = {s.name: s for s in SPECS}


def flags(values: Mapping[str, Any]) -> list[str]:
    """llama-server arguments for resolved parameter values (`default` and `auto` emit nothing).

    `backend` and `ctx_size` are Lemonade options, not flags. Symbolic thread counts must be resolved
    to integers first. Never emits a reserved flag; raises ParamError on any invalid value.
    """
    from pydantic_core import PydanticCustomError

    out: list[str] = []
    for spec in SPECS:
        name = spec.name
        if name not in values:
            continue
        try:
            value = spec.validate(values[name])
        except PydanticCustomError as err:
            raise ParamError(f"{name}: {err.message()}") from None
        if name == "device":  # Lemonade's llamacpp_device option, not an argument (--device is reserved)
            continue
        if name == "tensor_split":
            if value:
                out.extend([spec.flag, ",".join(value)])  # type: ignore[list-item]
            continue
        if name == "extra_args":  # allowlisted and never reserved (which backend a flag suits is a guard's job)
            problems = extra_args_problems(value, None)
            if problems:
                raise ParamError("extra_args: " + "; ".join(problems))
            out.extend(value)
            continue
        if value in ("default", "auto"):
            continue
        if value in ("physical-cores", "performance-cores"):
            raise ParamError(f"{name}: {value!r} must be resolved to a number before rendering")
        if name == "n_gpu_layers" and value == "all":
            value = 999
        if name == "mmap":
            out.extend(["--load-mode", "mmap" if value == "on" else "none"])
        elif name == "kv_unified":
            out.append("-kvu" if value == "on" else "--no-kv-unified")
        else:
            out.extend([spec.flag, str(value)])  # type: ignore[list-item]
    bad = [a for a in out if a.split("=", 1)[0] in RESERVED_FLAGS]
    if bad:  # the vocabulary above never renders one; this is the last line of defence
        raise ParamError(f"reserved flag(s) rendered: {bad}")
    return out
