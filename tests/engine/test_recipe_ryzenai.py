"""The ryzenai-llm recipe: only ctx_size, within the NPU model's limit; a clear refusal naming the runnable
registry variant where the machine has no Windows XDNA2 NPU."""

from __future__ import annotations

import pytest

from engine.errors import RecipeUnavailableError
from engine.recipes.ryzenai import context_limit
from engine.recommend import recommend
from engine.rulebook import bundled_root, load_rulebook
from facts.registry import load_registry, resolve_model_spec, variants
from tests.support import machines

DEFAULTS = load_rulebook(bundled_root() / "defaults")
RYZENAI_MODELS = sorted(n for n, e in load_registry().items() if e.get("recipe") == "ryzenai-llm")


def test_the_registry_has_the_ryzenai_models():
    assert len(RYZENAI_MODELS) == 79


@pytest.mark.parametrize("name", machines.SIX)
def test_no_example_machine_runs_it_and_the_refusal_names_a_runnable_variant(name):
    hw = machines.facts(name)
    reg = load_registry()
    for model_name in ("Qwen3-4B-Hybrid", "gpt-oss-20b-NPU", "Phi-3-mini-4k-instruct-NPU"):
        with pytest.raises(RecipeUnavailableError) as err:
            recommend(hw, resolve_model_spec(model_name), rulebook=DEFAULTS)
        message = str(err.value)
        assert "ryzenai-llm needs an AMD XDNA2 NPU on Windows; none found on this machine" in message
        runnable = [v for v in variants(model_name) if reg[v]["recipe"] == "llamacpp"]
        assert err.value.variant == (runnable[0] if runnable else None)
        if runnable:
            assert repr(runnable[0]) in message


def test_defaults_alone_are_lemonades_behaviour_on_a_windows_xdna2_laptop():
    hw = machines.strix_point_windows()
    for name in RYZENAI_MODELS:
        rec = recommend(hw, resolve_model_spec(name), rulebook=DEFAULTS, memory_fit=False)
        assert rec.recipe_options() == {"ctx_size": -1}, name


@pytest.mark.parametrize("name, limit, estimated", [
    ("Phi-3-mini-4k-instruct-NPU", 4096, False), ("Phi-3-mini-4k-instruct-Hybrid", 4096, False),
    ("Phi-3-mini-128k-instruct-Hybrid", 131072, False), ("Llama-3.2-1B-NPU", 4096, True),
    ("Qwen3-4B-Hybrid", None, None)])
def test_context_limits_from_the_model_name_or_the_npu_build(name, limit, estimated):
    found = context_limit(resolve_model_spec(name))
    if limit is None:
        assert found is None
    else:
        assert (found[0], found[1]) == (limit, estimated)


def test_the_context_stays_within_the_models_limit():
    hw = machines.strix_point_windows()
    four_k = recommend(hw, resolve_model_spec("Phi-3-mini-4k-instruct-NPU"))
    assert four_k.recipe_options() == {"ctx_size": 4096}
    assert four_k.decisions["ctx_size"].rule_id == "ryzenai-context-limit"
    # an NPU-only build's limit is an estimate: Lemonade keeps sizing the context, explain says why
    npu = recommend(hw, resolve_model_spec("Llama-3.2-1B-NPU"))
    assert npu.recipe_options() == {"ctx_size": -1}
    assert any(e.op == "note" and "estimated" in e.message for e in npu.trace)
    user = recommend(hw, resolve_model_spec("Phi-3-mini-4k-instruct-NPU"), overrides={"ctx_size": 8192})
    assert user.recipe_options() == {"ctx_size": 8192}
    assert any(e.op == "note" and "kept the user's ctx_size=8192" in e.message for e in user.trace)


def test_a_rules_context_above_the_limit_is_cut_to_it(tmp_path):
    (tmp_path / "ctx.yaml").write_text(
        "rules:\n  - id: test-ryzenai-ctx\n    description: t\n    layer: family\n    when: {recipe: ryzenai-llm}\n"
        "    set: {ctx_size: 16384}\n    evidence: none\n")
    book = load_rulebook(bundled_root(), tmp_path)
    hw = machines.strix_point_windows()
    for name, want in (("Llama-3.2-1B-NPU", 4096), ("Phi-3-mini-128k-instruct-Hybrid", 16384)):
        assert recommend(hw, resolve_model_spec(name), rulebook=book).recipe_options() == {"ctx_size": want}
