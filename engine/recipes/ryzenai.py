"""The ryzenai-llm recipe (OGA on an XDNA2 NPU, Windows): Lemonade's only option is ctx_size, kept within the
NPU model's context limit; on a machine without a Windows XDNA2 NPU it refuses and names the runnable registry
variant (Recipe.unavailable).

The limit: ryzenai-server reads the model's `context_length` (genai_config.json) and truncates prompts to it, so
a larger ctx_size only reserves memory the model cannot use. Known from the model's name ("-4k-", "-128k-");
for NPU-only builds without such a mark it is taken as 4096 (estimated: AMD publishes separate "NPU 4K" and
"NPU 16K" builds from Ryzen AI 1.7.1 on, huggingface.co/amd collections).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from engine.recipes._guard import change, is_user, note, value
from engine.recipes.base import Guarded, Recipe

if TYPE_CHECKING:
    from engine.resolve import Decision
    from engine.trace import TraceRecorder
    from facts.models import HardwareFacts, ModelFacts

_SELF = "engine/recipes/ryzenai.py"
_NAMED = ((re.compile(r"(?:^|[-_/ ])4k(?=[-_/ ]|$)"), 4096), (re.compile(r"(?:^|[-_/ ])128k(?=[-_/ ]|$)"), 131072))
NPU_ONLY_LIMIT = 4096  # estimated (see the module docstring)


def context_limit(model: ModelFacts) -> tuple[int, bool, str] | None:
    """(limit, estimated, why) for a ryzenai-llm model, None when nothing is known."""
    text = f"{model.name or ''} {model.checkpoint or ''}".lower()
    for pattern, limit in _NAMED:
        if pattern.search(text):
            return limit, False, f"a {limit // 1024}k-context model (its name)"
    if text.rstrip().endswith("-onnx-ryzenai-npu"):
        return NPU_ONLY_LIMIT, True, ("an NPU-only build, taken as compiled for a 4K context (estimated: AMD "
                                      "ships separate NPU 4K and 16K builds)")
    if model.trained_ctx:
        return model.trained_ctx, False, "the model's trained context"
    return None


class RyzenAiLlm(Recipe):
    name = "ryzenai-llm"
    uses_ctx_size = True
    needs = "an AMD XDNA2 NPU on Windows"

    def guard(self, decisions: dict[str, Decision], hw: HardwareFacts, model: ModelFacts, rec: TraceRecorder,
              *, memory_fit: bool, scenario: str, force: bool) -> Guarded:
        found = context_limit(model)
        d = decisions.get("ctx_size")
        if found is None or d is None:
            return
        limit, estimated, why = found
        ctx = value(decisions, "ctx_size", "auto")
        if isinstance(ctx, int) and ctx > limit:
            if is_user(d):
                note(rec, "ryzenai-context-limit", f"kept the user's ctx_size={ctx}; the model's limit is {limit} "
                     f"({why}): ryzenai-server truncates prompts to it", "ctx_size")
            else:
                change(decisions, "ctx_size", limit, "ryzenai-context-limit", _SELF, rec,
                       f"the NPU model's context limit is {limit} ({why})")
        elif ctx == "auto":
            if memory_fit and not estimated:
                change(decisions, "ctx_size", limit, "ryzenai-context-limit", _SELF, rec,
                       f"the NPU model's context limit ({why}); Lemonade's auto size would reserve more")
            else:
                note(rec, "ryzenai-context-limit", f"ctx_size left to Lemonade; the model's limit is {limit} ({why})",
                     "ctx_size")
