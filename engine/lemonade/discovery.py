"""Is a lemond serving a Lemonade config dir, and where: a URL that answers `GET /v1/health` like lemond, or a
`lemond` process whose command line (or environment) names that dir.

lemond's command line is `lemond [OPTIONS] [cache_dir] [config_dir]` with `--host HOST` and `--port PORT` as
its only options that take a value (`lemond --help`, 11.7.0). Without a config_dir it uses the platform default
for its own environment (engine.lemonade.paths.default_config_dir). Processes are read from /proc (Linux);
elsewhere only the URL tells.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.lemonade.client import LemondClient
from engine.lemonade.paths import PACKAGED_SERVICE_DIR, LemonadeHome, default_config_dir

_VALUE_OPTIONS = frozenset({"--host", "--port"})


@dataclass(frozen=True)
class Found:
    """A lemond for the dir: where it answers (None: its process runs but does not answer yet)."""

    url: str | None
    how: str
    pid: int | None = None
    health: dict[str, Any] | None = None


@dataclass(frozen=True)
class Process:
    pid: int
    argv: tuple[str, ...]
    config_dirs: tuple[Path, ...]  # the dir it serves (several candidates when its environment is unreadable)
    host: str | None
    port: int | None

    @property
    def url(self) -> str | None:
        if self.port is None:
            return None
        host = self.host if self.host and self.host not in ("0.0.0.0", "localhost") else "127.0.0.1"
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"


def _same(a: Path, b: Path) -> bool:
    with contextlib.suppress(OSError):
        return os.path.samefile(a, b)
    return os.path.abspath(a) == os.path.abspath(b)


def parse_argv(argv: list[str]) -> tuple[list[str], str | None, int | None]:
    """(positional args, --host, --port) of a lemond command line."""
    positional: list[str] = []
    host, port = None, None
    i = 1
    while i < len(argv):
        token = argv[i]
        name, eq, value = token.partition("=")
        if name in _VALUE_OPTIONS:
            if not eq:
                i += 1
                value = argv[i] if i < len(argv) else ""
            if name == "--host":
                host = value
            elif value.isdigit():
                port = int(value)
        elif not token.startswith("-"):
            positional.append(token)
        i += 1
    return positional, host, port


def _environ(pid: int) -> dict[str, str] | None:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    out = {}
    for item in raw.split(b"\0"):
        key, eq, value = item.partition(b"=")
        if eq:
            out[key.decode(errors="replace")] = value.decode(errors="replace")
    return out


def _default_dirs(pid: int) -> tuple[Path, ...]:
    env = _environ(pid)
    if env is not None:
        found = default_config_dir(env, "linux")
        return (found,) if found is not None else ()
    dirs = [PACKAGED_SERVICE_DIR]  # unreadable: another user's process, e.g. the packaged service
    with contextlib.suppress(Exception):
        import pwd

        uid = Path(f"/proc/{pid}").stat().st_uid
        dirs.append(Path(pwd.getpwuid(uid).pw_dir) / ".config" / "lemonade")
    return tuple(dirs)


def lemond_processes() -> list[Process]:
    """Every `lemond` process this user can see (Linux /proc; empty elsewhere)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    out = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = [p.decode(errors="replace") for p in (entry / "cmdline").read_bytes().split(b"\0") if p]
        except OSError:
            continue
        if not argv or os.path.basename(argv[0]) not in ("lemond", "lemond.exe"):
            continue
        positional, host, port = parse_argv(argv)
        pid = int(entry.name)
        dirs = (Path(positional[1]),) if len(positional) >= 2 else _default_dirs(pid)
        out.append(Process(pid, tuple(argv), dirs, host, port))
    return out


def processes_for(home: LemonadeHome) -> list[Process]:
    return [p for p in lemond_processes() if any(_same(d, home.config_dir) for d in p.config_dirs)]


def find(home: LemonadeHome | None, url: str | None = None, *, timeout: float = 2.0) -> Found | None:
    """The lemond serving `home` (or answering at `url`), else None.

    Tried in order: `url` when given, the URL of each lemond process over `home`, the URL in home's config.json.
    A process over `home` that answers nowhere is still returned (url None): its file must not be touched."""
    tried: list[str] = []

    def probe(candidate: str | None, how: str, pid: int | None = None) -> Found | None:
        if not candidate or candidate in tried:
            return None
        tried.append(candidate)
        health = LemondClient(candidate, timeout=timeout).probe(timeout)
        return Found(candidate, how, pid, health) if health is not None else None

    if url:
        hit = probe(url, "answers at the given URL")
        if hit is not None:
            return hit
    procs = processes_for(home) if home is not None else []
    for p in procs:
        hit = probe(p.url or (home.url() if home else None), f"lemond pid {p.pid} serves {home.config_dir}", p.pid)
        if hit is not None:
            return hit
    if home is not None:
        hit = probe(home.url(), f"answers at the URL in {home.config_dir / 'config.json'}")
        if hit is not None:
            return hit
    if procs:
        p = procs[0]
        return Found(None, f"lemond pid {p.pid} serves {p.config_dirs[0]} but does not answer at "
                           f"{', '.join(tried) or 'its URL'}", p.pid)
    return None


def config_dir_of(url: str) -> Path | None:
    """The config dir of the local lemond process that listens on `url`'s port, when one is visible."""
    from urllib.parse import urlsplit

    port = urlsplit(url if "://" in url else f"http://{url}").port
    for p in lemond_processes():
        if not p.config_dirs:
            continue
        listens = p.port if p.port is not None else urlsplit(LemonadeHome(p.config_dirs[0]).url()).port
        if listens == port:
            return p.config_dirs[0]
    return None
