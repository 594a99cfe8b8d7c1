"""engine.recommend(): Lemonade's behaviour from the starter rulebook, overrides, caching, evidence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, note, settings

from engine import ir
from engine.errors import UsageError
from engine.recipes import get as recipe
from engine.recipes.llamacpp.flags import RESERVED_FLAGS
from engine.recommend import recommend, validate_overrides
from engine.rulebook import bundled_root, load_rulebook
from engine.scenarios import names as scenario_names
from facts.lemonade import from_system_info
from facts.models import HardwareFacts, ModelFacts
from tests.strategies import hardware_facts, model_facts

ROOT = Path(__file__).resolve().parents[2]
SYSINFO = ROOT / "tests" / "fixtures" / "system-info"
SIX = ("strix-halo-128gb-linux.json", "radeon-780m-laptop-windows.json", "rx-7900-xtx-desktop-linux.json",
       "rtx-4090-desktop-linux.json", "apple-m3-max-64gb-macos.json", "cpu-only-linux.json")
STARTER = load_rulebook(bundled_root() / "defaults")  # Lemonade's behaviour, no curated rules
MODEL = ModelFacts(name="Qwen3-8B-GGUF", recipe="llamacpp", params_b=8.2, quant="Q4_K_M",
                   file_bytes=5 * 2**30, trained_ctx=40960, architecture="qwen3")


def sysinfo(name: str) -> tuple[dict, HardwareFacts]:
    text = (SYSINFO / name).read_text()
    return json.loads(text), from_system_info(text, source=name)


@pytest.mark.parametrize("name", SIX)
def test_starter_rulebook_answers_what_lemonade_does_today(name):
    doc, hw = sysinfo(name)
    opts = recommend(hw, MODEL, rulebook=STARTER, memory_fit=False).recipe_options()
    assert opts == {"llamacpp_backend": doc["recipes"]["llamacpp"]["default_backend"], "llamacpp_args": "",
                    "ctx_size": -1}


@pytest.mark.parametrize("name", SIX)
def test_without_lemonades_own_answer_the_preference_rules_reproduce_it(name):
    """§1.4: first installed row in preference order, else first supported row."""
    doc, hw = sysinfo(name)
    bare = hw.model_copy(update={"default_backends": {}})
    rec = recommend(bare, MODEL, rulebook=STARTER, memory_fit=False)
    assert rec.decisions["backend"].value == doc["recipes"]["llamacpp"]["default_backend"]
    assert rec.decisions["backend"].rule_id.startswith("llamacpp-")


def test_other_recipes_render_their_own_option_keys():
    _, hw = sysinfo("strix-halo-128gb-linux.json")
    assert recommend(hw, ModelFacts(name="v", recipe="vllm"), rulebook=STARTER,
                     memory_fit=False).recipe_options() == {
        "vllm_backend": "rocm", "vllm_args": "", "ctx_size": -1}
    assert recommend(hw, ModelFacts(name="f", recipe="flm"), rulebook=STARTER,
                     memory_fit=False).recipe_options() == {
        "flm_args": "", "ctx_size": -1}
    assert recommend(hw, ModelFacts(name="w", recipe="whispercpp"), rulebook=STARTER,
                     memory_fit=False).recipe_options() == {
        "whispercpp_backend": "vulkan", "whispercpp_args": ""}


def test_user_overrides_win_and_render_as_llama_flags():
    _, hw = sysinfo("rtx-4090-desktop-linux.json")
    rec = recommend(hw, MODEL, rulebook=STARTER, memory_fit=False, overrides={
        "backend": "vulkan", "ctx_size": 16384, "n_gpu_layers": "all", "flash_attn": "on",
        "extra_args": ["--no-warmup"]})
    assert rec.recipe_options() == {"llamacpp_backend": "vulkan", "ctx_size": 16384,
                                    "llamacpp_args": "-ngl 999 -fa on --no-warmup"}
    assert rec.decisions["backend"].layer == "user"
    assert rec.decisions["backend"].chain[0].rule_id == "lemonade-default-cuda"


def test_a_backend_override_must_exist_for_the_recipe():
    _, hw = sysinfo("strix-halo-128gb-linux.json")
    with pytest.raises(UsageError, match="does not exist for recipe 'llamacpp'"):
        recommend(hw, MODEL, overrides={"backend": "npu"})


@pytest.mark.parametrize("bad, match", [
    ({"ctx_size": 100}, "ctx_size"), ({"flash_attn": "maybe"}, "flash_attn"),
    ({"nope": 1}, "unknown parameter"), ({"extra_args": ["--ctx-size", "4096"]}, "reserved"),
    ({"extra_args": ["--rm-rf"]}, "not an allowlisted"),
])
def test_invalid_overrides_are_usage_errors_naming_the_parameter(bad, match):
    with pytest.raises(UsageError, match=match):
        validate_overrides(bad)
    _, hw = sysinfo("cpu-only-linux.json")
    with pytest.raises(UsageError):
        recommend(hw, MODEL, overrides=bad)


def test_scenarios_cover_lemonades_bench_names_and_categories():
    doc = json.loads((ROOT / "engine" / "data" / "bench_scenarios.json").read_text())
    names = {s["name"] for s in doc["scenarios"]} | {s["category"] for s in doc["scenarios"]}
    assert names | {"chat", "coding", "long-context"} == set(scenario_names())
    _, hw = sysinfo("cpu-only-linux.json")
    assert recommend(hw, MODEL, scenario="context-32k", memory_fit=False).context["scenario"] == "context-32k"
    with pytest.raises(UsageError, match="unknown scenario"):
        recommend(hw, MODEL, scenario="karaoke")


def test_equal_inputs_hit_the_cache_and_different_inputs_do_not():
    _, hw = sysinfo("rx-7900-xtx-desktop-linux.json")
    _, hw2 = sysinfo("rx-7900-xtx-desktop-linux.json")  # equal content, another object
    a = recommend(hw, MODEL, memory_fit=False)
    assert recommend(hw, MODEL, memory_fit=False) is a
    assert recommend(hw2, MODEL.model_copy(), memory_fit=False) is a
    assert recommend(hw, MODEL, scenario="coding", memory_fit=False) is not a
    assert recommend(hw, MODEL, memory_fit=False, evaluator="python").evaluator == "python"


def _book_with(*extra: ir.Rule) -> ir.Rulebook:
    base = STARTER
    rules = tuple(ir.Rule(r.id, r.description, r.layer, r.priority, r.when, r.set, r.source, i, r.evidence)
                  for i, r in enumerate((*base.rules, *extra)))
    return ir.Rulebook(rules, digest=base.digest + "+" + "+".join(r.id for r in extra))


def test_expected_speed_comes_from_the_winning_backend_rules_evidence():
    ev = ir.Evidence(n=14, metric="tg128", median_tps=51.2, spread=0.03,
                     runner_up={"value": "rocm", "median_tps": 45.9, "n": 12}, sources=("https://x",))
    fast = ir.Rule("strix-vulkan", "bench", "archetype", 20,
                   (ir.Condition("archetype", "eq", "amd-rdna3.5-unified-128gb-bw2"),), {"backend": "rocm"},
                   "archetypes/strix.yaml:3", evidence=ev)
    _, hw = sysinfo("strix-halo-128gb-linux.json")
    rec = recommend(hw, MODEL, rulebook=_book_with(fast), memory_fit=False)
    assert rec.decisions["backend"].value == "rocm"
    assert rec.expected is not None
    assert (rec.expected.tokens_per_s, rec.expected.metric, rec.expected.n, rec.expected.rule_id) == (
        51.2, "tg128", 14, "strix-vulkan")
    assert recommend(hw, MODEL, rulebook=STARTER, memory_fit=False).expected is None  # no evidence there


def test_on_the_shipped_rulebook_expected_speed_is_the_backend_winners_evidence():
    from engine.recommend import default_rulebook

    by_id = {r.id: r for r in default_rulebook().rules}
    for name in SIX:
        rec = recommend(sysinfo(name)[1], MODEL, memory_fit=False)
        ev = by_id[rec.decisions["backend"].rule_id].evidence
        if ev is not None and not ev.none and ev.median_tps is not None:
            assert rec.expected is not None and rec.expected.tokens_per_s == ev.median_tps
            assert rec.expected.rule_id == rec.decisions["backend"].rule_id
        else:  # a rule without a speed (a known failure) chose it: the speed of a rule that chose the same backend
            assert rec.expected is None or by_id[rec.expected.rule_id].set.get("backend") == rec.decisions["backend"].value


def test_memory_fit_makes_ctx_size_concrete():
    _, hw = sysinfo("rtx-4090-desktop-linux.json")
    rec = recommend(hw, MODEL)
    opts = rec.recipe_options()
    assert isinstance(opts["ctx_size"], int) and opts["ctx_size"] >= 512
    assert rec.decisions["ctx_size"].layer == "guard"
    assert any(e.op == "note" and e.rule_id == "memory-fit" for e in rec.trace)


@settings(max_examples=120, deadline=None)
@given(hardware_facts(), model_facts())
def test_every_parameter_resolves_for_any_valid_facts(hw, model):
    rec = recommend(hw, model, memory_fit=False)
    note("\n".join(str(e) for e in rec.trace))
    assert tuple(rec.decisions) == recipe(model.recipe).parameters
    opts = rec.recipe_options()
    assert set(opts) == {"llamacpp_backend", "llamacpp_args", "ctx_size"}
    assert not set(opts["llamacpp_args"].split()) & RESERVED_FLAGS
    if "backends" in rec.context:
        assert opts["llamacpp_backend"] in rec.context["backends"]


@settings(max_examples=80, deadline=None)
@given(hardware_facts(), model_facts())
def test_an_emitted_configuration_fits_or_the_answer_says_it_does_not_and_exits_2(hw, model):
    from engine.errors import DoesNotFitError
    from facts.memory import Config, device_budgets, estimate, gpu_budget, ram_budget

    try:
        rec = recommend(hw, model)
    except DoesNotFitError as err:
        assert err.exit_code == 2 and "does not fit" in str(err)
        forced = recommend(hw, model, force=True)
        assert forced.memory.fits == "no" and forced.warnings and forced.expected is None
        return
    note("\n".join(str(e) for e in rec.trace))
    opts = rec.recipe_options()
    assert not set(opts["llamacpp_args"].split()) & RESERVED_FLAGS
    for p in ("n_gpu_layers", "n_cpu_moe"):
        assert rec.decisions[p].value != "auto"
    v = rec.memory
    assert v is not None and v.fits in ("yes", "estimated", "unknown")
    if v.fits == "unknown":
        assert opts["ctx_size"] == -1  # left to Lemonade's own auto context
        return
    assert isinstance(opts["ctx_size"], int) and opts["ctx_size"] == v.context
    # the estimate of what was emitted, placed as predicted, is within the budget it was checked against
    d = rec.values()
    cfg = Config(ctx_size=d["ctx_size"], cache_type_k=_kv(d["cache_type_k"]), cache_type_v=_kv(d["cache_type_v"]),
                 flash_attn=d["flash_attn"] != "off")
    if d["backend"] == "cpu" or gpu_budget(hw) is None:
        assert v.budget_bytes == ram_budget(hw).bytes
    else:  # one GPU's budget, or the sum over the GPUs the model is split across (each part fits its own)
        devs = device_budgets(hw)
        assert v.budget_bytes in {b.bytes for b in devs} | {sum(b.bytes for b in devs[:k]) for k in range(2, 9)} \
            | {sum(b.bytes for b in devs if b.device == "gpu")} | {sum(b.bytes for b in devs if b.device == "gpu")
                                                                + b.bytes for b in devs if b.device == "unified"}
    on_device = v.total_bytes if v.placed_by == "cpu" else v.gpu_bytes
    assert on_device <= v.budget_bytes
    assert estimate(model, cfg).kv_bytes <= v.total_bytes  # the verdict counts at least the emitted KV cache


def _kv(value):
    return "f16" if value == "default" else value


def test_the_guards_correct_cache_types_llama_cpp_would_refuse():
    """MLA models need K and V cache types to match: a rule asking q8_0 K with f16 V is corrected, with or
    without the memory model (facts.memory.cache_refusals is the one statement of what llama.cpp refuses)."""
    from facts.gguf import read_model_facts

    mla = read_model_facts(ROOT / "tests" / "fixtures" / "gguf" / "deepseek2-mla.gguf")
    assert mla.mla
    mixed = ir.Rule("mixed-kv", "test", "model-overlay", 0, (), {"cache_type_k": "q8_0", "flash_attn": "on"},
                    "models/test.yaml:1")
    _, hw = sysinfo("rtx-4090-desktop-linux.json")
    rec = recommend(hw, mla, rulebook=_book_with(mixed))
    assert rec.decisions["cache_type_k"].value == "q8_0"
    v = rec.decisions["cache_type_v"]
    assert (v.value, v.rule_id, v.layer) == ("q8_0", "kv-refused", "guard")
    assert "-ctk q8_0 -ctv q8_0" in rec.recipe_options()["llamacpp_args"]
    without_memory_fit = recommend(hw, mla, rulebook=_book_with(mixed), memory_fit=False)
    assert without_memory_fit.decisions["cache_type_v"].value == "q8_0"


def test_expected_speed_prefers_evidence_measured_on_the_models_class():
    """An all-models median is a rough guide; a matching rule conditioned on the model class wins."""
    ev_all = ir.Evidence(n=8, metric="tg128", median_tps=91.0)
    ev_class = ir.Evidence(n=3, metric="tg128", median_tps=12.5)
    all_models = ir.Rule("all-models", "t", "archetype", 100, (ir.Condition("arch", "eq", "gfx1151"),),
                         {"backend": "vulkan"}, "a.yaml:1", evidence=ev_all)
    huge_moe = ir.Rule("huge-moe", "t", "archetype", 50, (ir.Condition("arch", "eq", "gfx1151"),
                                                          ir.Condition("moe", "eq", True)),
                       {"backend": "vulkan"}, "a.yaml:9", evidence=ev_class)
    _, hw = sysinfo("strix-halo-128gb-linux.json")
    book = _book_with(all_models, huge_moe)
    moe = MODEL.model_copy(update={"is_moe": True, "params_b": 120.0, "active_params_b": 5.1})
    e = recommend(hw, moe, rulebook=book, memory_fit=False).expected
    assert (e.rule_id, e.tokens_per_s, e.scope) == ("huge-moe", 12.5, "model class")
    e = recommend(hw, MODEL, rulebook=book, memory_fit=False).expected  # dense: only the all-models rule
    assert (e.rule_id, e.tokens_per_s, e.scope) == ("all-models", 91.0, "all models")


def test_parallel_is_chosen_per_scenario():
    """long-context: one slot (the whole context for the one request); chat: llama.cpp's auto slots."""
    _, hw = sysinfo("rx-7900-xtx-desktop-linux.json")
    long = recommend(hw, MODEL, scenario="long-context")
    assert long.decisions["parallel"].value == 1 and long.decisions["parallel"].rule_id == "family-long-context-one-slot"
    assert "-np 1" in long.recipe_options()["llamacpp_args"]
    chat = recommend(hw, MODEL, scenario="chat")
    assert chat.decisions["parallel"].value == "default"
