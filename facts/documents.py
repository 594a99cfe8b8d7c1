"""Reading a user's document (a file or stdin) safely: a size cap, BOM / UTF-16 decoding, kind sniffing.

Every document the tool accepts goes through `read_document`, so each parser starts from text that is
bounded in size, decoded the same way (UTF-8 with or without a BOM, UTF-16 with a BOM as PowerShell's `>`
writes it) and not obviously some other kind of file (a GGUF model given as system-info is named at once).
"""

from __future__ import annotations

import codecs
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

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


# ---- JSON ---------------------------------------------------------------------------------------------------

MAX_DEPTH = 64  # a Lemonade system-info nests 5 levels, a bench file 6; nothing we read needs more
MAX_INT = 2**63  # no count, size or rate we read comes near it


class JSONProblem(ValueError):
    """Why a JSON text cannot be accepted: `where` is `line L column C` or a JSON path (`$.devices.cpu`)."""

    def __init__(self, where: str, message: str, line: int | None = None, column: int | None = None) -> None:
        self.where, self.message, self.line, self.column = where, message, line, column
        self.end: int | None = None  # parse_json_at: where the refused value ends (reading can go on there)
        super().__init__(f"{where}: {message}")

    def location(self, label: str) -> str:
        """`label:LINE:COL` for invalid JSON, else `label: $.path`."""
        return f"{label}:{self.line}:{self.column}" if self.line is not None else f"{label}: {self.where}"

    def at(self, label: str) -> str:
        """`label:LINE:COL: message`, or `label: $.path: message`."""
        return f"{self.location(label)}: {self.message}"


class _Bad:
    """A number parsed from the text that no fact can hold (kept as text until the walk names its path)."""

    def __init__(self, text: str) -> None:
        self.text = text


def _number(text: str) -> Any:
    if len(text) > 20:  # more digits than 2**63 has: refused without converting (Python limits int() anyway)
        return _Bad(text)
    value = int(text)
    return value if abs(value) <= MAX_INT else _Bad(text)


def _float(text: str) -> Any:
    value = float(text)
    return value if value - value == 0 else _Bad(text)  # inf from 1e999


def _constant(text: str) -> Any:
    return _Bad(text)  # NaN, Infinity, -Infinity: Python accepts them, JSON does not


def _path(parts: list[Any]) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def _show(text: str) -> str:
    return text if len(text) <= 24 else f"{text[:12]}…({len(text):,} characters)"


_DECODER = json.JSONDecoder(parse_int=_number, parse_float=_float, parse_constant=_constant)


def parse_json(text: str) -> Any:
    """JSON text as Python values, refusing with JSONProblem what no document of ours may hold: nesting deeper
    than MAX_DEPTH, integers beyond +-2**63, numbers that are not finite (1e999, NaN, Infinity) and lone
    surrogates (`"\\ud800"`) in keys or strings; invalid JSON with its line and column."""
    data, _ = _decoded(lambda: (_DECODER.decode(text), len(text)))
    return data


def parse_json_at(text: str, pos: int) -> tuple[Any, int]:
    """parse_json of the one value starting at `pos` (a stream of values, e.g. a JSON array read item by item):
    (value, end). A JSONProblem with an `end` refuses a value that was read whole (go on from `end`); without
    one the text cannot be read on from `pos`."""
    return _decoded(lambda: _DECODER.raw_decode(text, pos))


def _decoded(decode: Callable[[], tuple[Any, int]]) -> tuple[Any, int]:
    try:
        data, end = decode()
    except json.JSONDecodeError as err:
        raise JSONProblem(f"line {err.lineno} column {err.colno}", f"invalid JSON: {err.msg}", err.lineno,
                          err.colno) from None
    except RecursionError:
        raise JSONProblem("(document)", f"nested more than {MAX_DEPTH} levels deep") from None
    try:
        _check(data)
    except JSONProblem as err:
        err.end = end
        raise
    return data, end


def _check(data: Any) -> None:
    """What parse_json refuses in a decoded value (JSONProblem naming its JSON path)."""
    stack: list[tuple[Any, list[Any]]] = [(data, [])]
    while stack:
        node, here = stack.pop()
        if len(here) > MAX_DEPTH:
            raise JSONProblem(_path(here[:3]) + "…", f"nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, dict):
            for key, value in node.items():
                _check_string(key, here + [key], "key")
                stack.append((value, here + [key]))
        elif isinstance(node, list):
            stack.extend((value, here + [i]) for i, value in enumerate(node))
        elif isinstance(node, str):
            _check_string(node, here, "string")
        elif isinstance(node, _Bad):
            raise JSONProblem(_path(here), f"the number {_show(node.text)} is out of range (integers up to "
                                           "2**63, finite numbers only)")


def _check_string(text: str, here: list[Any], what: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise JSONProblem(_path(here[:-1]) + " (a key)" if what == "key" else _path(here),
                          f"the {what} holds a lone surrogate (\\u{ord(text[err.start]):04x}) at character "
                          f"{err.start}: not valid Unicode") from None
