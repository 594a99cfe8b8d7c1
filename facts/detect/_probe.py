"""The probe context: reads files under `root` and runs tools from `env` PATH, turning failures into `Absent`."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path

from facts.models import Absent


class Probe:
    """Where to look (root, PATH), how long to wait, and what could not be established (absent, warnings)."""

    def __init__(self, root: str | os.PathLike[str], timeout: float, env: Mapping[str, str] | None):
        self.root = Path(root)
        self.timeout = float(timeout)
        self.env = dict(os.environ if env is None else env)
        # probing this very machine (root "/"): only then may live APIs (NVML, psutil) be asked
        self.live = self.root.resolve() == Path("/").resolve()
        self.absent: list[Absent] = []
        self.warnings: list[str] = []

    def path(self, rel: str) -> Path:
        """`rel` (an absolute path on the probed system) under `root`."""
        return self.root / rel.lstrip("/")

    def miss(self, fact: str, reason: str) -> None:
        """Record that `fact` stays unknown, and why."""
        self.absent.append(Absent(fact=fact, reason=reason))

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def read(self, rel: str, fact: str | None = None) -> str | None:
        """The text of file `rel`, or None (and an `Absent` for `fact` when given) if it cannot be read."""
        try:
            return self.path(rel).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            reason = f"{rel}: not present"
        except IsADirectoryError:
            reason = f"{rel}: is a directory, not a file"
        except PermissionError:
            reason = f"{rel}: permission denied"
        except OSError as err:
            reason = f"{rel}: {err.strerror or err}"
        if fact:
            self.miss(fact, reason)
        return None

    def read_int(self, rel: str, fact: str | None = None) -> int | None:
        """File `rel` as one non-negative integer (decimal or 0x-hex), or None (+ `Absent`) when unreadable,
        unparsable or negative."""
        text = self.read(rel, fact)
        if text is None:
            return None
        try:
            value = int(text.strip(), 0)
        except ValueError:
            value = -1
        if value < 0:
            if fact:
                self.miss(fact, f"{rel}: not a non-negative integer: {text.strip()[:40]!r}")
            return None
        return value

    def which(self, tool: str) -> str | None:
        """The executable `tool` found on the probe's PATH (never the caller's), or None."""
        path = self.env.get("PATH")
        if not path:
            return None
        return shutil.which(tool, path=path)

    def run(self, argv: list[str], fact: str, *, allow_fail: bool = False) -> str | None:
        """Stdout of `argv` (a real subprocess, killed with its children after `timeout`), or None + `Absent`.

        No subprocess is started when the tool is not on PATH. `allow_fail` keeps the output of a non-zero
        exit (sysctl exits 1 when one of several names is unknown but still prints the others)."""
        exe = self.which(argv[0])
        if exe is None:
            self.miss(fact, f"{argv[0]}: not found on PATH")
            return None
        posix = os.name == "posix"
        try:
            proc = subprocess.Popen(
                [exe, *argv[1:]],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self.env,
                start_new_session=posix,
            )
        except OSError as err:
            self.miss(fact, f"{argv[0]}: cannot start: {err.strerror or err}")
            return None
        try:
            out, err_b = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill(proc, posix)
            self.miss(fact, f"{argv[0]}: timed out after {self.timeout:g} s")
            return None
        text = out.decode("utf-8", errors="replace")
        if proc.returncode != 0 and not (allow_fail and text.strip()):
            first = err_b.decode("utf-8", errors="replace").strip().splitlines()[:1]
            detail = f": {first[0][:160]}" if first else ""
            self.miss(fact, f"{argv[0]}: exit status {proc.returncode}{detail}")
            return None
        return text


def _kill(proc: subprocess.Popen[bytes], posix: bool) -> None:
    """Kill the tool and everything it started (a hung script's `sleep` would otherwise hold the pipes)."""
    try:
        if posix:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except OSError:
        pass
    with contextlib.suppress(subprocess.TimeoutExpired, OSError):
        proc.communicate(timeout=1.0)
