"""Errors of the facts package: one root, leaves that also inherit the matching builtin."""

from __future__ import annotations


class FactsError(Exception):
    """Root of every error raised by `facts`."""


class FactsInputError(FactsError, ValueError):
    """A user's document is malformed or of the wrong kind. `problems` holds one line per problem."""

    def __init__(self, source: str, problems: list[str] | tuple[str, ...], kind: str | None = None):
        self.source = source
        self.problems = tuple(problems)
        self.kind = kind  # the kind of document that was expected, e.g. "system-info"
        head = f"{source}: not a valid {kind} document" if kind else f"{source}: invalid input"
        super().__init__(head + "".join(f"\n  {p}" for p in self.problems))


class ModelFactsError(FactsError, ValueError):
    """A model spec or file could not be read (corrupt / truncated / not GGUF / unknown name)."""

    def __init__(self, source: str, message: str):
        self.source = source
        self.message = message
        super().__init__(f"{source}: {message}")
