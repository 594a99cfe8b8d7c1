"""The sd-cpp recipe: Lemonade's backend and an empty sdcpp_args with the defaults alone; memory flags so an image
model fits a 16 GB card; Lemonade's own Vulkan flags and a model's registry args are never lost or doubled."""

from __future__ import annotations

import pytest

from engine.errors import DoesNotFitError
from engine.recipes import get
from engine.recipes.sdcpp import RESERVED_FLAGS
from engine.recommend import recommend
from engine.rulebook import bundled_root, load_rulebook
from facts import sd_memory
from facts.registry import load_registry, resolve_model_spec
from tests.support import machines

DEFAULTS = load_rulebook(bundled_root() / "defaults")
SD_MODELS = sorted(n for n, e in load_registry().items() if e.get("recipe") == "sd-cpp")


@pytest.mark.parametrize("memory_fit", [False, True])
@pytest.mark.parametrize("name", machines.SIX)
def test_defaults_alone_are_lemonades_behaviour(name, memory_fit):
    hw = machines.facts(name)
    want = machines.document(name)["recipes"]["sd-cpp"]["default_backend"]
    for model in SD_MODELS:
        rec = recommend(hw, resolve_model_spec(model), rulebook=DEFAULTS, memory_fit=memory_fit)
        assert rec.recipe_options() == {"sd-cpp_backend": want, "sdcpp_args": ""}


def test_a_model_bigger_than_a_16gb_card_is_offloaded_and_segmented():
    rec = recommend(machines.cuda_16gb_linux(), resolve_model_spec("Flux-2-Klein-9B-GGUF"))  # 19 GB of weights
    assert rec.recipe_options() == {"sd-cpp_backend": "cuda",
                                    "sdcpp_args": "--offload-to-cpu --vae-tiling --diffusion-fa --max-vram -1"}
    assert rec.decisions["sdcpp_offload_to_cpu"].rule_id == "family-sdcpp-discrete-offload"
    # the same model fits a 24 GB card as it is: only CUDA's faster flash attention
    big = recommend(machines.facts("rtx-4090-desktop-linux.json"), resolve_model_spec("Flux-2-Klein-9B-GGUF"))
    assert big.recipe_options()["sdcpp_args"] == "--diffusion-fa"


def test_lemonades_vulkan_flags_are_not_doubled():
    rec = recommend(machines.rdna4_16gb_linux(), resolve_model_spec("Flux-2-Klein-9B-GGUF"))
    assert rec.recipe_options() == {"sd-cpp_backend": "vulkan", "sdcpp_args": "--offload-to-cpu --max-vram -1"}
    assert rec.decisions["sdcpp_vae_tiling"].rule_id == "sdcpp-lemonade-vulkan"


def test_the_registrys_own_args_survive_a_non_empty_sdcpp_args():
    # Qwen-Image's registry recipe_options carry "--diffusion-fa --offload-to-cpu"; a request's sdcpp_args
    # replaces the model's, so whatever we render must still hold them
    own = load_registry()["Qwen-Image-GGUF"]["recipe_options"]["sdcpp_args"].split()
    rec = recommend(machines.facts("rtx-4090-desktop-linux.json"), resolve_model_spec("Qwen-Image-GGUF"))
    args = rec.recipe_options()["sdcpp_args"].split()
    assert set(own) <= set(args) and len(args) == len(set(args))
    # with nothing of ours to add, the model's own args stay Lemonade's to apply
    strix = recommend(machines.facts("strix-halo-128gb-linux.json"), resolve_model_spec("Qwen-Image-GGUF"))
    assert strix.recipe_options()["sdcpp_args"] == ""


def test_weights_are_converted_only_when_they_fit_nowhere_else():
    small = machines.small_cpu_linux()  # 7.7 GB of RAM, no GPU
    rec = recommend(small, resolve_model_spec("SD-1.5"))
    assert rec.recipe_options()["sdcpp_args"] == "--type q8_0"
    d = rec.decisions["sdcpp_weight_type"]
    assert (d.rule_id, d.chain[0].rule_id) == ("sdcpp-memory-fit", "family-sdcpp-weight-type-last-resort")
    assert any(e.op == "choose" and "fit neither GPU nor RAM" in e.message for e in rec.trace)
    with pytest.raises(DoesNotFitError, match="does not fit"):  # Q8_0 already, 19 GB: said loudly, exit 2
        recommend(small, resolve_model_spec("Flux-2-Klein-9B-GGUF"))
    quantised = recommend(small, resolve_model_spec("Flux-2-Klein-9B-GGUF"), force=True)
    assert quantised.recipe_options()["sdcpp_args"] == "" and quantised.warnings
    assert any("DOES NOT FIT" in e.message for e in quantised.trace if e.op == "note")
    roomy = recommend(machines.facts("cpu-only-linux.json"), resolve_model_spec("SD-1.5"))
    assert "--type" not in roomy.recipe_options()["sdcpp_args"]


def test_compute_grows_with_the_models_default_resolution():
    hw = machines.facts("rtx-4090-desktop-linux.json")
    xl = sd_memory.fit(hw, resolve_model_spec("SDXL-Base-1.0"))  # 1024x1024 by default
    sd15 = sd_memory.fit(hw, resolve_model_spec("SD-1.5"))  # 512x512
    assert sd_memory.resolution(resolve_model_spec("SDXL-Base-1.0")) == (1024, 1024)
    assert xl.compute - sd15.compute == int(sd_memory.COMPUTE_PER_MPIX * 0.75)


def test_render_never_emits_a_reserved_flag_and_maps_free_vram_to_minus_one():
    render = get("sd-cpp").render
    assert render({"backend": "rocm", "sdcpp_max_vram": "free-vram", "sdcpp_weight_type": "q4_K"}) == {
        "sd-cpp_backend": "rocm", "sdcpp_args": "--max-vram -1 --type q4_K"}
    assert render({"backend": "cpu", "sdcpp_max_vram": 6, "sdcpp_weight_type": "auto"})["sdcpp_args"] == \
        "--max-vram 6"
    assert {"-m", "--diffusion-model", "--llm", "--vae", "-v", "--listen-port"} <= RESERVED_FLAGS
