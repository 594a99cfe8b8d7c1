"""Errors of the facts package: one root, leaves that also inherit the matching builtin.

Every error here is about a user's input (a document, a model spec): exit code 2, with the source and
one line per problem. A bug in `facts` surfaces as any other exception (exit 3).
"""

from __future__ import annotations

from typing import Any


class FactsError(Exception):
    """Root of every error raised by `facts`."""

    exit_code = 2
    code = "facts"
    location: str | None = None

    def records(self) -> list[dict[str, Any]]:
        """The error as `errors[]` entries of a JSON envelope."""
        return [{"code": self.code, "message": str(self), "location": self.location}]


class FactsInputError(FactsError, ValueError):
    """A user's document is malformed or of the wrong kind. `problems` holds one line per problem."""

    code = "invalid_input"

    def __init__(self, source: str, problems: list[str] | tuple[str, ...], kind: str | None = None):
        self.source = source
        self.location = source
        self.problems = tuple(problems)
        self.kind = kind  # the kind of document that was expected, e.g. "system-info"
        head = f"{source}: not a valid {kind} document" if kind else f"{source}: invalid input"
        super().__init__(head + "".join(f"\n  {p}" for p in self.problems))

    def records(self) -> list[dict[str, Any]]:
        return [{"code": self.code, "message": p, "location": self.source} for p in self.problems] or \
            super().records()


class ModelFactsError(FactsError, ValueError):
    """A model spec or file could not be read (corrupt / truncated / not GGUF / unknown name)."""

    code = "model_facts"

    def __init__(self, source: str, message: str):
        self.source = source
        self.location = source
        self.message = message
        super().__init__(f"{source}: {message}")
