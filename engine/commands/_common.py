"""Helpers shared by verbs: the `--json` flag (the envelope itself is engine.envelope)."""

from __future__ import annotations

from typing import Any

from engine.envelope import print_json

__all__ = ["add_json_flag", "print_json"]


def add_json_flag(p: Any) -> None:
    """The `--json` flag every verb that prints a result has."""
    p.add_argument("--json", action="store_true", help="print a JSON envelope instead of text")
