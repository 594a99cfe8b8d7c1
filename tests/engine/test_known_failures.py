"""Correctness beats speed: known wrong-output combinations are rules with their sources that exclude the backend or
cap the context; they fire on their facts, explain cites the source, and curation counts them to prefer the more
robust backend where the performance model's margin is inside its noise."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.params import BACKENDS
from engine.recommend import recommend
from engine.render import explain_dict
from engine.render_text import explain_text
from engine.rulebook import load_rulebook
from facts.lemonade import from_system_info
from facts.registry import resolve_model_spec

ROOT = Path(__file__).resolve().parents[2]
SYSINFO = ROOT / "tests" / "fixtures" / "system-info"
RULES = {r.id: r for r in load_rulebook(ROOT / "rulebook" / "models").rules if r.id.startswith("known-failure-")}
MODEL = resolve_model_spec("Qwen3-8B-GGUF")


def hw_of(name: str):
    return from_system_info((SYSINFO / name).read_text(), source=f"system-info:{name}")


def test_every_known_failure_names_its_backend_and_links_its_report():
    assert len(RULES) >= 5
    for rid, r in RULES.items():
        failing = rid.split("-")[2]
        assert failing in BACKENDS, rid
        assert r.layer == "model-overlay" and r.evidence is not None and r.evidence.note, rid
        assert r.evidence.sources and all(s.startswith("https://github.com/") for s in r.evidence.sources), rid
        if "backend" in r.set:  # an exclusion: another backend, and only where that one is available
            assert r.set["backend"] != failing
            assert any(c.attr == "backends" and c.op == "contains" and c.value == r.set["backend"] for c in r.when)
        else:  # a cap or a fix that applies when the failing backend is chosen anyway
            assert any(c.attr == "backend" and c.value == failing for c in r.when), rid


def test_rocm_on_gfx1151_is_excluded_and_explain_cites_lemonade_3610():
    rec = recommend(hw_of("strix-halo-128gb-linux.json"), MODEL, scenario="coding")
    d = rec.decisions["backend"]
    assert d.value == "vulkan" and d.rule_id == "known-failure-rocm-gfx1151-long-prompt-wrong-output"
    text = explain_text(rec)
    assert "https://github.com/lemonade-sdk/lemonade/issues/3610" in text
    ev = explain_dict(rec)["evidence"]["backend"]
    assert "https://github.com/ggml-org/llama.cpp/issues/27579" in ev["sources"]


def test_rocm_forced_on_gfx1151_gets_the_context_capped_below_the_failing_prompt_length():
    rec = recommend(hw_of("strix-halo-128gb-linux.json"), MODEL, scenario="coding", overrides={"backend": "rocm"})
    assert rec.decisions["backend"].value == "rocm"
    ctx = rec.decisions["ctx_size"]
    assert rec.recipe_options()["ctx_size"] == 3328 and ctx.rule_id == "known-failure-rocm-gfx1151-long-prompt-context-cap"
    assert "https://github.com/ggml-org/llama.cpp/issues/27579" in explain_text(rec)
    # the user's own context still wins over the cap (a --set is never overridden)
    mine = recommend(hw_of("strix-halo-128gb-linux.json"), MODEL, overrides={"backend": "rocm", "ctx_size": 8192})
    assert mine.recipe_options()["ctx_size"] == 8192


def test_rocm_on_gfx1150_is_excluded():
    rec = recommend(hw_of("old-schema-v9.4-890m-xdna2-windows-assembled.json"), MODEL)
    assert rec.decisions["backend"].value == "vulkan"
    assert rec.decisions["backend"].rule_id == "known-failure-rocm-gfx1150-wrong-output"
    assert "nix-amd-ai" in explain_text(rec)


def test_vulkan_split_over_two_gpus_turns_flash_attention_off():
    one = hw_of("rx-7900-xtx-desktop-linux.json")
    two = one.model_copy(update={"gpus": (one.gpus[0], one.gpus[0].model_copy(update={"name": "110001"}))})
    big = resolve_model_spec("Qwen2.5-Coder-32B-Instruct-GGUF")  # 19.9 GB: split over both 24 GB cards
    rec = recommend(two, big, scenario="chat", overrides={"backend": "vulkan"})
    assert rec.context["fit_devices"] == 2
    fa = rec.decisions["flash_attn"]
    assert fa.value == "off" and fa.rule_id == "known-failure-vulkan-multi-gpu-flash-attn-gibberish"
    assert "-fa off" in rec.recipe_options()["llamacpp_args"]
    assert "https://github.com/ggml-org/llama.cpp/issues/26197" in explain_text(rec)
    single = recommend(one, MODEL, scenario="chat", overrides={"backend": "vulkan"})
    assert single.decisions["flash_attn"].rule_id != "known-failure-vulkan-multi-gpu-flash-attn-gibberish"


@pytest.mark.parametrize(("family", "memclass", "archs", "rocm_failures"), [
    ("rdna3.5", "unified", {"gfx1150", "gfx1151", "gfx1152"}, 3),  # APU from GTT, gfx1151 prompts, gfx1150 output
    ("rdna3", "unified", {"gfx1103"}, 1),  # APU from GTT
    ("rdna3", "discrete", {"gfx1100", "gfx1101"}, 0),
])
def test_curation_counts_the_known_failures_that_can_apply_to_a_gpu_family(family, memclass, archs, rocm_failures):
    from engine.curate.model_rules import failures, known_exclusions

    ex = known_exclusions()
    assert failures("rocm", "amd", family, memclass, archs, ex) == rocm_failures
    assert failures("vulkan", "amd", family, memclass, archs, ex) == 0
