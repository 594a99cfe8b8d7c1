"""recipe_options.json while lemond is stopped: read and checked; written whole and atomically (temp file + fsync
+ rename + directory fsync) under a file lock, after a backup of what was there, with the ownership record of
what lemonade-autotune wrote (so undo can restore the original bytes, or take back exactly our values).

The record and the backups live in `<config dir>/lemonade-autotune/` (lemond never reads that directory). The
record is written before the options file: a crash between the two leaves a record that claims values the file
does not hold, which undo and re-apply both treat as "not ours" — never the other way round.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import UserError
from engine.lemonade.paths import LemonadeHome, read_json_file
from facts.documents import JSONProblem, parse_json

RECORD = "owned.json"
BACKUPS = "backups"
LOCK = "lock"
KEEP_BACKUPS = 10
RECORD_VERSION = 1


class LemondRunning(UserError):
    """A lemond serves this config dir: its file must not be edited behind its back."""

    code = "lemond_running"


class LockTimeout(UserError):
    code = "locked"


def dump(data: Any) -> bytes:
    """lemond's own format (nlohmann dump(2)): 2-space indent, keys sorted, UTF-8, no trailing newline."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False).encode("utf-8")


def sha256(raw: bytes | None) -> str | None:
    return hashlib.sha256(raw).hexdigest() if raw is not None else None


