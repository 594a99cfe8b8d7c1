"""Streaming GGUF header reader: metadata and tensor infos only, never tensor data; strict and located."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from functools import cache
from typing import Any, BinaryIO

from facts.errors import ModelFactsError

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4
# numeric arrays up to this many elements are materialised (per-layer arrays); longer ones are skipped
MAX_MATERIALISED = 1 << 16
MAX_STRING = 1 << 20  # longer metadata strings are read as this prefix

# GGUF value types -> (struct code, size); 8 = string, 9 = array
_SCALARS: dict[int, tuple[str, int]] = {
    0: ("B", 1), 1: ("b", 1), 2: ("H", 2), 3: ("h", 2), 4: ("I", 4), 5: ("i", 4), 6: ("f", 4),
    7: ("?", 1), 10: ("Q", 8), 11: ("q", 8), 12: ("d", 8),
}
_STRING, _ARRAY = 8, 9
_U64 = struct.Struct("<Q")
_CHUNK = 8 << 20  # read the header in 8 MiB steps


@cache
def _type_sizes() -> dict[int, tuple[int, int]]:
    """ggml type id -> (block size in elements, bytes per block), from gguf's constants table (built once)."""
    from gguf.constants import GGML_QUANT_SIZES

    return {int(t): (int(b), int(s)) for t, (b, s) in GGML_QUANT_SIZES.items()}


@dataclass(frozen=True)
class SkippedArray:
    """An array too long (or of strings) to keep: its element type and length only."""

    item_type: int
    count: int


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    ggml_type: int
    offset: int  # relative to the data section
    nbytes: int


@dataclass
class GGUFHeader:
    path: str
    version: int
    file_size: int
    metadata: dict[str, Any] = field(default_factory=dict)
    tensors: list[TensorInfo] = field(default_factory=list)
    data_offset: int = 0


class _Cursor:
    """Buffered forward reader over a file that knows its absolute offset (for error messages)."""

    def __init__(self, fh: BinaryIO, source: str, file_size: int):
        self.fh, self.source, self.file_size = fh, source, file_size
        self.buf = b""
        self.base = 0  # absolute offset of buf[0]
        self.pos = 0  # index into buf

    @property
    def offset(self) -> int:
        return self.base + self.pos

    def fail(self, message: str, at: int | None = None) -> ModelFactsError:
        return ModelFactsError(self.source, f"{message} (at byte offset {self.offset if at is None else at})")

    def need(self, n: int, what: str) -> None:
        if self.pos + n <= len(self.buf):
            return
        if self.offset + n > self.file_size:
            raise self.fail(f"truncated GGUF header: {what} needs {n} bytes, the file ends at byte "
                            f"{self.file_size}")
        rest = self.buf[self.pos:]
        self.base += self.pos
        self.pos = 0
        chunk = self.fh.read(max(n - len(rest), _CHUNK))
        self.buf = rest + chunk
        if len(self.buf) < n:  # the file shrank under us
            raise self.fail(f"truncated GGUF header: {what} needs {n} bytes")

    def skip(self, n: int, what: str) -> None:
        """Move past `n` bytes without reading them (an array or string the facts do not need): memory stays
        O(1) in `n`."""
        if self.offset + n > self.file_size:
            raise self.fail(f"truncated GGUF header: {what} needs {n} bytes, the file ends at byte {self.file_size}")
        if self.pos + n <= len(self.buf):
            self.pos += n
            return
        target = self.offset + n
        self.fh.seek(target)
        self.buf, self.base, self.pos = b"", target, 0

    def unpack(self, code: str, size: int, what: str) -> Any:
        self.need(size, what)
        value = struct.unpack_from("<" + code, self.buf, self.pos)[0]
        self.pos += size
        return value

    def u32(self, what: str) -> int:
        return self.unpack("I", 4, what)

    def u64(self, what: str) -> int:
        return self.unpack("Q", 8, what)

    def string(self, what: str) -> str:
        at = self.offset
        n = self.u64(f"length of {what}")
        if n > self.file_size - self.offset:
            raise self.fail(f"truncated or corrupt GGUF header: {what}: a string of {n} bytes runs past the end "
                            f"of the file ({self.file_size} bytes)", at)
        if n > MAX_STRING:  # no fact needs it whole (a chat template is ~10 KB): its prefix, the rest skipped
            self.need(MAX_STRING, what)
            raw = self.buf[self.pos:self.pos + MAX_STRING]
            self.skip(n, what)
            return raw.decode("utf-8", errors="ignore")
        self.need(n, what)
        raw = self.buf[self.pos:self.pos + n]
        self.pos += n
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise self.fail(f"{what}: not valid UTF-8 ({err.reason})", at) from None

    def skip_strings(self, count: int, what: str) -> None:
        """Skip `count` strings without decoding them (tokenizer vocabularies): a tight loop over the buffer."""
        unpack = _U64.unpack_from
        buf, pos, end = self.buf, self.pos, len(self.buf)
        i = 0
        while i < count:
            done = 0
            try:
                for done in range(count - i):  # noqa: B007 - fast path; `done` counts the strings skipped
                    nxt = pos + 8 + unpack(buf, pos)[0]
                    if nxt > end:
                        break
                    pos = nxt
                else:
                    done = count - i
            except struct.error:  # a length field crosses the end of the buffer
                pass
            i += done
            if i >= count:
                break
            self.pos = pos
            self.need(8, f"{what}[{i}]")
            n = unpack(self.buf, self.pos)[0]
            if n > self.file_size - self.offset - 8:
                raise self.fail(f"truncated or corrupt GGUF header: {what}[{i}]: a string of {n} bytes runs past the "
                               f"end of the file ({self.file_size} bytes)")
            if n > _CHUNK:  # one long string: step over it without reading it
                self.pos += 8
                self.skip(n, f"{what}[{i}]")
                i += 1
            else:
                self.need(8 + n, f"{what}[{i}]")
            buf, pos, end = self.buf, self.pos, len(self.buf)
        self.pos = pos

    def value(self, vtype: int, key: str, depth: int = 0) -> Any:
        if vtype in _SCALARS:
            code, size = _SCALARS[vtype]
            return self.unpack(code, size, key)
        if vtype == _STRING:
            return self.string(key)
        if vtype == _ARRAY:
            if depth > 2:
                raise self.fail(f"{key}: arrays nested too deeply")
            item = self.u32(f"{key} array type")
            at = self.offset
            count = self.u64(f"{key} array length")
            if item in _SCALARS:
                code, size = _SCALARS[item]
                if count * size > self.file_size - self.offset:
                    raise self.fail(f"{key}: array of {count} items runs past the end of the file", at)
                if count > MAX_MATERIALISED:
                    self.skip(count * size, key)
                    return SkippedArray(item, count)
                self.need(count * size, key)
                values = struct.unpack_from(f"<{count}{code}", self.buf, self.pos)
                self.pos += count * size
                return tuple(values)
            if item == _STRING:
                if count > self.file_size:
                    raise self.fail(f"{key}: array of {count} strings cannot fit in the file", at)
                self.skip_strings(count, key)
                return SkippedArray(item, count)
            if item == _ARRAY:
                if count > 4096:
                    raise self.fail(f"{key}: nested array of {count} items is not supported", at)
                return tuple(self.value(_ARRAY, key, depth + 1) for _ in range(count))
            raise self.fail(f"{key}: unknown array item type {item}", at)
        raise self.fail(f"{key}: unknown value type {vtype}")


