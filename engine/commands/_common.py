"""Helpers shared by verbs: reading FILE|- inputs and printing JSON envelopes."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1


def read_input(spec: str) -> tuple[str, str]:
    """Return (source label, text) for a path or '-' (stdin)."""
    if spec == "-":
        return "<stdin>", sys.stdin.read()
    path = Path(spec)
    return str(path), path.read_text(encoding="utf-8", errors="replace")


def print_json(kind: str, payload: dict[str, Any]) -> None:
    """Print one JSON envelope on stdout: {"schema_version", "kind", ...payload}."""
    doc = {"schema_version": SCHEMA_VERSION, "kind": kind, **payload}
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n")
