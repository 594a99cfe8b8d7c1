"""The vllm recipe (ROCm, Linux): `--max-model-len` is Lemonade's ctx_size; `vllm_args` carries the KV budget
(`--kv-cache-memory-bytes` or `--gpu-memory-utilization`), batch limits and dtypes. The KV budget and the
context are sized together by facts.vllm_memory so both fit the GPU (research/lemonade.md §2.6).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from engine.errors import ParamError, UsageError
from engine.recipes._guard import change, is_user, note, refuse_unless_forced, value
from engine.recipes._spec import ParamSpec
from engine.recipes.base import Guarded, Recipe
from engine.verdict import MemoryVerdict

if TYPE_CHECKING:
    from engine.resolve import Decision
    from engine.trace import TraceRecorder
    from facts.models import HardwareFacts, ModelFacts

MIB = 1 << 20
GIB = 1 << 30
_SELF = "engine/recipes/vllm.py"
# Flags Lemonade sets itself and refuses in vllm_args (vllm_arg_resolver.cpp protected_flags)
PROTECTED_FLAGS: frozenset[str] = frozenset({
    "--enable-prefix-caching", "--host", "--max-model-len", "--model", "--port", "--served-model-name"})
# Flags Lemonade manages from its own detection (vllm_server.cpp): never ours to emit
MANAGED_FLAGS: frozenset[str] = frozenset({"--enforce-eager", "--speculative-config", "--quantization"})
# vllm_extra_args allowlist: flag -> value kind (None: no value; "uint": a non-negative integer)
EXTRA_ARGS: Mapping[str, str | None] = {
    "--enable-chunked-prefill": None,
    "--no-enable-chunked-prefill": None,
    "--cpu-offload-gb": "uint",  # GiB of weights kept in host memory (a memory knob; slow over PCIe)
}
# flags with a typed parameter of their own: refused in vllm_extra_args, pointing at the parameter
TYPED_FLAGS: Mapping[str, str] = {
    "--kv-cache-memory-bytes": "vllm_kv_cache_mib", "--gpu-memory-utilization": "vllm_gpu_memory_utilization",
    "--max-num-seqs": "vllm_max_num_seqs", "--max-num-batched-tokens": "vllm_max_num_batched_tokens",
    "--dtype": "vllm_dtype", "--kv-cache-dtype": "vllm_kv_cache_dtype"}
# Lemonade's vllm_model_config.json (lemonade-sdk/lemonade@e385039, src/cpp/resources/): per-model args it adds
# and the models it serves with an MTP draft (speculative_config method mtp, 1 token). A --max-num-seqs of ours
# would replace the model's (same flag, user layer wins), so it is left to Lemonade for these.
LEMONADE_MODEL_ARGS: Mapping[str, tuple[str, str]] = {
    "Qwen3.6-27B-FP8-vLLM-lowconc": ("--max-num-seqs", "8"),
    "Qwen3.6-27B-FP8-vLLM-highconc": ("--max-num-seqs", "256"),
    "Qwen3.6-35B-A3B-FP8-vLLM-lowconc": ("--max-num-seqs", "8"),
    "Qwen3.6-35B-A3B-FP8-vLLM-highconc": ("--max-num-seqs", "256"),
}
MTP_DRAFT_MODELS: frozenset[str] = frozenset(LEMONADE_MODEL_ARGS)


def _flag(token: str) -> str:
    return token.split("=", 1)[0]


def extra_args_problems(args: Sequence[str], backend: str | None) -> list[str]:
    """Why `args` is not allowed in vllm_extra_args (empty when fine)."""
    problems: list[str] = []
    i = 0
    while i < len(args):
        flag = _flag(args[i])
        i += 1
        if flag in PROTECTED_FLAGS or flag in MANAGED_FLAGS:
            problems.append(f"{flag!r} is managed by Lemonade")
            continue
        if flag in TYPED_FLAGS:
            problems.append(f"{flag!r}: use the parameter {TYPED_FLAGS[flag]}")
            continue
        if flag not in EXTRA_ARGS:
            problems.append(f"{flag!r} is not an allowlisted vLLM argument (engine.recipes.vllm.EXTRA_ARGS)")
            continue
        if EXTRA_ARGS[flag] is None:
            continue
        if i >= len(args) or not args[i].isascii() or not args[i].isdigit():
            problems.append(f"{flag!r} takes a non-negative integer")
        i += 1
    return problems


_D = ("default",)
SPECS: tuple[ParamSpec, ...] = (
    ParamSpec("vllm_kv_cache_mib", "vLLM's KV pool in MiB (--kv-cache-memory-bytes); 'auto' = sized with the "
              "context to fit the GPU, 'default' = Lemonade's 4 GiB", 256, 1 << 20, ("auto", "default")),
    ParamSpec("vllm_gpu_memory_utilization", "share of GPU memory vLLM plans with (--gpu-memory-utilization); "
              "replaces the KV pool size", words=_D, fmin=0.05, fmax=0.98),
    ParamSpec("vllm_max_num_seqs", "most sequences vLLM batches at once (--max-num-seqs)", 1, 4096, _D),
    ParamSpec("vllm_max_num_batched_tokens", "tokens per scheduler step (--max-num-batched-tokens)", 16, 1 << 20, _D),
    ParamSpec("vllm_dtype", "weight/activation dtype (--dtype)", words=("auto", "float16", "bfloat16", "default")),
    ParamSpec("vllm_kv_cache_dtype", "KV cache dtype (--kv-cache-dtype)",
              words=("auto", "fp8", "fp8_e4m3", "fp8_e5m2", "default")),
    ParamSpec("vllm_extra_args", "allowlisted vLLM arguments appended verbatim", list_check=extra_args_problems),
)


def args(values: Mapping[str, Any]) -> list[str]:
    """vllm_args tokens for resolved values (`default` / `auto` emit nothing); never a protected flag."""
    from pydantic_core import PydanticCustomError

    checked: dict[str, Any] = {}
    for spec in SPECS:
        if spec.name in values:
            try:
                checked[spec.name] = spec.validate(values[spec.name])
            except PydanticCustomError as err:
                raise ParamError(f"{spec.name}: {err.message()}") from None
    out: list[str] = []
    kv, util = checked.get("vllm_kv_cache_mib"), checked.get("vllm_gpu_memory_utilization")
    if isinstance(kv, int) and isinstance(util, float):
        raise ParamError("vllm_kv_cache_mib and vllm_gpu_memory_utilization both set: Lemonade keeps only one")
    if isinstance(kv, int):
        out += ["--kv-cache-memory-bytes", str(kv * MIB)]  # exact bytes: no suffix semantics to get wrong
    elif isinstance(util, float):
        out += ["--gpu-memory-utilization", f"{util:g}"]
    for name, flag in (("vllm_max_num_seqs", "--max-num-seqs"),
                       ("vllm_max_num_batched_tokens", "--max-num-batched-tokens")):
        if isinstance(checked.get(name), int):
            out += [flag, str(checked[name])]
    for name, flag in (("vllm_dtype", "--dtype"), ("vllm_kv_cache_dtype", "--kv-cache-dtype")):
        if checked.get(name, "default") != "default":
            out += [flag, checked[name]]
    out += list(checked.get("vllm_extra_args", ()))
    bad = [a for a in out if _flag(a) in PROTECTED_FLAGS]
    if bad:  # the vocabulary never renders one; the last line of defence
        raise ParamError(f"protected vLLM flag(s) rendered: {bad}")
    return out


def _offload_gib(decisions: dict[str, Decision]) -> int:
    extra = tuple(value(decisions, "vllm_extra_args", ()))
    for i, tok in enumerate(extra[:-1]):
        if tok == "--cpu-offload-gb":
            return int(extra[i + 1])
    return 0


def _memory_pair(decisions: dict[str, Decision], rec: TraceRecorder) -> None:
    """Lemonade keeps one of --kv-cache-memory-bytes / --gpu-memory-utilization (one conflict key)."""
    kv, util = decisions.get("vllm_kv_cache_mib"), decisions.get("vllm_gpu_memory_utilization")
    if kv is None or util is None or util.value == "default" or kv.value == "default":
        return
    if is_user(kv) and is_user(util) and kv.value != "auto":
        raise UsageError("--set vllm_kv_cache_mib and vllm_gpu_memory_utilization: Lemonade keeps only one of "
                         "--kv-cache-memory-bytes / --gpu-memory-utilization; set one")
    if is_user(kv) and kv.value != "auto":
        change(decisions, "vllm_gpu_memory_utilization", "default", "vllm-memory-pair", _SELF, rec,
               "the requested KV pool replaces --gpu-memory-utilization (Lemonade keeps one of the pair)")
    else:
        change(decisions, "vllm_kv_cache_mib", "default", "vllm-memory-pair", _SELF, rec,
               "--gpu-memory-utilization decides the KV pool (Lemonade keeps one of the pair)")


def _lemonade_model_args(decisions: dict[str, Decision], model: ModelFacts, rec: TraceRecorder) -> None:
    own = LEMONADE_MODEL_ARGS.get(model.name or "")
    d = decisions.get("vllm_max_num_seqs")
    if own is None or d is None or d.value == "default" or is_user(d):
        return
    change(decisions, "vllm_max_num_seqs", "default", "vllm-lemonade-model-args", _SELF, rec,
           f"Lemonade's vllm_model_config.json sets {' '.join(own)} for {model.name}; ours would replace it")


def _dtype(decisions: dict[str, Decision], model: ModelFacts, rec: TraceRecorder) -> None:
    """Lemonade forces --dtype float16 for AWQ checkpoints unless --dtype is set: a rule's dtype stays out."""
    d = decisions.get("vllm_dtype")
    text = f"{model.name or ''} {model.checkpoint or ''}".lower()
    if d is None or d.value == "default" or is_user(d) or "awq" not in text:
        return
    change(decisions, "vllm_dtype", "default", "vllm-awq-dtype", _SELF, rec,
           "AWQ checkpoint: Lemonade forces --dtype float16 unless --dtype is given")


