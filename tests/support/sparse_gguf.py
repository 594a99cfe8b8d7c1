"""A GGUF header whose metadata holds one huge value, written as a sparse file (the huge part is a hole, so a
2 GiB header costs no disk): the shape a bit-flipped length field gives a real model file."""

from __future__ import annotations

import struct
from pathlib import Path

_U8, _STRING, _ARRAY = 0, 8, 9


def _str(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def write(path: Path, kind: str, size: int) -> Path:
    """kind: `u8-array` (an array of `size` bytes), `string` (one string value of `size` bytes) or
    `string-array` (an array holding one string of `size` bytes). general.architecture follows the huge value,
    so a reader that skips it correctly still finds the architecture."""
    head = b"GGUF" + struct.pack("<IQQ", 3, 0, 2)
    if kind == "u8-array":
        head += _str("huge.array") + struct.pack("<IIQ", _ARRAY, _U8, size)
    elif kind == "string":
        head += _str("huge.string") + struct.pack("<IQ", _STRING, size)
    elif kind == "string-array":
        head += _str("huge.strings") + struct.pack("<IIQQ", _ARRAY, _STRING, 1, size)
    else:
        raise ValueError(kind)
    tail = _str("general.architecture") + struct.pack("<I", _STRING) + _str("llama")
    with open(path, "wb") as fh:
        fh.write(head)
        fh.seek(len(head) + size)  # the hole
        fh.write(tail)
        fh.write(b"\0" * 64)
    return path
