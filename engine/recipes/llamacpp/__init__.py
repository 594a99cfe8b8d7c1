"""The llamacpp recipe: llama-server's vocabulary, its guards, the memory fit and `llamacpp_args`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from engine.recipes.base import Guarded, Recipe
from engine.recipes.llamacpp import flags, guards, memory

if TYPE_CHECKING:
    from engine.resolve import Decision
    from engine.trace import TraceRecorder
    from facts.models import HardwareFacts, ModelFacts


class LlamaCpp(Recipe):
    name = "llamacpp"
    backend_key = "llamacpp_backend"
    args_key = "llamacpp_args"
    uses_ctx_size = True
    needs = "an x86_64/arm64 CPU on Linux, Windows or macOS"
    runs_anywhere = True
    specs = flags.SPECS

    def fit_facts(self, hw: HardwareFacts, model: ModelFacts) -> Mapping[str, Any] | None:
        from facts.memory import fit_context

        return fit_context(hw, model)

    def guard(self, decisions: dict[str, Decision], hw: HardwareFacts, model: ModelFacts, rec: TraceRecorder,
              *, memory_fit: bool, scenario: str, force: bool) -> Guarded:
        from engine import scenarios

        warnings: list[str] = []
        guards.consistency(decisions, model, rec, force=force, warnings=warnings)
        memory.embedding_batch(decisions, model, rec)
        verdict = None
        if memory_fit:
            verdict = memory.run(decisions, hw, model, rec, need=scenarios.need(scenario), force=force,
                                 warnings=warnings)
            memory.embedding_batch(decisions, model, rec)  # the context may have come out smaller
        guards.threads_guard(decisions, hw, rec)
        return Guarded(verdict, tuple(warnings))

    def args(self, values: Mapping[str, Any]) -> list[str]:
        return flags.flags(values)

    def render(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Lemonade's llamacpp options; `llamacpp_device` only when devices were chosen (mixed GPUs)."""
        out = super().render(values)
        device = values.get("device") or ()
        if device and device != "default":
            out["llamacpp_device"] = ",".join(device)
        return out
