"""explain: levels, agreement with recommend, why-not from ir.first_failure, golden text traces.

Regenerate the golden files with `UPDATE_GOLDEN=1 python -m pytest tests/engine/test_explain.py`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings

from engine import ir
from engine.recommend import recommend
from engine.render import events_for, explain_dict
from engine.render_text import explain_text
from engine.rulebook import load_rulebook
from facts.lemonade import from_system_info
from facts.models import ModelFacts
from tests.strategies import hardware_facts, model_facts

TESTS = Path(__file__).resolve().parents[1]
GOLDEN = TESTS / "golden"
BOOK = load_rulebook(GOLDEN / "rulebook")
STRIX = from_system_info((TESTS / "fixtures" / "system-info" / "strix-halo-128gb-linux.json").read_text(),
                         source="strix-halo-128gb-linux.json")
MOE = ModelFacts(name="Qwen3-30B-A3B-GGUF", recipe="llamacpp", params_b=30.5, active_params_b=3.3,
                 is_moe=True, quant="Q4_K_M", file_bytes=18 * 2**30, trained_ctx=40960, architecture="qwen3moe")


def strix_rec(**kw):
    return recommend(STRIX, MOE, rulebook=BOOK, evaluator="python", memory_fit=False, **kw)


@pytest.mark.parametrize("level", ["decisions", "full", "why-not"])
@pytest.mark.parametrize("scenario", ["chat", "coding"])
def test_text_trace_matches_golden(level, scenario):
    text = explain_text(strix_rec(scenario=scenario), level)
    path = GOLDEN / f"explain-strix-moe-{scenario}-{level}.txt"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"golden mismatch; rerun with UPDATE_GOLDEN=1 if intended: {path}"


def test_the_golden_case_exercises_rejection_overrides_evidence_and_misses():
    rec = strix_rec()
    d = explain_dict(rec, "why-not")
    assert d["params"]["backend"]["value"] == "rocm" and d["params"]["backend"]["rule"] == "strix-rocm-moe"
    assert [r["rule_id"] for r in d["rejected"]] == ["strix-cuda"]
    assert d["params"]["flash_attn"]["value"] == "on"  # phase 2 saw backend=rocm
    assert [c["rule"] for c in d["params"]["backend"]["overridden"]] == ["strix-cuda", "default-vulkan",
                                                                          "default-cpu"]
    assert d["expected"]["tokens_per_s"] == 71.5 and d["expected"]["runner_up"]["value"] == "vulkan"
    misses = {m["rule"]: m["failed"] for m in d["why_not"]}
    assert set(misses) == {"nvidia-threads", "coding-parallel"}
    assert misses["nvidia-threads"] == {"attr": "vendor", "op": "eq", "want": "nvidia", "got": "amd",
                                        "condition": "vendor == 'nvidia'"}
    assert misses["coding-parallel"]["got"] == "chat"
    assert {s["rule_id"] for s in d["skipped"]} == {"default-vulkan", "default-cpu", "strix-cuda"}


def test_levels_add_information_and_never_change_the_winners():
    rec = strix_rec()
    dec, full, why = (explain_dict(rec, lv) for lv in ("decisions", "full", "why-not"))
    assert "matched" not in dec and "overridden" not in dec["params"]["backend"]
    assert "matched" in full and "why_not" not in full and "why_not" in why
    for doc in (dec, full, why):
        assert {p: v["value"] for p, v in doc["params"].items()} == {
            p: (list(v) if isinstance(v, tuple) else v) for p, v in rec.values().items()}
    assert {e.op for e in events_for(rec, "decisions")} == {"choose"}
    assert "skip" in {e.op for e in events_for(rec, "why-not")}
    with pytest.raises(ValueError, match="unknown explain level"):
        explain_dict(rec, "everything")


def test_why_not_first_failure_agrees_with_ir():
    rec = strix_rec()
    by_id = {r.id: r for r in BOOK.rules}
    for miss in explain_dict(rec, "why-not")["why_not"]:
        cond = ir.first_failure(by_id[miss["rule"]], rec.context)
        assert cond is not None and cond.attr == miss["failed"]["attr"] and cond.op == miss["failed"]["op"]


@settings(max_examples=60, deadline=None)
@given(hardware_facts(), model_facts())
def test_explains_winners_equal_recommends_values(hw, model):
    rec = recommend(hw, model, memory_fit=False)
    doc = explain_dict(rec, "full")
    assert {p: v["value"] for p, v in doc["params"].items()} == {
        p: (list(v) if isinstance(v, tuple) else v) for p, v in rec.values().items()}
    assert doc["recipe_options"] == rec.recipe_options()
    chosen = {e.parameter: e.value for e in rec.trace if e.op == "choose"}  # last choose per parameter wins
    assert chosen == rec.values()
