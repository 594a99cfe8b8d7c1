"""Helpers shared by verbs: reading FILE|- inputs and printing JSON envelopes."""

from __future__ import annotations

import json
import sys
from typing import Any

from engine._version import __version__

SCHEMA_VERSION = 2  # 2: engine_version and errors[] in every envelope; lint counts under `counts`


def add_json_flag(p: Any) -> None:
    """The `--json` flag every verb that prints a result has."""
    p.add_argument("--json", action="store_true", help="print a JSON envelope instead of text")


def envelope(kind: str, payload: dict[str, Any], errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """{"schema_version", "kind", "engine_version", ...payload, "errors": [...]} (docs/json.md)."""
    return {"schema_version": SCHEMA_VERSION, "kind": kind, "engine_version": __version__, **payload,
            "errors": list(errors or ())}


def print_json(kind: str, payload: dict[str, Any], errors: list[dict[str, Any]] | None = None) -> None:
    """Print one JSON envelope on stdout."""
    sys.stdout.write(json.dumps(envelope(kind, payload, errors), indent=2, default=str) + "\n")
