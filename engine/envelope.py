"""The JSON envelope every machine-readable answer comes in (CLI `--json`, the server): docs/json.md."""

from __future__ import annotations

import json
import sys
from typing import Any

from engine._version import __version__

SCHEMA_VERSION = 2  # 2: engine_version and errors[] in every envelope; lint counts under `counts`


def envelope(kind: str, payload: dict[str, Any], errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """{"schema_version", "kind", "engine_version", ...payload, "errors": [...]} (docs/json.md)."""
    return {"schema_version": SCHEMA_VERSION, "kind": kind, "engine_version": __version__, **payload,
            "errors": list(errors or ())}


def print_json(kind: str, payload: dict[str, Any], errors: list[dict[str, Any]] | None = None) -> None:
    """Print one JSON envelope on stdout."""
    sys.stdout.write(json.dumps(envelope(kind, payload, errors), indent=2, default=str) + "\n")
