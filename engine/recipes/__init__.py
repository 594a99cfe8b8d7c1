"""Lemonade recipes behind one small protocol (`base.Recipe`), one module each (the way psutil picks its
platform module): `llamacpp`, `vllm`, `flm`, `ryzenai` (ryzenai-llm), `whispercpp` and `sdcpp` (sd-cpp), each with
its vocabulary, guards, memory fit where the recipe's memory is predictable, and Lemonade's exact option keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from engine.errors import RecipeUnavailableError
from engine.recipes._spec import CTX_SIZE, ParamSpec, backend_spec
from engine.recipes.base import AUTO_CTX, Recipe
from engine.recipes.flm import Flm
from engine.recipes.llamacpp import LlamaCpp
from engine.recipes.ryzenai import RyzenAiLlm
from engine.recipes.sdcpp import SdCpp
from engine.recipes.vllm import Vllm
from engine.recipes.whispercpp import WhisperCpp
from facts.backends import MATRIX

RECIPES: Mapping[str, Recipe] = MappingProxyType({r.name: r for r in (
    LlamaCpp(), Vllm(), Flm(), RyzenAiLlm(), WhisperCpp(), SdCpp())})
assert set(RECIPES) == set(MATRIX), "one recipe module per recipe of facts.backends.MATRIX"
BACKENDS: tuple[str, ...] = tuple(dict.fromkeys(b for r in RECIPES.values() for b in r.backends))
BACKEND = backend_spec(BACKENDS)
COMMON: tuple[ParamSpec, ...] = (BACKEND, CTX_SIZE)


def get(name: str) -> Recipe:
    """The recipe module for a Lemonade recipe name; RecipeUnavailableError for one we do not tune."""
    recipe = RECIPES.get(name)
    if recipe is None:
        raise RecipeUnavailableError(name, f"recipe {name!r} is not one lemonade-autotune tunes (tuned: "
                                           f"{', '.join(RECIPES)}); Lemonade's own defaults apply to it")
    return recipe


__all__ = ["AUTO_CTX", "BACKEND", "BACKENDS", "COMMON", "RECIPES", "ParamSpec", "Recipe", "get"]