def _set_ctx(decisions: dict[str, Decision], ctx: int, rec: TraceRecorder, why: str) -> None:
    d = decisions["ctx_size"]
    if is_user(d):
        if isinstance(d.value, int) and d.value > ctx:
            note(rec, "vllm-memory-fit", f"kept the user's ctx_size={d.value}; {why} (vLLM refuses a "
                 f"--max-model-len the KV pool cannot hold)", "ctx_size")
        return
    change(decisions, "ctx_size", ctx, "vllm-memory-fit", "facts/vllm_memory.py", rec, why)


def _runnable_variant(model: ModelFacts) -> str:
    from facts.registry import load_registry, variants

    if not model.name:
        return ""
    reg = load_registry()
    gguf = next((v for v in variants(model.name) if reg[v].get("recipe") == "llamacpp"), None)
    return f"; the llama.cpp build {gguf} can keep part of the model in system RAM" if gguf else ""


def _g(n: int) -> str:
    return f"{n / GIB:.1f} GiB"


def _memory(decisions: dict[str, Decision], hw: HardwareFacts, model: ModelFacts, rec: TraceRecorder,
            memory_fit: bool) -> MemoryVerdict | None:
    from facts import vllm_memory as vm

    ctx, kv = value(decisions, "ctx_size", "auto"), value(decisions, "vllm_kv_cache_mib")
    util = value(decisions, "vllm_gpu_memory_utilization")
    if ctx == "auto" and kv == "default" and util == "default":
        note(rec, "vllm-memory-fit", "ctx_size -1 and no KV budget: Lemonade sizes the context at load and "
             "passes --kv-cache-memory-bytes 4G")
        return
    kv_dtype = value(decisions, "vllm_kv_cache_dtype")
    kv_dtype = "auto" if kv_dtype == "default" else kv_dtype
    extra = 1 if model.name in MTP_DRAFT_MODELS else 0
    if not memory_fit:  # no device model: only the KV arithmetic (the context must fit the fixed pool)
        if kv == "auto":
            change(decisions, "vllm_kv_cache_mib", "default", "vllm-memory-fit", _SELF, rec,
                   "no memory fit: Lemonade's 4 GiB KV pool")
            kv = "default"
        if util != "default" or not isinstance(ctx, int):
            return
        layout = vm.kv_layout(model, kv_dtype, extra_attention_layers=extra)
        pool = vm.LEMONADE_KV_BYTES if kv == "default" else kv * MIB
        fit = layout.max_tokens(pool)
        if ctx > fit:
            _set_ctx(decisions, max(512, fit // 256 * 256), rec, f"the KV pool ({pool // MIB} MiB) holds {fit} tokens "
                     f"({layout.bytes_per_token // 1024} KiB per token, {layout.source})")
        return
    seqs, batched = value(decisions, "vllm_max_num_seqs"), value(decisions, "vllm_max_num_batched_tokens")
    p = vm.plan(hw, model, ctx=ctx if isinstance(ctx, int) else None,
                kv="auto" if kv == "auto" else None if kv == "default" else kv * MIB,
                utilization=util if isinstance(util, float) else None,
                max_num_seqs=seqs if isinstance(seqs, int) else None,
                max_batched_tokens=batched if isinstance(batched, int) else None,
                kv_dtype=kv_dtype, cpu_offload_gib=_offload_gib(decisions), extra_attention_layers=extra)
    for line in p.notes:
        note(rec, "vllm-memory-fit", line)
    if p.layout.estimated:
        note(rec, "vllm-memory-fit", "estimated: the model's attention layout or recurrent state is not fully known")
    if not p.fits:
        note(rec, "vllm-memory-fit", f"DOES NOT FIT on this GPU{_runnable_variant(model)}")
        if kv == "auto":
            change(decisions, "vllm_kv_cache_mib", "default", "vllm-memory-fit", _SELF, rec,
                   "the model does not fit; Lemonade's default KV pool is kept")
        return MemoryVerdict("no", total_bytes=p.weights + p.overhead, budget_bytes=p.budget,
                             reason=f"{model.name or 'the model'} does not fit this GPU's vLLM budget "
                                    f"({_g(p.weights + p.overhead)} needed before any KV cache, {_g(p.budget)} "
                                    f"budget){_runnable_variant(model)}")
    if kv == "auto" and p.kv_bytes is not None:
        change(decisions, "vllm_kv_cache_mib", p.kv_bytes // MIB, "vllm-memory-fit", "facts/vllm_memory.py", rec,
               f"KV pool sized to the context and the GPU ({p.kv_bytes // MIB} MiB)")
    if p.ctx is not None and (ctx == "auto" or (isinstance(ctx, int) and ctx > p.ctx)):
        _set_ctx(decisions, p.ctx, rec, f"the largest context the KV pool holds, capped at {ctx} or the trained context"
                 if ctx != "auto" else "the context the KV pool holds, capped at the trained context")
    return MemoryVerdict("estimated" if p.layout.estimated or model.estimated else "yes",
                         total_bytes=p.weights + p.overhead + (p.kv_bytes or 0), budget_bytes=p.budget,
                         context=value(decisions, "ctx_size", None) if isinstance(value(decisions, "ctx_size"), int)
                         else None, estimated=tuple(model.estimated), full_offload=True)


class Vllm(Recipe):
    name = "vllm"
    backend_key = "vllm_backend"
    args_key = "vllm_args"
    uses_ctx_size = True  # Lemonade passes it as --max-model-len
    needs = "an AMD GPU ROCm supports for vLLM (gfx1150, gfx1151, gfx110X, gfx120X) on Linux"
    specs = SPECS

    def fit_facts(self, hw: HardwareFacts, model: ModelFacts) -> Mapping[str, Any] | None:
        from facts.vllm_memory import fit_context

        return fit_context(hw, model)

    def guard(self, decisions: dict[str, Decision], hw: HardwareFacts, model: ModelFacts, rec: TraceRecorder,
              *, memory_fit: bool, scenario: str, force: bool) -> Guarded:
        d = decisions.get("vllm_extra_args")
        if d is not None and d.value:
            problems = extra_args_problems(d.value, None)
            if problems:  # a rule's list was checked at load; only a caller's values can get here
                raise UsageError("vllm_extra_args: " + "; ".join(problems))
        _memory_pair(decisions, rec)
        _lemonade_model_args(decisions, model, rec)
        _dtype(decisions, model, rec)
        verdict = _memory(decisions, hw, model, rec, memory_fit)
        return refuse_unless_forced(verdict, force)

    def args(self, values: Mapping[str, Any]) -> list[str]:
        return args(values)
