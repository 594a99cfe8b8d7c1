"""The whispercpp recipe: `whispercpp_backend` and `whispercpp_args` performance knobs for whisper-server.

whisper-server (whisper.cpp v1.8.4, Lemonade's pin) takes `-t N` threads (default min(4, hardware threads)),
`-p N` processors (default 1; more splits the audio into that many parts decoded in parallel), and
`-fa` / `-nfa` flash attention (default on). Lemonade sets `-m` and `--port` itself and refuses them in
whispercpp_args. Beam size and the other decoding options change the transcript: out of scope.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from engine.errors import ParamError
from engine.recipes._guard import change, value
from engine.recipes._spec import ParamSpec
from engine.recipes.base import Guarded, Recipe

if TYPE_CHECKING:
    from engine.resolve import Decision
    from engine.trace import TraceRecorder
    from facts.models import HardwareFacts, ModelFacts

_SELF = "engine/recipes/whispercpp.py"
RESERVED_FLAGS: frozenset[str] = frozenset({"-m", "--model", "--port"})  # whispercpp_server.cpp reserved_flags

SPECS: tuple[ParamSpec, ...] = (
    ParamSpec("whispercpp_threads", "CPU threads (-t); default = whisper-server's min(4, hardware threads)",
              1, 1024, ("default", "physical-cores", "performance-cores"), "-t"),
    ParamSpec("whispercpp_processors", "parallel audio parts (-p)", 1, 64, ("default",), "-p"),
    ParamSpec("whispercpp_flash_attn", "flash attention (-fa / -nfa); whisper-server's default is on",
              words=("on", "off", "default")),
)


def args(values: Mapping[str, Any]) -> list[str]:
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
        if v in ("physical-cores", "performance-cores"):
            raise ParamError(f"{spec.name}: {v!r} must be resolved to a number before rendering")
        if spec.name == "whispercpp_flash_attn":
            out.append("-fa" if v == "on" else "-nfa")
        else:
            out += [spec.flag, str(v)]  # type: ignore[list-item]
    if set(out) & RESERVED_FLAGS:
        raise ParamError(f"reserved whisper-server flag rendered: {out}")
    return out


class WhisperCpp(Recipe):
    name = "whispercpp"
    backend_key = "whispercpp_backend"
    args_key = "whispercpp_args"
    needs = "an x86_64/arm64 CPU on Linux, Windows or macOS"
    specs = SPECS

    def guard(self, decisions: dict[str, Decision], hw: HardwareFacts, model: ModelFacts, rec: TraceRecorder,
              *, memory_fit: bool, scenario: str, force: bool) -> Guarded:
        threads = value(decisions, "whispercpp_threads")
        if threads in ("physical-cores", "performance-cores"):
            cpu = hw.cpu
            n = (cpu.performance_cores if threads == "performance-cores" else None) or cpu.physical_cores
            change(decisions, "whispercpp_threads", int(n) if n else "default", "threads-from-cores", _SELF, rec,
                   f"{threads} = {n} on this CPU" if n else f"{threads} unknown; whisper-server's default applies")

    def args(self, values: Mapping[str, Any]) -> list[str]:
        return args(values)
