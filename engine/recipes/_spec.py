"""ParamSpec: one tunable parameter's allowed values (integer range, words, or a checked list of arguments)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic_core import PydanticCustomError

# a list parameter's checker: why `args` is not allowed for `backend` (None = any backend); empty when fine
ListCheck = Callable[[Sequence[str], "str | None"], list[str]]


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: integer or decimal range and/or allowed words (or a checked argument list), and what it
    means."""

    name: str
    description: str
    minimum: int | None = None  # integer parameters: inclusive range
    maximum: int | None = None
    words: tuple[str, ...] = ()  # allowed string values (for `backend`: every backend of every recipe)
    flag: str | None = None  # the backend's command-line flag, when the recipe renders it as one
    list_check: ListCheck | None = None  # list parameters (extra arguments): the allowlist check
    fmin: float | None = None  # decimal parameters (e.g. a memory fraction): inclusive range
    fmax: float | None = None

    @property
    def is_int(self) -> bool:
        return self.minimum is not None

    @property
    def is_float(self) -> bool:
        return self.fmin is not None

    @property
    def is_list(self) -> bool:
        return self.list_check is not None

    def allowed(self) -> str:
        """Human summary of the allowed values, e.g. "an integer 16..65536 or 'default'"."""
        if self.is_list:
            return "a list of allowlisted arguments"
        parts = []
        if self.is_int:
            parts.append(f"an integer {self.minimum}..{self.maximum}")
        if self.is_float:
            parts.append(f"a number {self.fmin}..{self.fmax}")
        if self.words:
            parts.append("one of " + ", ".join(repr(w) for w in self.words))
        return " or ".join(parts)

    def validate(self, value: Any) -> Any:
        """Return the value if allowed; raise PydanticCustomError (pydantic-style code) otherwise."""
        if self.list_check is not None:
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                raise PydanticCustomError("list_type", "Input should be a list of strings (command-line arguments)")
            problems = self.list_check(value, None)
            if problems:
                raise PydanticCustomError("extra_args", "{problems}", {"problems": "; ".join(problems)})
            return tuple(value)
        if isinstance(value, bool):
            raise PydanticCustomError("param_type", "Input should be {allowed}, not a boolean",
                                      {"allowed": self.allowed()})
        if isinstance(value, int) and self.is_int:
            if value < self.minimum:  # type: ignore[operator]
                raise PydanticCustomError("greater_than_equal", "Input should be >= {ge} ({allowed})",
                                          {"ge": self.minimum, "allowed": self.allowed()})
            if value > self.maximum:  # type: ignore[operator]
                raise PydanticCustomError("less_than_equal", "Input should be <= {le} ({allowed})",
                                          {"le": self.maximum, "allowed": self.allowed()})
            return value
        if self.is_float and isinstance(value, (int, float)) and math.isfinite(value):
            if not self.fmin <= value <= self.fmax:  # type: ignore[operator]
                code = "greater_than_equal" if value < self.fmin else "less_than_equal"  # type: ignore[operator]
                raise PydanticCustomError(code, "Input should be {allowed}, got {got}",
                                          {"allowed": self.allowed(), "got": repr(value)})
            return float(value)
        if isinstance(value, str) and value in self.words:
            return value
        if self.is_int and isinstance(value, float):
            code = "int_from_float"
        elif self.is_int and isinstance(value, str) and value.strip().lstrip("-").isdigit():
            code = "int_type"  # a quoted number: YAML gives a string
        elif self.is_int and not isinstance(value, str):
            code = "int_type"
        elif self.is_float and not isinstance(value, str):
            code = "float_type"
        else:
            code = "literal_error"
        raise PydanticCustomError(code, "Input should be {allowed}, got {got}",
                                  {"allowed": self.allowed(), "got": repr(value)})


def backend_spec(backends: tuple[str, ...]) -> ParamSpec:
    return ParamSpec("backend", "inference backend of the recipe (Lemonade's <recipe>_backend option)",
                     words=backends)


CTX_SIZE = ParamSpec("ctx_size", "context size; 'auto' = the memory fit decides (Lemonade's ctx_size option)",
                     512, 1048576, ("auto",))
