"""Test helpers: real TUF repositories (engine.profiles.publisher, real Ed25519 keys) served over loopback HTTP by a
real `python -m http.server` process, and small complete rulebooks that say which version they are."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from engine.profiles import publisher

ROOT = Path(__file__).resolve().parents[3]
DEFAULTS = ROOT / "rulebook" / "defaults"

MARKER = """\
rules:
  - id: remote-marker-v{n}
    description: says which remote rulebook version is active (-np {n})
    layer: family
    priority: 500
    when: {{recipe: llamacpp}}
    set: {{parallel: {n}}}
    evidence: none
"""


def rulebook(where: Path, n: int, extra: str | None = None) -> Path:
    """A complete rulebook (the recipe defaults) plus one rule that makes recommend emit `-np n`."""
    if where.exists():
        shutil.rmtree(where)
    shutil.copytree(DEFAULTS, where / "defaults")
    (where / "families").mkdir()
    (where / "families" / "marker.yaml").write_text(MARKER.format(n=n), encoding="utf-8")
    if extra is not None:
        (where / "families" / "extra.yaml").write_text(extra, encoding="utf-8")
    return where


class Repo:
    """A TUF repository in a temporary directory with its keys; `publish(n)` adds rulebook version n."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.dir = base / "repo"
        self.keys = base / "keys"
        self.work = base / "work"
        publisher.keygen(self.keys)

    @property
    def trusted_root(self) -> Path:
        return self.dir / "metadata" / "1.root.json"

    def publish(self, n: int, extra: str | None = None, **expiry_days: float) -> dict:
        src = rulebook(self.work / f"v{n}", n, extra)
        return publisher.publish(src, self.dir, self.keys, version=n, expiry=publisher.Expiry.default(**expiry_days))

    def snapshot_files(self) -> dict[str, bytes]:
        """Every file of the repository as it is now (to replay later: a rollback or mix-and-match attack)."""
        return {str(p.relative_to(self.dir)): p.read_bytes() for p in self.dir.rglob("*") if p.is_file()}

    def restore(self, files: dict[str, bytes], only: tuple[str, ...] | None = None) -> None:
        for rel, data in files.items():
            if only is None or rel in only:
                (self.dir / rel).write_bytes(data)


class Server:
    """`python -m http.server` serving a directory on 127.0.0.1 (a real server process); `.url`, `.requests()`."""

    def __init__(self, directory: Path, log: Path) -> None:
        self.directory, self.log = directory, log
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def start(self) -> Server:
        self._log = self.log.open("wb")
        self.proc = subprocess.Popen([sys.executable, "-u", "-m", "http.server", "--bind", "127.0.0.1", "0",
                                      "-d", str(self.directory)], stdout=subprocess.PIPE, stderr=self._log)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()  # "Serving HTTP on 127.0.0.1 port 43123 (http://...) ..."
        port = int(line.split(" port ")[1].split()[0])
        self.url = f"http://127.0.0.1:{port}/"
        return self

    def requests(self) -> list[str]:
        """The request lines the server logged ("GET /metadata/timestamp.json HTTP/1.1" 200)."""
        self._log.flush()
        return [ln.split('"')[1] + " " + ln.split('"')[2].split()[0]
                for ln in self.log.read_text(errors="replace").splitlines() if ln.count('"') >= 2]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        with contextlib.suppress(Exception):
            self._log.close()


@contextlib.contextmanager
def serving(directory: Path, log: Path) -> Iterator[Server]:
    srv = Server(directory, log).start()
    try:
        yield srv
    finally:
        srv.stop()


def closed_port_url() -> str:
    """A loopback URL nothing listens on (the mirror is offline)."""
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    time.sleep(0.01)
    return f"http://127.0.0.1:{port}/"
