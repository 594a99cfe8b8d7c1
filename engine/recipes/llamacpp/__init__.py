"""The llamacpp recipe: llama-server's vocabulary, its guards, the memory fit and `llamacpp_args`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from engine.recipes.base import Recipe
from engine.recipes.llamacpp import flags, guards

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
              *, memory_fit: bool) -> None:
        from facts.errors import FactsError
        from facts.memory import guard

        guards.consistency(decisions, model, rec)
        if memory_fit:
            try:
                fit = guard(hw, model, {p: d.value for p, d in decisions.items()})
            except FactsError as err:  # too little is known to size memory: the rules' values stand
                rec.emit("note", rule_id="memory-fit", message=f"memory guard skipped: {err}")
            else:
                guards.memory_guard(decisions, fit, rec)
        guards.threads_guard(decisions, hw, rec)

    def args(self, values: Mapping[str, Any]) -> list[str]:
        return flags.flags(values)
