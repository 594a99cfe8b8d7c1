"""Run the `engine` CLI as a user does: a real subprocess (`python -m engine`) from the repository root, with
the remote rulebook off so no test reaches for the network."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_engine(*args: str, env: Mapping[str, str] | None = None, stdin: str | None = None,
               timeout: float = 300) -> subprocess.CompletedProcess:
    full = {**os.environ, "LEMONADE_AUTOTUNE_REMOTE": "0", **(env or {})}
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, env=full, input=stdin,
                          stdin=subprocess.DEVNULL if stdin is None else None)