def read_header(path: str | os.PathLike[str]) -> GGUFHeader:
    """Parse a GGUF file's header; raise ModelFactsError (with byte offset) on anything malformed."""
    source = os.fspath(path)
    try:
        fh = open(source, "rb")  # noqa: SIM115 - closed below
    except OSError as err:
        raise ModelFactsError(source, f"cannot open: {err.strerror or err}") from err
    with fh:
        file_size = os.fstat(fh.fileno()).st_size
        cur = _Cursor(fh, source, file_size)
        if file_size < 4:
            raise ModelFactsError(source, f"not a GGUF file: only {file_size} bytes")
        cur.need(4, "magic")
        magic = cur.buf[:4]
        if magic != GGUF_MAGIC:
            raise ModelFactsError(source, f"not a GGUF file: magic {magic!r} at byte offset 0, expected b'GGUF'")
        cur.pos = 4
        version = cur.u32("version")
        if version in (1 << 24, 2 << 24, 3 << 24):
            raise cur.fail("big-endian GGUF files are not supported", 4)
        if version not in (2, 3):
            raise cur.fail(f"unsupported GGUF version {version} (expected 2 or 3)", 4)
        n_tensors = cur.u64("tensor count")
        n_kv = cur.u64("metadata count")
        if n_tensors > 10_000_000 or n_tensors * 24 > file_size:
            raise cur.fail(f"tensor count {n_tensors} needs at least {n_tensors * 24} header bytes but the file "
                           f"has {file_size} (truncated or corrupt)", 8)
        if n_kv > 1_000_000 or n_kv * 12 > file_size:
            raise cur.fail(f"metadata count {n_kv} needs at least {n_kv * 12} header bytes but the file has "
                           f"{file_size} (truncated or corrupt)", 16)
        header = GGUFHeader(source, version, file_size)
        for i in range(n_kv):
            key = cur.string(f"metadata[{i}] key")
            vtype = cur.u32(f"{key} value type")
            header.metadata[key] = cur.value(vtype, key)
        sizes = _type_sizes()
        for i in range(n_tensors):
            at = cur.offset
            name = cur.string(f"tensor[{i}] name")
            n_dims = cur.u32(f"{name} dimension count")
            if not 1 <= n_dims <= MAX_DIMS:
                raise cur.fail(f"tensor {name!r}: {n_dims} dimensions (1..{MAX_DIMS} allowed)", at)
            shape = tuple(cur.u64(f"{name} dimension") for _ in range(n_dims))
            gtype = cur.u32(f"{name} type")
            offset = cur.u64(f"{name} offset")
            if gtype not in sizes:
                raise cur.fail(f"tensor {name!r}: unknown ggml type {gtype}", at)
            block, type_size = sizes[gtype]
            n = 1
            for d in shape:
                n *= d
            if shape[0] % block:
                raise cur.fail(f"tensor {name!r}: first dimension {shape[0]} is not a multiple of the "
                               f"block size {block}", at)
            header.tensors.append(TensorInfo(name, shape, gtype, offset, n // block * type_size))
        align = header.metadata.get("general.alignment", DEFAULT_ALIGNMENT)
        if not isinstance(align, int) or align <= 0 or align & (align - 1):
            raise ModelFactsError(source, f"general.alignment must be a power of two, got {align!r}")
        end = cur.offset
        header.data_offset = (end + align - 1) // align * align
        for t in header.tensors:
            stop = header.data_offset + t.offset + t.nbytes
            if stop > file_size:
                raise ModelFactsError(
                    source, f"truncated GGUF file: tensor {t.name!r} ends at byte {stop} but the file has "
                            f"{file_size} bytes")
        return header
