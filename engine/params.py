"""The typed parameter vocabulary: every recipe's parameters in one union, checked the same way everywhere.

Each recipe module (engine/recipes/) owns its parameters; this module joins them so that rules, overrides
and the context can be validated by name, and says which backends each recipe has.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any

from engine.recipes import BACKENDS, COMMON, RECIPES, ParamSpec

if TYPE_CHECKING:
    from pydantic import BaseModel

RECIPE_BACKENDS: Mapping[str, tuple[str, ...]] = MappingProxyType({n: r.backends for n, r in RECIPES.items()})
RECIPE_NAMES: tuple[str, ...] = tuple(RECIPES)


def _union() -> dict[str, ParamSpec]:
    specs: dict[str, ParamSpec] = {s.name: s for s in COMMON}
    for recipe in RECIPES.values():
        for s in recipe.specs:
            if specs.setdefault(s.name, s) is not s:
                raise AssertionError(f"parameter {s.name!r} is defined twice (recipe {recipe.name})")
    return specs


PARAMS: Mapping[str, ParamSpec] = MappingProxyType(_union())
PARAMETERS: tuple[str, ...] = tuple(PARAMS)


def recipes_with(parameter: str) -> tuple[str, ...]:
    """The recipes that resolve `parameter`."""
    return tuple(n for n, r in RECIPES.items() if parameter in r.parameters)


def _field(spec: ParamSpec) -> Any:
    from pydantic import PlainValidator, WithJsonSchema

    schema: dict[str, Any]
    if spec.is_list:
        schema = {"type": "array", "items": {"type": "string"}}
    else:
        alts: list[dict[str, Any]] = []
        if spec.is_int:
            alts.append({"type": "integer", "minimum": spec.minimum, "maximum": spec.maximum})
        if spec.is_float:
            alts.append({"type": "number", "minimum": spec.fmin, "maximum": spec.fmax})
        if spec.words:
            alts.append({"enum": list(spec.words)})
        schema = alts[0] if len(alts) == 1 else {"anyOf": alts}
    schema["description"] = spec.description
    return (Annotated[Any, PlainValidator(spec.validate), WithJsonSchema(schema)], None)


@lru_cache(maxsize=1)
def _param_values() -> type[BaseModel]:
    from pydantic import ConfigDict, create_model

    return create_model(  # type: ignore[call-overload, no-any-return]
        "ParamValues",
        __config__=ConfigDict(extra="forbid", frozen=True),
        __doc__="Parameter values a rule sets (every field optional; unknown names are errors).",
        **{s.name: _field(s) for s in PARAMS.values()},
    )


def __getattr__(name: str) -> Any:
    """`ParamValues` (the pydantic model of every parameter) is built on first use: a start that validates no
    rule file and no override does not pay for a model of ~90 fields."""
    if name == "ParamValues":
        return _param_values()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def validate_params(values: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a {parameter: value} mapping; raise pydantic.ValidationError on any bad entry."""
    model = _param_values().model_validate(dict(values))
    return {k: getattr(model, k) for k in values}


def backend_allowed(recipe: str, backend: str) -> bool:
    return backend in RECIPE_BACKENDS.get(recipe, ())


__all__ = ["BACKENDS", "PARAMETERS", "PARAMS", "RECIPE_BACKENDS", "RECIPE_NAMES", "ParamSpec",
           "backend_allowed", "recipes_with", "validate_params"]