def _fsync_dir(path: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` by `data` so that a reader (or a crash) sees the old bytes or the new, never a mix.
    The file keeps its permission bits and, where we may, its owner."""
    old = None
    with contextlib.suppress(FileNotFoundError):
        old = path.stat()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if old is None else old.st_mode & 0o7777)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        if old is not None:
            os.chmod(tmp, old.st_mode & 0o7777)
            if hasattr(os, "chown"):
                with contextlib.suppress(PermissionError, OSError):
                    os.chown(tmp, old.st_uid, old.st_gid)
        elif path.name == "recipe_options.json":
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def parse_options(raw: bytes | None, path: Path) -> dict[str, Any]:
    """The file's object (keyed by canonical model id); UsageError with line:col when it is not one."""
    if raw is None:
        return {}
    try:
        data = parse_json(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not UTF-8 ({err.reason}); fix it or move it away") from None
    except JSONProblem as err:
        raise UserError(f"{err.location(str(path))}: not valid JSON ({err.message.removeprefix('invalid JSON: ')}); fix it or move it "
                        "away (lemond reads a malformed file as empty and replaces it at its next save)") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}:1:1: expected a JSON object keyed by model id, got {type(data).__name__}")
    return data


def empty_record() -> dict[str, Any]:
    return {"version": RECORD_VERSION, "file": {}, "models": {}}


def read_record(path: Path) -> dict[str, Any]:
    data = read_json_file(path, "lemonade-autotune's ownership record")
    if data is None:
        return empty_record()
    if not (isinstance(data, dict) and data.get("version") == RECORD_VERSION and isinstance(data.get("models"), dict)
            and isinstance(data.get("file"), dict)):
        raise UserError(f"{path}: not an ownership record of this version; move it away to start afresh "
                        "(undo then no longer knows what lemonade-autotune wrote)")
    return data


@dataclass
class Transaction:
    """One read-modify-write of recipe_options.json under the lock: change `data` and `record`, then commit."""

    home: LemonadeHome
    raw: bytes | None  # the file's bytes when the transaction began (None: no file)
    data: dict[str, Any]
    record: dict[str, Any]
    _data0: dict[str, Any]
    _record0: dict[str, Any]
    written: bool = False

    @property
    def data_before(self) -> dict[str, Any]:
        """The file's object as it was when the transaction began (do not change it)."""
        return self._data0

    @property
    def record_path(self) -> Path:
        return self.home.state_dir / RECORD

    def commit(self, check: Callable[[], str | None] | None = None) -> bool:
        """Write what changed (False when nothing did). `check()` runs last, before anything is written: a reason
        (lemond started) refuses the write."""
        file_changed = self.data != self._data0
        if not file_changed and self.record == self._record0:
            return False
        _refuse_if(check)
        if file_changed:
            new = dump(self.data)
            backup = self._backup()
            state = self.record.setdefault("file", {})
            if "original" not in state:
                state["original"] = backup  # None: there was no file
            state["sha256"] = sha256(new)
            atomic_write(self.record_path, dump(self.record))
            atomic_write(self.home.recipe_options, new)
            self._prune()
        else:
            atomic_write(self.record_path, dump(self.record))
        self.written = True
        return True

    def restore_original(self, check: Callable[[], str | None] | None = None) -> bool:
        """Put back the file exactly as it was before lemonade-autotune's first write, when nobody has written it
        since our last write; forget every model we own. False (nothing done) when that is not possible."""
        state = self.record.get("file") or {}
        if "original" not in state or state.get("sha256") != sha256(self.raw):
            return False
        original = state["original"]
        raw = None
        if original is not None:
            try:
                raw = (self.home.state_dir / BACKUPS / original).read_bytes()
            except OSError:
                return False
        _refuse_if(check)
        self.record = empty_record()
        atomic_write(self.record_path, dump(self.record))
        if raw is None:
            with contextlib.suppress(FileNotFoundError):
                self.home.recipe_options.unlink()
                _fsync_dir(self.home.config_dir)
        else:
            atomic_write(self.home.recipe_options, raw)
        self.data = parse_options(raw, self.home.recipe_options)
        self.written = True
        return True

    def _backup(self) -> str | None:
        if self.raw is None:
            return None
        folder = self.home.state_dir / BACKUPS
        folder.mkdir(parents=True, exist_ok=True)
        name = f"recipe_options.{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.{secrets.token_hex(3)}.json"
        atomic_write(folder / name, self.raw)
        return name

    def _prune(self) -> None:
        folder = self.home.state_dir / BACKUPS
        keep = (self.record.get("file") or {}).get("original")
        olds = sorted((p for p in folder.glob("recipe_options.*.json") if p.name != keep),
                      key=lambda p: p.stat().st_mtime_ns)
        for path in olds[:-KEEP_BACKUPS]:
            with contextlib.suppress(OSError):
                path.unlink()


def _refuse_if(check: Callable[[], str | None] | None) -> None:
    reason = check() if check is not None else None
    if reason:
        raise LemondRunning(f"{reason}: nothing was written (lemond would not see the change and would drop it "
                            "at its next save); run the command again to go through its API")


class OptionsStore:
    """recipe_options.json of one Lemonade config dir."""

    def __init__(self, home: LemonadeHome, *, lock_timeout: float = 60.0) -> None:
        self.home = home
        self.lock_timeout = lock_timeout

    @property
    def lock_path(self) -> Path:
        return self.home.state_dir / LOCK

    def read(self) -> tuple[bytes | None, dict[str, Any]]:
        """(raw bytes or None, parsed object) without the lock (for status)."""
        try:
            raw = self.home.recipe_options.read_bytes()
        except FileNotFoundError:
            raw = None
        return raw, parse_options(raw, self.home.recipe_options)

    def record(self) -> dict[str, Any]:
        return read_record(self.home.state_dir / RECORD)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """The lock every writer of this config dir's options (file or API) holds."""
        from filelock import FileLock, Timeout

        if not self.home.config_dir.is_dir():
            raise UserError(f"{self.home.config_dir}: no such Lemonade config dir; pass --lemonade-config DIR")
        self.home.state_dir.mkdir(exist_ok=True)
        lock = FileLock(str(self.lock_path), timeout=self.lock_timeout)
        try:
            lock.acquire()
        except Timeout:
            raise LockTimeout(f"another lemonade-autotune holds {self.lock_path} (waited {self.lock_timeout:.0f} s)"
                              ) from None
        try:
            yield
        finally:
            lock.release()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self.locked():
            for stale in self.home.config_dir.glob(".recipe_options.json.*.tmp"):  # a writer killed mid-write
                with contextlib.suppress(OSError):
                    stale.unlink()
            raw, data = self.read()
            record = self.record()
            yield Transaction(self.home, raw, copy.deepcopy(data), copy.deepcopy(record), data, record)
