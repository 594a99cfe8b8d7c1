"""A property over every registry model of each non-llama.cpp recipe (FLM: FastFlowLM tags) and the six example
machines (plus four derived ones): `recommend` renders exactly that recipe's Lemonade keys and never a protected,
reserved or non-allowlisted flag; where no backend of the recipe runs, it refuses instead."""

from __future__ import annotations

import shlex

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.context import recipe_backends
from engine.errors import DoesNotFitError, RecipeUnavailableError
from engine.recipes import vllm as vllm_recipe
from engine.recipes.sdcpp import LEMONADE_VULKAN_FLAGS
from engine.recipes.sdcpp import RESERVED_FLAGS as SD_RESERVED
from engine.recipes.whispercpp import RESERVED_FLAGS as WHISPER_RESERVED
from engine.recommend import recommend
from facts.registry import load_registry, resolve_model_spec
from tests.engine.test_recipe_flm import FLM_MODELS, lemonade_accepts
from tests.support import machines

MACHINES = {name: machines.facts(name) for name in machines.SIX} | {
    "rdna4-16gb": machines.rdna4_16gb_linux(), "cuda-16gb": machines.cuda_16gb_linux(),
    "strix-point-windows": machines.strix_point_windows(), "cpu-8gb": machines.small_cpu_linux()}
SCENARIOS = ("chat", "coding", "long-context", "chat-short", "context-128k", "imagegen", "embed")
KEYS = {"vllm": {"vllm_backend", "vllm_args", "ctx_size"}, "flm": {"flm_args", "ctx_size"},
        "ryzenai-llm": {"ctx_size"}, "whispercpp": {"whispercpp_backend", "whispercpp_args"},
        "sd-cpp": {"sd-cpp_backend", "sdcpp_args"}}
BACKEND_KEY = {"vllm": "vllm_backend", "whispercpp": "whispercpp_backend", "sd-cpp": "sd-cpp_backend"}
_REG = load_registry()


def _models(recipe: str) -> list:
    if recipe == "flm":
        return list(FLM_MODELS)
    return [resolve_model_spec(n) for n in sorted(n for n, e in _REG.items() if e.get("recipe") == recipe)]


MODELS = {r: _models(r) for r in KEYS}
VLLM_VALUE_FLAGS = set(vllm_recipe.TYPED_FLAGS) | {f for f, kind in vllm_recipe.EXTRA_ARGS.items() if kind}
VLLM_FLAGS = VLLM_VALUE_FLAGS | set(vllm_recipe.EXTRA_ARGS)
SD_FLAGS = {"--offload-to-cpu", "--vae-tiling", "--diffusion-fa", "--max-vram", "--type"}


def _pairs(tokens: list[str], value_flags: set[str]) -> list[tuple[str, str | None]]:
    out, i = [], 0
    while i < len(tokens):
        flag = tokens[i]
        if flag in value_flags:
            assert i + 1 < len(tokens), f"{flag} without a value"
            out.append((flag, tokens[i + 1]))
            i += 2
        else:
            out.append((flag, None))
            i += 1
    return out


def _check(recipe: str, opts: dict, hw) -> None:
    assert set(opts) == KEYS[recipe]
    if recipe in BACKEND_KEY:
        assert opts[BACKEND_KEY[recipe]] in recipe_backends(hw, recipe)
    if "ctx_size" in opts:
        assert opts["ctx_size"] == -1 or 512 <= opts["ctx_size"] <= 1 << 20
    if recipe == "vllm":
        tokens = shlex.split(opts["vllm_args"])
        for flag, value in _pairs(tokens, VLLM_VALUE_FLAGS):
            assert flag in VLLM_FLAGS and flag not in vllm_recipe.PROTECTED_FLAGS, flag
            assert value is None or value.replace(".", "", 1).isdigit() or flag in ("--dtype", "--kv-cache-dtype")
        assert not ({"--kv-cache-memory-bytes", "--gpu-memory-utilization"} <= set(tokens))
    elif recipe == "flm":
        assert lemonade_accepts(opts["flm_args"], opts["ctx_size"])
    elif recipe == "whispercpp":
        pairs = _pairs(opts["whispercpp_args"].split(), {"-t", "-p"})
        assert all(f in ("-t", "-p", "-fa", "-nfa") and (v is None or v.isdigit()) for f, v in pairs)
        assert not {f for f, _ in pairs} & WHISPER_RESERVED
    elif recipe == "sd-cpp":
        pairs = _pairs(opts["sdcpp_args"].split(), {"--max-vram", "--type"})
        flags = [f for f, _ in pairs]
        assert set(flags) <= SD_FLAGS and not set(flags) & SD_RESERVED and len(flags) == len(set(flags))
        if opts["sd-cpp_backend"] == "vulkan":  # Lemonade passes these itself there
            assert not set(flags) & set(LEMONADE_VULKAN_FLAGS.values())


@pytest.mark.parametrize("recipe", sorted(KEYS))
def test_recipe_renders_only_its_lemonade_keys_and_allowed_flags(recipe):
    @settings(max_examples=120)
    @given(st.sampled_from(MODELS[recipe]), st.sampled_from(sorted(MACHINES)), st.sampled_from(SCENARIOS),
           st.booleans())
    def prop(model, machine, scenario, memory_fit):
        hw = MACHINES[machine]
        try:
            rec = recommend(hw, model, scenario=scenario, memory_fit=memory_fit)
        except RecipeUnavailableError as err:
            assert not recipe_backends(hw, recipe), f"{recipe} refused on {machine} though it has a backend"
            assert err.recipe == recipe
            return
        except DoesNotFitError as err:  # said loudly, exit 2; with --force the same keys render, with a warning
            assert memory_fit and err.exit_code == 2 and "does not fit" in str(err)
            rec = recommend(hw, model, scenario=scenario, memory_fit=memory_fit, force=True)
            assert rec.warnings and rec.memory.fits == "no"
        assert rec.recipe == recipe
        _check(recipe, rec.recipe_options(), hw)

    prop()


def test_every_recipe_runs_somewhere_in_the_property():
    """The property is not vacuous: each recipe has a machine here that runs it."""
    for recipe in KEYS:
        assert any(recipe_backends(hw, recipe) for hw in MACHINES.values()), recipe
