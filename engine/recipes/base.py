"""The Recipe protocol: one Lemonade recipe's option keys, parameters, requirements and hooks.

A `Recipe` names Lemonade's option keys for one recipe (`llamacpp_backend`, `vllm_args`, ...), the parameters
it tunes (the shared `backend` and `ctx_size` plus its own vocabulary), what it needs to run, and three
hooks `recommend()` calls: `fit_facts` (memory-model facts for the rule context), `guard` (make the resolved
values runnable) and `render` (Lemonade's recipe options). Memory models: llama.cpp (facts.memory), vLLM
(facts.vllm_memory) and sd.cpp (facts.sd_memory).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.errors import RecipeUnavailableError
from engine.recipes._spec import ParamSpec
from facts.backends import backends_of

if TYPE_CHECKING:
    from engine.resolve import Decision
    from engine.trace import TraceRecorder
    from engine.verdict import MemoryVerdict
    from facts.models import HardwareFacts, ModelFacts

AUTO_CTX = -1  # Lemonade's ctx_size sentinel: "auto" (its own auto_tune decides at load)


@dataclass(frozen=True)
class Guarded:
    """What a recipe's guard reports beyond the decisions it changed."""

    verdict: MemoryVerdict | None = None
    warnings: tuple[str, ...] = ()


class Recipe:
    """One Lemonade recipe. Subclasses set the class attributes and override the hooks they need."""

    name: str = ""
    backend_key: str | None = None  # the `<recipe>_backend` option; None = not selectable (one backend)
    args_key: str | None = None  # the `<recipe>_args` option; None = the recipe takes no custom args
    uses_ctx_size: bool = False  # Lemonade's descriptor `uses_ctx_size`
    needs: str = ""  # what it needs to run, in words, for the "cannot run here" error
    runs_anywhere: bool = False  # a backend of it runs on every machine Lemonade runs on (a rulebook must
    # then always propose one: lint checks an unconditional backend default)
    specs: tuple[ParamSpec, ...] = ()  # its own parameters (beyond backend and ctx_size)

    @property
    def backends(self) -> tuple[str, ...]:
        """Lemonade's backends for this recipe, in its preference order (facts.backends.MATRIX)."""
        return backends_of(self.name)

    @property
    def parameters(self) -> tuple[str, ...]:
        """The parameters this recipe resolves: `backend` first, then `ctx_size` (when used), then its own."""
        own = tuple(s.name for s in self.specs)
        return ("backend", *(("ctx_size",) if self.uses_ctx_size else ()), *own)

    def fit_facts(self, hw: HardwareFacts, model: ModelFacts) -> Mapping[str, Any] | None:
        """Memory-model facts for the rule context (`fit_*`, `gpu_budget_gib`); None without a memory model."""
        return None

    def guard(self, decisions: dict[str, Decision], hw: HardwareFacts, model: ModelFacts, rec: TraceRecorder,
              *, memory_fit: bool, scenario: str, force: bool) -> Guarded:
        """Make the resolved values runnable, in place (each change recorded in the trace); the memory verdict
        when the recipe has a memory model, and warnings for what `force` kept."""
        return Guarded()

    def args(self, values: Mapping[str, Any]) -> list[str]:
        """The tokens of the `<recipe>_args` option for resolved values."""
        return []

    def render(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Lemonade recipe options for resolved values: exactly this recipe's keys."""
        out: dict[str, Any] = {}
        if self.backend_key is not None:
            out[self.backend_key] = values["backend"]
        if self.args_key is not None:
            out[self.args_key] = " ".join(self.args(values))
        if self.uses_ctx_size:
            ctx = values.get("ctx_size", "auto")
            out["ctx_size"] = ctx if isinstance(ctx, int) else AUTO_CTX
        return out

    def unavailable(self, hw: HardwareFacts, model: ModelFacts) -> RecipeUnavailableError:
        """The error for a machine where no backend of this recipe runs, naming a registry variant of the same
        model whose recipe does run here (e.g. the GGUF build of an NPU model), when there is one."""
        from engine.context import recipe_backends
        from facts.registry import load_registry, variants

        npu = hw.npu.family if hw.npu is not None and hw.npu.available else None
        have = ", ".join((hw.os.name, f"NPU {npu}" if npu else "no NPU",
                          f"{len(hw.gpus)} GPU(s)" if hw.gpus else "no GPU"))
        runnable = None
        if model.name:
            registry = load_registry()
            runnable = next((v for v in variants(model.name)
                             if recipe_backends(hw, str(registry[v].get("recipe") or "")) or
                             registry[v].get("recipe") == "llamacpp"), None)
        return RecipeUnavailableError(self.name, f"{self.name} needs {self.needs}; none found on this machine "
                                                 f"({have})", runnable)
