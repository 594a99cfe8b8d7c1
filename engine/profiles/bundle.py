"""The rulebook bundle: one JSON file (a TUF target) holding a rulebook's YAML files and its version.

A single file keeps a version atomic on the mirror and on the client (no archive extraction, no links, no
paths outside the directory): `{"format", "format_version", "version", "files": {"defaults/backend.yaml":
"<text>", ...}}`. `unpack` refuses anything but relative `*.yaml` paths of plain name parts, and bounds the
number of files and their size before a byte is written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from engine.errors import UsageError

FORMAT = "lemonade-autotune/rulebook-bundle"
FORMAT_VERSION = 1
MAX_FILES = 2000
MAX_BYTES = 16 * 2**20  # all files together (the shipped rulebook is ~0.5 MB)
_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")


class BundleError(UsageError):
    """A bundle that is not a well-formed rulebook bundle (nothing from it is written)."""

    code = "bundle"


@dataclass(frozen=True)
class Bundle:
    """A rulebook version: its number and its files (relative path -> text)."""

    version: int
    files: Mapping[str, str]

    def to_bytes(self) -> bytes:
        doc = {"format": FORMAT, "format_version": FORMAT_VERSION, "version": self.version,
               "files": dict(sorted(self.files.items()))}
        return json.dumps(doc, ensure_ascii=False, indent=0, sort_keys=False).encode("utf-8")

    def write(self, directory: Path) -> None:
        """Write the files below `directory` (which must not exist yet or be empty)."""
        for rel, text in self.files.items():
            dest = directory.joinpath(*rel.split("/"))
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(text, encoding="utf-8")


def check_path(rel: str) -> str | None:
    """Why `rel` is not an acceptable file name inside a bundle (None when fine)."""
    parts = rel.split("/")
    if not rel.endswith(".yaml"):
        return "only .yaml files may be in a rulebook bundle"
    if any(not _PART.fullmatch(p) for p in parts) or len(parts) > 8:
        return "a path of at most 8 plain name parts (letters, digits, _ . -; none starting with '.')"
    return None


def pack(directory: Path, version: int) -> Bundle:
    """A bundle of every `*.yaml` below `directory` (hidden files and directories skipped)."""
    if not directory.is_dir():
        raise BundleError(f"{directory}: not a directory (give the rulebook directory to publish)")
    files: dict[str, str] = {}
    for path in sorted(directory.rglob("*.yaml")):
        rel = path.relative_to(directory).as_posix()
        if any(part.startswith(".") for part in rel.split("/")):
            continue
        why = check_path(rel)
        if why:
            raise BundleError(f"{path}: {why}")
        try:
            files[rel] = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise BundleError(f"{path}: not UTF-8 text ({err.reason})") from None
    if not files:
        raise BundleError(f"{directory}: no *.yaml files (is this a rulebook directory?)")
    bundle = Bundle(version, files)
    _check_size(bundle, str(directory))
    return bundle


def _check_size(bundle: Bundle, where: str) -> None:
    if len(bundle.files) > MAX_FILES:
        raise BundleError(f"{where}: {len(bundle.files)} files; a bundle holds at most {MAX_FILES}")
    total = sum(len(t.encode("utf-8")) for t in bundle.files.values())
    if total > MAX_BYTES:
        raise BundleError(f"{where}: {total} bytes of YAML; a bundle holds at most {MAX_BYTES}")


def unpack(raw: bytes, where: str) -> Bundle:
    """The bundle in `raw`; BundleError saying what is wrong (and nothing written)."""
    if len(raw) > 2 * MAX_BYTES:
        raise BundleError(f"{where}: {len(raw)} bytes, larger than any rulebook bundle may be")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BundleError(f"{where}: not a rulebook bundle (invalid JSON: {err})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise BundleError(f"{where}: not a rulebook bundle (format is not {FORMAT!r})")
    if doc.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"{where}: bundle format_version {doc.get('format_version')!r}; this lemonade-autotune "
                          f"reads {FORMAT_VERSION} (upgrade lemonade-autotune)")
    version, files = doc.get("version"), doc.get("files")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise BundleError(f"{where}: version must be a positive integer, got {version!r}")
    if not isinstance(files, dict) or not files:
        raise BundleError(f"{where}: 'files' must be a non-empty mapping of path -> YAML text")
    for rel, text in files.items():
        why = check_path(rel) if isinstance(rel, str) else "not a string"
        if why:
            raise BundleError(f"{where}: file {rel!r}: {why}")
        if not isinstance(text, str):
            raise BundleError(f"{where}: file {rel!r}: the content must be text")
    bundle = Bundle(version, files)
    _check_size(bundle, where)
    return bundle
