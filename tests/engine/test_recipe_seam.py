"""One engine for every recipe: each renders exactly Lemonade's option keys, carries only its own parameters,
and a recipe this machine cannot run is a clear error naming a runnable variant from the registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import DoesNotFitError, RecipeUnavailableError
from engine.recipes import RECIPES
from engine.recipes.llamacpp.flags import SPECS as LLAMA_SPECS
from engine.recommend import recommend
from facts.lemonade import from_system_info
from facts.registry import load_registry, resolve_model_spec

SYSINFO = Path(__file__).resolve().parents[1] / "fixtures" / "system-info"
SIX = ("strix-halo-128gb-linux.json", "radeon-780m-laptop-windows.json", "rx-7900-xtx-desktop-linux.json",
       "rtx-4090-desktop-linux.json", "apple-m3-max-64gb-macos.json", "cpu-only-linux.json")
HW = {name: from_system_info((SYSINFO / name).read_text(), source=name) for name in SIX}
# Lemonade's per-recipe option keys that carry performance knobs (research/lemonade.md §2.2)
KEYS = {
    "llamacpp": {"llamacpp_backend", "llamacpp_args", "ctx_size"},
    "vllm": {"vllm_backend", "vllm_args", "ctx_size"},
    "flm": {"flm_args", "ctx_size"},
    "ryzenai-llm": {"ctx_size"},
    "whispercpp": {"whispercpp_backend", "whispercpp_args"},
    "sd-cpp": {"sd-cpp_backend", "sdcpp_args"},
}
LLAMA_ONLY = {s.name for s in LLAMA_SPECS}
REGISTRY = load_registry()


def test_every_recipe_lemonade_tunes_has_a_module_and_the_table_above():
    assert set(RECIPES) == set(KEYS)


@pytest.mark.parametrize("hw_name", SIX)
def test_every_registry_model_renders_its_recipes_keys_or_says_why_it_cannot_run(hw_name):
    hw, seen = HW[hw_name], set()
    for name, entry in REGISTRY.items():
        recipe = entry.get("recipe")
        model = resolve_model_spec(name)
        try:
            rec = recommend(hw, model)
        except DoesNotFitError as err:  # too big for this machine: said, with the numbers (exit 2)
            assert err.exit_code == 2 and "does not fit" in str(err) and recipe in RECIPES, name
            continue
        except RecipeUnavailableError as err:
            assert err.exit_code == 2 and str(err)
            if recipe in RECIPES:  # a recipe we tune that cannot run here: say what it needs
                assert "needs" in str(err), name
                if err.variant is not None:  # the named variant really runs here
                    assert recommend(hw, resolve_model_spec(err.variant)).recipe == REGISTRY[err.variant]["recipe"]
            else:
                assert "not one lemonade-autotune tunes" in str(err), name
            continue
        seen.add(recipe)
        assert set(rec.recipe_options()) == KEYS[recipe], name
        if recipe != "llamacpp":
            assert not set(rec.decisions) & LLAMA_ONLY, name  # no llama.cpp parameter
            assert not any(e.rule_id == "memory-fit" for e in rec.trace), name  # no llama.cpp memory figure
            assert "cells ×" not in " ".join(e.message for e in rec.trace), name  # llama.cpp KV cells
    assert "llamacpp" in seen


def test_an_npu_model_on_a_machine_without_one_names_the_gguf_build():
    hw = HW["rtx-4090-desktop-linux.json"]
    with pytest.raises(RecipeUnavailableError) as err:
        recommend(hw, resolve_model_spec("Phi-4-mini-instruct-Hybrid"))
    assert "ryzenai-llm needs an AMD XDNA2 NPU on Windows" in str(err.value)
    assert err.value.variant == "Phi-4-mini-instruct-GGUF"


def test_a_recipe_we_do_not_tune_is_named_as_such():
    with pytest.raises(RecipeUnavailableError, match="'kokoro' is not one lemonade-autotune tunes"):
        recommend(HW["cpu-only-linux.json"], resolve_model_spec("kokoro-v1") if "kokoro-v1" in REGISTRY else
                  resolve_model_spec(next(n for n, e in REGISTRY.items() if e.get("recipe") == "kokoro")))
