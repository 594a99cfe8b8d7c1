"""Shared helpers for the detect tests: fixture paths and real fake-tool scripts on a private PATH."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "detect"


def fake_tool(bindir: Path, name: str, body: str) -> Path:
    """An executable shell script `name` in `bindir` running `body`."""
    bindir.mkdir(parents=True, exist_ok=True)
    script = bindir / name
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return script


def printing_tool(bindir: Path, name: str, fixture: Path) -> Path:
    """A fake `name` that prints the captured `fixture` verbatim, whatever its arguments."""
    return fake_tool(bindir, name, f"exec /bin/cat '{fixture}'")


def copy_tree(name: str, dest: Path) -> Path:
    """A writable copy of fixture tree `name` (symlinks kept as links)."""
    target = dest / name
    shutil.copytree(FIXTURES / name, target, symlinks=True)
    return target
