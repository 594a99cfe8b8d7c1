"""Every error the engine raises: user errors (exit 2: where and what to do) apart from internal ones (exit 3).

One root, `EngineError`; a user's bad input is a `UserError`, a bug in lemonade-autotune an `InternalError`.
Leaves also inherit the matching builtin (`UsageError` is a `ValueError`). Each error turns into records
`{code, message, location}` for the JSON envelope's `errors[]` list.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


class EngineError(Exception):
    """Root of every error raised by `engine`."""

    exit_code = 3
    code = "internal"
    location: str | None = None

    def records(self) -> list[dict[str, Any]]:
        """The error as `errors[]` entries of the JSON envelope."""
        return [{"code": self.code, "message": str(self), "location": self.location}]


class UserError(EngineError):
    """A user's input is wrong or cannot be served here; the message says where and what to do (exit 2)."""

    exit_code = 2
    code = "input"


class InternalError(EngineError):
    """A bug in lemonade-autotune, never the user's input (exit 3: report it)."""

    exit_code = 3
    code = "internal"


class UsageError(UserError, ValueError):
    """Bad command-line usage or a bad user-supplied value."""

    code = "usage"


@dataclass(frozen=True)
class LocatedError:
    """One problem in a rulebook file, with where it is and a pydantic-style code."""

    path: str  # file as given / relative to the working directory
    line: int
    col: int
    loc: str  # field path, e.g. "rules[2].set.ctx_size" ("" for the whole document)
    code: str
    message: str

    def __str__(self) -> str:
        where = f" {self.loc}:" if self.loc else ""
        return f"{self.path}:{self.line}:{self.col}{where} {self.message} [{self.code}]"


class RulebookError(UserError, ValueError):
    """A rulebook with errors; `.errors` lists every LocatedError. Nothing from it is activated."""

    code = "rulebook"

    def __init__(self, errors: Iterable[LocatedError]) -> None:
        self.errors: list[LocatedError] = list(errors)
        n = len(self.errors)
        lines = "\n".join(str(e) for e in self.errors)
        super().__init__(f"rulebook has {n} error{'s' if n != 1 else ''}:\n{lines}")

    def records(self) -> list[dict[str, Any]]:
        return [{"code": e.code, "message": (f"{e.loc}: " if e.loc else "") + e.message,
                 "location": f"{e.path}:{e.line}:{e.col}"} for e in self.errors]


class RulebookReadError(RulebookError):
    """A rulebook root or file that cannot be read at all (missing, permission denied)."""


class FactValueError(UserError, ValueError):
    """A fact no rule can be tested against faithfully (a string over the limit or not valid Unicode)."""

    code = "fact_value"


class ResolutionError(UserError, LookupError):
    """The rulebook leaves a parameter without any value (`engine lint` reports it first)."""

    code = "unresolved"

    def __init__(self, parameter: str, message: str):
        self.parameter = parameter
        super().__init__(f"parameter {parameter!r}: {message}")


class BackendUnavailableError(UserError):
    """A user override asks for a backend that is not available for the recipe here."""

    code = "backend_unavailable"

    def __init__(self, backend: str, recipe: str, available: Iterable[str]):
        self.backend, self.recipe, self.available = backend, recipe, tuple(sorted(available))
        super().__init__(f"backend {backend!r} is not available for recipe {recipe!r} on this machine "
                         f"(available: {', '.join(self.available) or 'none'})")


class RecipeUnavailableError(UserError):
    """The model's recipe cannot run on this machine (or is not one lemonade-autotune tunes)."""

    code = "recipe_unavailable"

    def __init__(self, recipe: str, message: str, variant: str | None = None):
        self.recipe, self.variant = recipe, variant
        hint = f"; a variant that runs here: {variant!r}" if variant else ""
        super().__init__(message + hint)


class DoesNotFitError(UserError):
    """The model does not fit this machine even at the smallest context (or a user's value makes it not fit);
    the message gives the numbers and what would make it fit. `--force` turns it into a warning."""

    code = "does_not_fit"

    def __init__(self, message: str, suggestions: Iterable[str] = ()):
        self.suggestions = tuple(suggestions)
        more = "".join(f"\n  - {s}" for s in self.suggestions)
        super().__init__(message + ("\nwhat would make it fit:" + more if more else "") +
                         "\n(--force keeps the configuration and reports this as a warning)")


class EngineUnavailable(UserError, RuntimeError):
    """The requested evaluator cannot run here (durable-rules not importable)."""

    code = "engine_unavailable"


class CompileError(UserError, ValueError):
    """A rulebook durable-rules cannot hold (its capacity limits); `engine lint` reports the same."""

    code = "durable_capacity"

    def __init__(self, problems: list[str], rules: list[Any] | None = None):
        self.problems = problems
        self.rules = rules or []  # the rules concerned, when known (lint locates its findings with them)
        super().__init__("cannot compile the rulebook for durable-rules:\n" + "\n".join(problems))


class ContextError(InternalError, ValueError):
    """A context that is not flat and typed (None, NaN, a string number, an unknown key)."""

    code = "context"


class ParamError(InternalError, ValueError):
    """A resolved parameter value outside the vocabulary at render time."""

    code = "param"


INTERNAL_HINT = "this is a bug in lemonade-autotune, not in your input: please report it with the output above"
