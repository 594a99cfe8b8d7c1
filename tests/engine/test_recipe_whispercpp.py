"""The whispercpp recipe: Lemonade's backend and an empty whispercpp_args with the defaults alone; threads on the
CPU; flags only from whisper-server's performance knobs, never `-m` / `--model` / `--port`."""

from __future__ import annotations

import pytest

from engine.errors import ParamError
from engine.recipes import get
from engine.recipes.whispercpp import RESERVED_FLAGS
from engine.recommend import recommend
from engine.rulebook import bundled_root, load_rulebook
from facts.registry import load_registry, resolve_model_spec
from tests.support import machines

DEFAULTS = load_rulebook(bundled_root() / "defaults")
WHISPER_MODELS = sorted(n for n, e in load_registry().items() if e.get("recipe") == "whispercpp")


@pytest.mark.parametrize("memory_fit", [False, True])
@pytest.mark.parametrize("name", machines.SIX)
def test_defaults_alone_are_lemonades_behaviour(name, memory_fit):
    hw = machines.facts(name)
    want = machines.document(name)["recipes"]["whispercpp"]["default_backend"]
    for model in WHISPER_MODELS:
        rec = recommend(hw, resolve_model_spec(model), rulebook=DEFAULTS, memory_fit=memory_fit)
        assert rec.recipe_options() == {"whispercpp_backend": want, "whispercpp_args": ""}


@pytest.mark.parametrize("name, args", [
    ("cpu-only-linux.json", "-t 8"),  # no GPU: the Vulkan build computes on the CPU too (16 cores: capped at 8)
    ("rtx-4090-desktop-linux.json", ""), ("strix-halo-128gb-linux.json", ""), ("apple-m3-max-64gb-macos.json", "")])
def test_threads_follow_the_cores_where_the_cpu_does_the_work(name, args):
    rec = recommend(machines.facts(name), resolve_model_spec("Whisper-Large-v3-Turbo"))
    assert rec.recipe_options()["whispercpp_args"] == args


def test_the_cpu_backend_gets_up_to_eight_physical_cores():
    hw = machines.facts("strix-halo-128gb-linux.json")  # 16 physical cores
    rec = recommend(hw, resolve_model_spec("Whisper-Small"), overrides={"backend": "cpu"})
    assert rec.recipe_options() == {"whispercpp_backend": "cpu", "whispercpp_args": "-t 8"}
    assert rec.decisions["whispercpp_threads"].rule_id == "family-whispercpp-cpu-threads-8"
    small = machines.facts("rx-7900-xtx-desktop-linux.json")  # 8 physical cores: the cap
    rec = recommend(small, resolve_model_spec("Whisper-Small"), overrides={"backend": "cpu"})
    assert rec.recipe_options()["whispercpp_args"] == "-t 8"


def test_measured_vulkan_backends_restate_lemonades_choice_with_evidence():
    strix = recommend(machines.facts("strix-halo-128gb-linux.json"), resolve_model_spec("Whisper-Large-v3-Turbo"))
    d = strix.decisions["backend"]
    assert (d.value, d.rule_id) == ("vulkan", "family-whispercpp-gfx1151-vulkan")
    assert any(c.rule_id == "lemonade-default-vulkan" for c in d.chain)  # Lemonade's own answer, the same
    rule = next(r for r in strix.rules if r.id == d.rule_id)
    assert rule.evidence.sources == ("https://github.com/joryirving/home-ops/pull/9766",)
    laptop = recommend(machines.facts("radeon-780m-laptop-windows.json"), resolve_model_spec("Whisper-Base"))
    assert laptop.decisions["backend"].rule_id == "family-whispercpp-amd-igpu-vulkan"
    npu = recommend(machines.strix_point_windows(), resolve_model_spec("Whisper-Base"))  # Lemonade's npu stays
    assert npu.recipe_options()["whispercpp_backend"] == "npu"


def test_every_knob_renders_whisper_server_flags():
    render = get("whispercpp").render
    assert render({"backend": "vulkan", "whispercpp_threads": 8, "whispercpp_processors": 2,
                   "whispercpp_flash_attn": "off"}) == {"whispercpp_backend": "vulkan",
                                                        "whispercpp_args": "-t 8 -p 2 -nfa"}
    assert render({"backend": "cpu", "whispercpp_flash_attn": "on"})["whispercpp_args"] == "-fa"
    with pytest.raises(ParamError, match="resolved to a number"):
        render({"backend": "cpu", "whispercpp_threads": "physical-cores"})
    assert {"-m", "--model", "--port"} == RESERVED_FLAGS


def test_recommend_text_names_the_evidence_when_it_is_not_in_tokens_per_second():
    from engine.render_text import recommendation_text

    text = recommendation_text(recommend(machines.facts("strix-halo-128gb-linux.json"),
                                         resolve_model_spec("Whisper-Large-v3-Turbo")))
    assert ("expected: no tokens/s figure; the backend's rule family-whispercpp-gfx1151-vulkan has evidence "
            "(realtime factor (large-v3-turbo q8_0, 297 s of speech), n=1; "
            "https://github.com/joryirving/home-ops/pull/9766)") in text
    plain = recommendation_text(recommend(machines.facts("cpu-only-linux.json"), resolve_model_spec("Whisper-Base")))
    assert "expected: no benchmark evidence for this choice" in plain
