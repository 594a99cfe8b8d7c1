"""Reading a user's document (a file or stdin) safely: a size cap, BOM / UTF-16 decoding, kind sniffing.

Every document the tool accepts goes through `read_document`, so each parser starts from text that is
bounded in size, decoded the same way (UTF-8 with or without a BOM, UTF-16 with a BOM as PowerShell's `>`
writes it) and not obviously some other kind of file (a GGUF model given as system-info is named at once).
"""

from __future__ import annotations

import codecs
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from facts.errors import FactsInputError

MIB = 1 << 20
DEFAULT_LIMIT = 16 * MIB  # a Lemonade system-info is ~45 KB, a llama.cpp start-up log rarely 1 MB

# leading bytes of files people hand us by mistake -> what they are
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"GGUF", "a GGUF model file"),
    (b"PK\x03\x04", "a zip archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\x7fELF", "an executable (ELF)"),
    (b"MZ", "a Windows executable"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
)
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE: it starts with the same two bytes
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


@dataclass(frozen=True)
class Document:
    """A decoded document and the label errors name it by (the path, or `<stdin>`)."""

    label: str
    text: str


def _read_bounded(stream: BinaryIO, label: str, kind: str, limit: int) -> bytes:
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise FactsInputError(label, [f"larger than {limit // MIB} MiB, the limit for a {kind} document; "
                                      "is this the right file?"], kind)
    return data


def decode(data: bytes, label: str, kind: str) -> str:
    """Text of a document: a BOM picks UTF-8/16/32, else UTF-8 (invalid bytes refused with their offset)."""
    for magic, what in _MAGIC:
        if data.startswith(magic):
            raise FactsInputError(label, [f"this is {what}, not a {kind} document"], kind)
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(codec)
            except UnicodeDecodeError as err:
                raise FactsInputError(label, [f"invalid {codec} at byte {err.start}: {err.reason}"], kind) from None
    if len(data) >= 2 and (data[0] == 0) != (data[1] == 0):  # UTF-16 without a BOM: every other byte is 0
        codec = "utf-16-be" if data[0] == 0 else "utf-16-le"
        try:
            return data.decode(codec)
        except UnicodeDecodeError:
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise FactsInputError(label, [f"not UTF-8 text: invalid byte 0x{data[err.start]:02x} at offset "
                                      f"{err.start}; save the file as UTF-8"], kind) from None


def read_document(spec: str | Path, kind: str, limit: int = DEFAULT_LIMIT) -> Document:
    """Read a path or `-` (stdin) as a `kind` document (e.g. "system-info"), bounded and decoded.

    Raises FactsInputError for a file that is too large, of another kind, or not text; OSError when it
    cannot be opened (the CLI reports both as input errors).
    """
    if str(spec) == "-":
        label = "<stdin>"
        data = _read_bounded(sys.stdin.buffer, label, kind, limit)
    else:
        path = Path(spec)
        label = str(path)
        if path.is_dir():
            raise FactsInputError(label, [f"is a directory; give a {kind} file"], kind)
        with path.open("rb") as fh:
            data = _read_bounded(fh, label, kind, limit)
    return Document(label, decode(data, label, kind))
