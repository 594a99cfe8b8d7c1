"""The typed parameter vocabulary: what rules may set, allowed values, and llama.cpp flags."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, PlainValidator, WithJsonSchema, create_model
from pydantic_core import PydanticCustomError

from engine.errors import EngineError

# Backends per Lemonade recipe (the `backend` parameter and the `backends` context attribute).
RECIPE_BACKENDS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "llamacpp": ("system", "metal", "cuda", "vulkan", "rocm", "cpu"),
    "vllm": ("rocm",),
    "flm": ("npu",),
    "ryzenai-llm": ("npu",),
    "whispercpp": ("npu", "metal", "vulkan", "rocm", "cpu"),
    "sd-cpp": ("metal", "cuda", "vulkan", "rocm", "cpu"),
})
RECIPES: tuple[str, ...] = tuple(RECIPE_BACKENDS)
BACKENDS: tuple[str, ...] = tuple(dict.fromkeys(b for bs in RECIPE_BACKENDS.values() for b in bs))
CACHE_TYPES: tuple[str, ...] = ("f32", "f16", "bf16", "q8_0", "q5_1", "q5_0", "q4_1", "q4_0", "iq4_nl")

# Flags Lemonade sets itself or rejects in custom args: never emitted, never allowlisted.
RESERVED_FLAGS: frozenset[str] = frozenset({
    "-m", "--model", "-hf", "--hf-repo", "-mr", "--hf-file", "-mf", "--ctx-size", "-c", "--device", "-dev",
    "--port", "--jinja", "--no-jinja", "--metrics", "--mmproj", "-mm", "-mmu", "--mmproj-url", "--no-mmproj",
    "--mmproj-auto", "--no-mmproj-auto", "--model-draft", "-md", "--spec-draft-model", "--embeddings",
    "--embedding", "--reranking", "--rerank",
})

GPU_BACKENDS: frozenset[str] = frozenset({"vulkan", "rocm", "cuda", "metal"})

# extra_args allowlist: flag -> accepted value (None = takes no value; a tuple = one of these words;
# "int" = a non-negative integer; "csv" = comma-separated non-negative numbers), and the llamacpp
# backends the flag is meaningful for ("all" includes cpu and system).
_ALL, _GPU = frozenset(RECIPE_BACKENDS["llamacpp"]), GPU_BACKENDS | {"system"}
_LONG_ARGS: dict[str, tuple[Any, frozenset[str]]] = {
    "--no-op-offload": (None, _GPU),
    "--swa-full": (None, _ALL),
    "--cont-batching": (None, _ALL),
    "--no-cont-batching": (None, _ALL),
    "--direct-io": (None, _ALL),
    "--fit": (("on", "off"), _ALL),
    "--no-warmup": (None, _ALL),
    "--mlock": (None, _ALL),
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
_SHORT_ARGS = {"-dio": "--direct-io", "-nkvo": "--no-kv-offload", "-cmoe": "--cpu-moe", "-sm": "--split-mode",
               "-mg": "--main-gpu", "-ts": "--tensor-split"}
EXTRA_ARGS: Mapping[str, tuple[Any, frozenset[str]]] = MappingProxyType(
    {**_LONG_ARGS, **{short: _LONG_ARGS[long] for short, long in _SHORT_ARGS.items()}})
assert not (set(EXTRA_ARGS) & RESERVED_FLAGS)


class ParamError(EngineError, ValueError):
    """A parameter value outside the vocabulary (at render time)."""


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: integer range and/or allowed words, its llama.cpp flag, and what it means."""

    name: str
    description: str
    minimum: int | None = None  # integer parameters: inclusive range
    maximum: int | None = None
    words: tuple[str, ...] = ()  # allowed string values (for `backend`: every backend of every recipe)
    flag: str | None = None  # llama.cpp flag for `llamacpp_args`; None = not a llama-server flag
    is_list: bool = False  # extra_args

    @property
    def is_int(self) -> bool:
        return self.minimum is not None

    def allowed(self) -> str:
        """Human summary of the allowed values, e.g. "an integer 16..65536 or 'default'"."""
        if self.is_list:
            return "a list of allowlisted llama-server arguments"
        parts = []
        if self.is_int:
            parts.append(f"an integer {self.minimum}..{self.maximum}")
        if self.words:
            parts.append("one of " + ", ".join(repr(w) for w in self.words))
        return " or ".join(parts)

    def validate(self, value: Any) -> Any:
        """Return the value if allowed; raise PydanticCustomError (pydantic-style code) otherwise."""
        if self.is_list:
            return _validate_extra_args(value)
        if isinstance(value, bool):
            raise PydanticCustomError("param_type", "Input should be {allowed}, not a boolean",
                                      {"allowed": self.allowed()})
        if isinstance(value, int) and self.is_int:
            if value < self.minimum:
                raise PydanticCustomError("greater_than_equal", "Input should be >= {ge} ({allowed})",
                                          {"ge": self.minimum, "allowed": self.allowed()})
            if value > self.maximum:
                raise PydanticCustomError("less_than_equal", "Input should be <= {le} ({allowed})",
                                          {"le": self.maximum, "allowed": self.allowed()})
            return value
        if isinstance(value, str) and value in self.words:
            return value
        if self.is_int and isinstance(value, float):
            code = "int_from_float"
        elif self.is_int and isinstance(value, str) and value.strip().lstrip("-").isdigit():
            code = "int_type"  # a quoted number: YAML gives a string
        elif self.is_int and not isinstance(value, str):
            code = "int_type"
        else:
            code = "literal_error"
        raise PydanticCustomError(code, "Input should be {allowed}, got {got}",
                                  {"allowed": self.allowed(), "got": repr(value)})


