"""The flm recipe (FastFlowLM on an XDNA2 NPU): `flm_args` only from Lemonade's allowlist, and ctx_size.

Lemonade's resolver (src/cpp/server/backends/fastflowlm/flm_arg_resolver.cpp) accepts only unquoted
`--flag value` pairs of six flags, each once, at most 12 tokens: `--pmode default|powersaver|balanced|
performance|turbo`, `--prefill-chunk-len -1|N (<= ctx_size)`, `--img-pre-resize 0..4`, `--socket 1..1024`,
`--q-len 1..1024`, `--preemption 0|1`. Everything else makes the load fail, so nothing else is ever rendered.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from engine.errors import ParamError, UsageError
from engine.recipes._guard import change, is_user, note, value
from engine.recipes._spec import ParamSpec
from engine.recipes.base import Guarded, Recipe

if TYPE_CHECKING:
    from engine.resolve import Decision
    from engine.trace import TraceRecorder
    from facts.models import HardwareFacts, ModelFacts

_SELF = "engine/recipes/flm.py"
MAX_TOKENS = 12  # Lemonade's MAX_ARGUMENT_TOKENS
PMODES = ("powersaver", "balanced", "performance", "turbo")  # plus FLM's own `default` (= no flag)
# parameter -> (flag, allowed integer range); `flm_pmode` and `flm_preemption` are words
_INT_FLAGS: Mapping[str, tuple[str, int, int]] = {
    "flm_prefill_chunk_len": ("--prefill-chunk-len", 1, 1 << 20),
    "flm_img_pre_resize": ("--img-pre-resize", 0, 4),
    "flm_socket": ("--socket", 1, 1024),
    "flm_q_len": ("--q-len", 1, 1024),
}
ALLOWED_FLAGS: frozenset[str] = frozenset({"--pmode", *(f for f, _, _ in _INT_FLAGS.values()), "--preemption"})

_D = ("default",)
SPECS: tuple[ParamSpec, ...] = (
    ParamSpec("flm_pmode", "NPU power mode (--pmode); 'default' = FLM's own default mode (no flag)",
              words=(*PMODES, "default"), flag="--pmode"),
    ParamSpec("flm_prefill_chunk_len", "prompt tokens per prefill chunk (--prefill-chunk-len, <= ctx_size)",
              1, 1 << 20, _D, "--prefill-chunk-len"),
    ParamSpec("flm_img_pre_resize", "image pre-resize level for vision models (--img-pre-resize)", 0, 4, _D,
              "--img-pre-resize"),
    ParamSpec("flm_socket", "concurrent client connections (--socket)", 1, 1024, _D, "--socket"),
    ParamSpec("flm_q_len", "request queue length (--q-len)", 1, 1024, _D, "--q-len"),
    ParamSpec("flm_preemption", "let new requests pre-empt running ones (--preemption)",
              words=("on", "off", "default"), flag="--preemption"),
)


def args(values: Mapping[str, Any]) -> list[str]:
    """flm_args tokens: `--flag value` pairs from the allowlist only, no quotes, at most 12 tokens."""
    from pydantic_core import PydanticCustomError

    out: list[str] = []
    for spec in SPECS:
        if spec.name not in values:
            continue
        try:
            v = spec.validate(values[spec.name])
        except PydanticCustomError as err:
            raise ParamError(f"{spec.name}: {err.message()}") from None
        if v == "default":
            continue
        if spec.name == "flm_preemption":
            out += ["--preemption", "1" if v == "on" else "0"]
        else:
            out += [spec.flag, str(v)]  # type: ignore[list-item]
    ctx = values.get("ctx_size")
    chunk = values.get("flm_prefill_chunk_len")
    if isinstance(ctx, int) and isinstance(chunk, int) and chunk > ctx:
        raise ParamError(f"flm_prefill_chunk_len {chunk} > ctx_size {ctx}: Lemonade refuses it")
    flags = out[0::2]
    if len(out) > MAX_TOKENS or set(flags) - ALLOWED_FLAGS or any(c in t for t in out for c in "'\""):
        raise ParamError(f"flm_args outside Lemonade's allowlist: {out}")  # the last line of defence
    return out


class Flm(Recipe):
    name = "flm"
    args_key = "flm_args"
    uses_ctx_size = True
    needs = "an AMD XDNA2 NPU (FastFlowLM, Windows or Linux)"
    specs = SPECS

    def guard(self, decisions: dict[str, Decision], hw: HardwareFacts, model: ModelFacts, rec: TraceRecorder,
              *, memory_fit: bool, scenario: str, force: bool) -> Guarded:
        chunk, ctx = decisions.get("flm_prefill_chunk_len"), value(decisions, "ctx_size", "auto")
        if chunk is not None and isinstance(chunk.value, int):
            if ctx == "auto":
                if not is_user(chunk):
                    change(decisions, "flm_prefill_chunk_len", "default", "flm-prefill-chunk", _SELF, rec,
                           "ctx_size is left to Lemonade, and Lemonade refuses a chunk longer than the context")
            elif chunk.value > ctx:
                if is_user(chunk):
                    raise UsageError(f"--set flm_prefill_chunk_len={chunk.value} > ctx_size {ctx}: Lemonade refuses "
                                     "a prefill chunk longer than the context")
                change(decisions, "flm_prefill_chunk_len", ctx, "flm-prefill-chunk", _SELF, rec,
                       f"Lemonade refuses --prefill-chunk-len above ctx_size ({ctx})")
        pmode = value(decisions, "flm_pmode")
        if pmode in ("performance", "turbo"):
            note(rec, "flm-power", f"--pmode {pmode}: the power source is not known here; on battery "
                 "`--set flm_pmode=balanced` (or powersaver) trades speed for battery life", "flm_pmode")

    def args(self, values: Mapping[str, Any]) -> list[str]:
        return args(values)
