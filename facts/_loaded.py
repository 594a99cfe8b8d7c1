"""Everything a model loads besides its weights: a vision projector, a draft model, an MTP draft context."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from facts._estimate import Config, estimate_with, layout
from facts.models import GIB, ModelFacts

MMPROJ_ESTIMATE = GIB  # an F16 vision projector not yet downloaded (gemma-3: 0.8 GiB, Qwen2.5-VL-7B: 1.3 GiB)
DRAFT_SHARE = 0.05  # a draft / MTP checkpoint not yet downloaded, as a share of the main weights


def loaded_components(model: ModelFacts, cfg: Config) -> tuple[ModelFacts, list[str]]:
    """Everything the model loads counts: a projector (Lemonade passes --mmproj) and a draft model whose sizes are
    not known yet are estimated; MTP layers in the main file (the `mtp` label: Lemonade adds --spec-type
    draft-mtp) get a draft context of their own: one layer's KV cache at the context and a second compute
    buffer. Returns the model with those bytes and the notes that say so (estimated ones marked)."""
    update: dict[str, Any] = {}
    notes: list[str] = []
    guessed: list[str] = []
    if model.mmproj_bytes is None and model.provenance.get("mmproj"):
        update["mmproj_bytes"] = MMPROJ_ESTIMATE
        guessed.append("mmproj_bytes")
        notes.append(f"projector {model.provenance['mmproj']}: not downloaded yet, estimated {_g(MMPROJ_ESTIMATE)}")
    draft = model.draft_bytes
    if draft is None and model.provenance.get("draft") and model.file_bytes:
        draft = int(model.file_bytes * DRAFT_SHARE)
        guessed.append("draft_bytes")
        notes.append(f"draft model {model.provenance['draft']}: not downloaded yet, estimated {_g(draft)}")
    if "mtp" in model.labels and not model.provenance.get("draft"):
        try:
            lay = layout(model, cfg.cache_type_k, cfg.cache_type_v, cfg.flash_attn)
            e = estimate_with(model, replace(cfg, parallel=1, kv_unified=True), lay)
        except (ValueError, ZeroDivisionError):  # too little is known about the layers: no allowance
            e = None
        if e is not None:
            per_layer = e.kv_bytes // max(1, sum(1 for c in lay.cache if c))
            mtp = per_layer + e.compute_bytes
            draft = (draft or 0) + mtp
            guessed.append("draft_bytes")
            notes.append(f"MTP draft context (--spec-type draft-mtp): one layer's KV at {cfg.ctx_size} tokens and "
                         f"a compute buffer, {_g(mtp)} (estimated)")
    if draft != model.draft_bytes:
        update["draft_bytes"] = draft
    if not update:
        return model, notes
    update["estimated"] = tuple(sorted(set(model.estimated) | set(guessed)))
    return model.model_copy(update=update), notes


def _g(n: int) -> str:
    return f"{n / GIB:.1f} GiB"