def _validate_extra_args(value: Any) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise PydanticCustomError("list_type", "Input should be a list of strings (llama-server arguments)")
    problems = extra_args_problems(value, None)
    if problems:
        raise PydanticCustomError("extra_args", "{problems}", {"problems": "; ".join(problems)})
    return tuple(value)


_D = ("default",)
_SPECS: tuple[ParamSpec, ...] = (
    ParamSpec("backend", "inference backend of the recipe (Lemonade's <recipe>_backend option)",
              words=BACKENDS),
    ParamSpec("ctx_size", "context size; 'auto' = the memory fit decides (Lemonade's ctx_size option)",
              512, 1048576, ("auto",)),
    ParamSpec("n_gpu_layers", "layers offloaded to the GPU; 'all' = every layer, 'auto' = memory fit",
              0, 999, ("all", "auto", "default"), "-ngl"),
    ParamSpec("batch", "logical batch size", 32, 65536, _D, "-b"),
    ParamSpec("ubatch", "physical batch size", 16, 65536, _D, "-ub"),
    ParamSpec("threads", "CPU threads for generation", 1, 1024,
              ("default", "physical-cores", "performance-cores"), "-t"),
    ParamSpec("flash_attn", "flash attention", words=("on", "off", "auto", "default"), flag="-fa"),
    ParamSpec("cache_type_k", "KV cache type for K", words=(*CACHE_TYPES, "default"), flag="-ctk"),
    ParamSpec("cache_type_v", "KV cache type for V", words=(*CACHE_TYPES, "default"), flag="-ctv"),
    ParamSpec("mmap", "memory-map the model file", words=("on", "off", "default"), flag="--mmap"),
    ParamSpec("n_cpu_moe", "MoE expert layers kept on the CPU; 'auto' = memory fit", 0, 999,
              ("auto", "default"), "--n-cpu-moe"),
    ParamSpec("parallel", "server slots", 1, 64, _D, "-np"),
    ParamSpec("kv_unified", "one KV buffer shared by all slots", words=("on", "off", "default"), flag="-kvu"),
    ParamSpec("extra_args", "allowlisted llama-server arguments appended verbatim", is_list=True),
)
PARAMS: Mapping[str, ParamSpec] = MappingProxyType({s.name: s for s in _SPECS})
PARAMETERS: tuple[str, ...] = tuple(PARAMS)


def _field(spec: ParamSpec) -> Any:
    schema: dict[str, Any]
    if spec.is_list:
        schema = {"type": "array", "items": {"type": "string", "enum": sorted(EXTRA_ARGS)}}
    else:
        alts: list[dict[str, Any]] = []
        if spec.is_int:
            alts.append({"type": "integer", "minimum": spec.minimum, "maximum": spec.maximum})
        if spec.words:
            alts.append({"enum": list(spec.words)})
        schema = alts[0] if len(alts) == 1 else {"anyOf": alts}
    schema["description"] = spec.description
    return (Annotated[Any, PlainValidator(spec.validate), WithJsonSchema(schema)], None)


ParamValues: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "ParamValues",
    __config__=ConfigDict(extra="forbid", frozen=True),
    __doc__="Parameter values a rule sets (every field optional; unknown names are errors).",
    **{s.name: _field(s) for s in _SPECS},
)


def validate_params(values: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a {parameter: value} mapping; raise pydantic.ValidationError on any bad entry."""
    model = ParamValues.model_validate(dict(values))
    return {k: getattr(model, k) for k in values}


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
            problems.append(f"{flag!r} is not an allowlisted llama-server argument (engine.params.EXTRA_ARGS)")
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
        elif kind == "int" and not arg.isdigit():
            problems.append(f"{flag!r} takes a non-negative integer, got {arg!r}")
        elif kind == "csv" and not all(p.replace(".", "", 1).isdigit() for p in arg.split(",")):
            problems.append(f"{flag!r} takes comma-separated numbers, got {arg!r}")
    return problems


def backend_allowed(recipe: str, backend: str) -> bool:
    return backend in RECIPE_BACKENDS.get(recipe, ())


def llamacpp_flags(values: Mapping[str, Any]) -> list[str]:
    """llama-server arguments for resolved parameter values (`default` and `auto` emit nothing).

    `backend` and `ctx_size` are Lemonade options, not flags. Symbolic thread counts must be resolved
    to integers first. Never emits a reserved flag; raises ParamError on any invalid value.
    """
    out: list[str] = []
    for name in PARAMETERS:
        if name not in values or name in ("backend", "ctx_size"):
            continue
        spec, value = PARAMS[name], values[name]
        try:
            value = spec.validate(value)
        except PydanticCustomError as err:
            raise ParamError(f"{name}: {err.message()}") from None
        if name == "extra_args":
            problems = extra_args_problems(value, values.get("backend"))
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
            out.append("--mmap" if value == "on" else "--no-mmap")
        elif name == "kv_unified":
            out.append("-kvu" if value == "on" else "--no-kv-unified")
        else:
            out.extend([spec.flag, str(value)])  # type: ignore[list-item]
    assert not any(a in RESERVED_FLAGS for a in out)
    return out
