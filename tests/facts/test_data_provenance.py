"""Every data file the repository carries is listed in its directory's README with its source, and a copy of
someone else's file with its sha256 (a file this project maintains says `maintained here` instead)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DIRS = ("facts/data", "engine/data", "data")
ROW = re.compile(r"^\| `([^`]+)` \|.*\| (?:`([0-9a-f]{64})`|maintained here) \|$")


def _rows(directory: Path) -> dict[str, str]:
    text = (directory / "README.md").read_text(encoding="utf-8")
    return {m.group(1): m.group(2) for line in text.splitlines() if (m := ROW.match(line.strip()))}


@pytest.mark.parametrize("directory", DIRS)
def test_each_listed_file_has_the_recorded_sha256(directory):
    rows = _rows(ROOT / directory)
    assert rows, f"{directory}/README.md lists no file"
    for name, digest in rows.items():
        if digest is None:  # maintained here: edited by reviewed commits, no upstream copy to match
            assert (ROOT / directory / name).is_file(), name
            continue
        assert hashlib.sha256((ROOT / directory / name).read_bytes()).hexdigest() == digest, name


@pytest.mark.parametrize("directory", DIRS)
def test_every_data_file_is_listed(directory):
    base = ROOT / directory
    listed = set(_rows(base))
    found = {p.relative_to(base).as_posix() for p in base.rglob("*")
             if p.is_file() and not p.name.endswith(".md") and "__pycache__" not in p.parts}
    assert found <= listed, sorted(found - listed)
