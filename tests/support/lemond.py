"""Start the real lemond, or the loopback fake, over a throw-away Lemonade config dir (for tests).

Binaries: LEMONADE_AUTOTUNE_LEMOND and LEMONADE_AUTOTUNE_LLAMA_SERVER (paths), else `lemond` and
`llama-server` on PATH. A variable that is set but names no executable file is an error, not a skip.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.wire import Reply, call, free_port, wait_for

ENV_LEMOND = "LEMONADE_AUTOTUNE_LEMOND"
ENV_LLAMA_SERVER = "LEMONADE_AUTOTUNE_LLAMA_SERVER"
REPO_ROOT = Path(__file__).resolve().parents[2]
GGUF_DIR = REPO_ROOT / "tests" / "fixtures" / "gguf"
# lemond gives each llama-server the first free port from 8001 (WrappedServer::choose_port; not configurable),
# so two lemonds loading at once can race for it. Every real lemond holds this machine-wide lock while it runs.
CHILD_PORT_LOCK = Path(tempfile.gettempdir()) / "lemonade-autotune-lemond-child-ports.lock"
# Variables lemond reads that must not leak from the developer's shell into a test instance.
_SCRUBBED_ENV = ("LEMONADE_CACHE_DIR", "LEMONADE_DEFAULTS_PATH", "LEMONADE_API_KEY", "LEMONADE_ADMIN_API_KEY",
                 "STATE_DIRECTORY", "CACHE_DIRECTORY", "RUNTIME_DIRECTORY", "LEMONADE_HOST", "LEMONADE_PORT")


class HarnessError(RuntimeError):
    """The test ground itself failed: a binary is missing, a server did not start or stop."""


def find_executable(env_var: str, name: str) -> Path | None:
    """`$env_var` when set (it must be an executable file), else `name` on PATH, else None."""
    value = os.environ.get(env_var, "").strip()
    if value:
        path = Path(value).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise HarnessError(f"{env_var}={value} is not an executable file")
        return path.resolve()
    found = shutil.which(name)
    return Path(found).resolve() if found else None


def find_lemond() -> Path | None:
    return find_executable(ENV_LEMOND, "lemond")


def find_llama_server() -> Path | None:
    return find_executable(ENV_LLAMA_SERVER, "llama-server")


def missing_for(kind: str) -> str | None:
    """Why `kind` ("real" or "fake") cannot run here, or None when it can (the fake always can)."""
    if kind == "fake":
        return None
    if find_lemond() is None:
        return f"no lemond: set {ENV_LEMOND} or put lemond on PATH"
    if find_llama_server() is None:
        return f"no llama-server: set {ENV_LLAMA_SERVER} or put llama-server on PATH"
    return None


@dataclass(frozen=True)
class LemonadeDirs:
    """A Lemonade home in a temp dir: cache, config (config.json, user_models.json, recipe_options.json),
    runtime (XDG_RUNTIME_DIR) and an extra_models_dir."""

    root: Path

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def config(self) -> Path:
        return self.root / "config"

    @property
    def runtime(self) -> Path:
        return self.root / "xdg-runtime"

    @property
    def extra_models(self) -> Path:
        return self.root / "extra-models"

    @property
    def recipe_options(self) -> Path:
        return self.config / "recipe_options.json"

    def read_json(self, name: str) -> Any:
        """A config-dir file parsed, or None when it does not exist."""
        path = self.config / name
        return json.loads(path.read_text()) if path.exists() else None

    def write_json(self, name: str, data: Any) -> None:
        (self.config / name).write_text(json.dumps(data, indent=2) + "\n")


def offline_config(dirs: LemonadeDirs) -> dict[str, Any]:
    """config.json for a test instance: loopback only, offline, never fetches a backend."""
    return {"config_version": 2, "host": "127.0.0.1", "broadcast": False, "offline": True,
            "auto_check_model_updates": False, "no_fetch_executables": True, "log_level": "info",
            "models_dir": str(dirs.cache / "hf"), "extra_models_dir": str(dirs.extra_models)}


def make_dirs(root: Path, *, extra_models: Sequence[str] = ("llama-gqa",),
              user_models: Mapping[str, str] | None = None, config: Mapping[str, Any] | None = None,
              recipe_options: Mapping[str, Any] | None = None) -> LemonadeDirs:
    """Lay out a Lemonade home under `root`.

    extra_models: GGUF fixture stems copied into extra_models_dir (lemond names them `extra.<stem>`);
    user_models: {name: fixture stem} registered in user_models.json (`user.<name>`, source local_path);
    config: keys merged over `offline_config`; recipe_options: written as recipe_options.json."""
    dirs = LemonadeDirs(Path(root))
    for path in (dirs.cache, dirs.config, dirs.extra_models, dirs.root / "models"):
        path.mkdir(parents=True, exist_ok=True)
    dirs.runtime.mkdir(mode=0o700, exist_ok=True)
    for stem in extra_models:
        shutil.copyfile(GGUF_DIR / f"{stem}.gguf", dirs.extra_models / f"{stem}.gguf")
    if user_models:
        registry = {}
        for name, stem in user_models.items():
            target = dirs.root / "models" / f"{name}.gguf"
            shutil.copyfile(GGUF_DIR / f"{stem}.gguf", target)
            registry[name] = {"checkpoint": str(target), "recipe": "llamacpp", "source": "local_path"}
        dirs.write_json("user_models.json", registry)
    dirs.write_json("config.json", {**offline_config(dirs), **(config or {})})
    if recipe_options is not None:
        dirs.write_json("recipe_options.json", dict(recipe_options))
    return dirs


class LemonadeServer:
    """One lemond (kind "real") or fake (kind "fake") process serving `dirs` on 127.0.0.1.

    `start()` may be called again after `stop()`: the same config dir is served by a fresh process."""

    def __init__(self, kind: str, dirs: LemonadeDirs, *, start_timeout: float = 30.0,
                 fake_runs_llama_server: bool = True) -> None:
        if kind not in ("real", "fake"):
            raise ValueError(f"kind must be 'real' or 'fake', not {kind!r}")
        self.kind = kind
        self.dirs = dirs
        self.start_timeout = start_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.lemond = find_lemond() if kind == "real" else None
        self.llama_server = find_llama_server() if kind == "real" or fake_runs_llama_server else None
        if kind == "real" and (self.lemond is None or self.llama_server is None):
            raise HarnessError(missing_for("real") or "lemond missing")
        self.log_path = dirs.root / f"{kind}-lemond.log"
        self._lock_file: Any = None
        self.start_seconds: list[float] = []
        self.stop_seconds: list[float] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None, "server not started"
        return self.process.pid

    # --- lifecycle -----------------------------------------------------------------------------------
    def _command(self) -> list[str]:
        common = [str(self.dirs.cache), str(self.dirs.config), "--host", "127.0.0.1", "--port", str(self.port)]
        if self.kind == "real":
            return [str(self.lemond), *common, "--no-broadcast"]
        extra = [] if self.llama_server else ["--no-llama-server"]
        return [sys.executable, "-m", "tests.support.fake_lemond", *common, "--no-broadcast", *extra]

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
        env["XDG_RUNTIME_DIR"] = str(self.dirs.runtime)
        if self.llama_server is not None:  # lemond runs the `llama-server` it finds on PATH (system backend)
            env["PATH"] = f"{self.llama_server.parent}{os.pathsep}{env.get('PATH', '')}"
        if self.kind == "fake":
            env["PYTHONPATH"] = f"{REPO_ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}".rstrip(os.pathsep)
        return env

    def _take_child_port_lock(self, timeout: float = 300.0) -> None:
        self._lock_file = open(CHILD_PORT_LOCK, "a+")  # noqa: SIM115 - held until stop()
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    self._lock_file.close()
                    self._lock_file = None
                    raise HarnessError(f"another lemond held {CHILD_PORT_LOCK} for {timeout:.0f} s") from None
                time.sleep(0.1)

    def _release_child_port_lock(self) -> None:
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def start(self) -> float:
        """Start the process and wait for `GET /live`; returns the seconds from exec to the first 200."""
        if self.process is not None:
            raise HarnessError("already running")
        if self.kind == "real":
            self._take_child_port_lock()
        try:
            for attempt in range(3):  # a port picked free can be taken before the server binds it
                self.port = free_port()
                config = self.dirs.read_json("config.json") or {}
                config.update(port=self.port, host="127.0.0.1", websocket_port=free_port())
                self.dirs.write_json("config.json", config)
                with open(self.log_path, "ab") as log:
                    log.write(f"\n==== start {self.kind} attempt {attempt} port {self.port}\n".encode())
                    log.flush()
                    began = time.monotonic()
                    self.process = subprocess.Popen(
                        self._command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                        env=self._environment(), cwd=str(REPO_ROOT), start_new_session=True)
                try:
                    wait_for(self.base_url, "/live", timeout=self.start_timeout,
                             alive=lambda: self.process is not None and self.process.poll() is None)
                except RuntimeError:
                    self.process.wait()
                    self.process = None
                    continue
                except TimeoutError as err:
                    self._kill_group()
                    raise HarnessError(f"{self.kind} lemond did not answer /live: {err}\n{self.log_tail()}") from err
                elapsed = time.monotonic() - began
                self.start_seconds.append(elapsed)
                return elapsed
            raise HarnessError(f"{self.kind} lemond exited at start three times\n{self.log_tail()}")
        except BaseException:
            self._release_child_port_lock()
            raise

    def stop(self, timeout: float = 20.0) -> float:
        """SIGTERM, wait up to `timeout`, then SIGKILL the whole process group; returns the seconds taken."""
        if self.process is None:
            return 0.0
        began = time.monotonic()
        try:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._kill_group()
            else:  # children die with lemond (PR_SET_PDEATHSIG); make sure none outlive a test
                self._kill_group(quiet=True)
        finally:
            self.process = None
            self._release_child_port_lock()
        elapsed = time.monotonic() - began
        self.stop_seconds.append(elapsed)
        return elapsed

    def _kill_group(self, quiet: bool = False) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)

    def restart(self) -> float:
        self.stop()
        return self.start()

    def __enter__(self) -> LemonadeServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- requests and inspection ---------------------------------------------------------------------
    def get(self, path: str, **kw: Any) -> Reply:
        return call(self.base_url, "GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return call(self.base_url, "POST", path, body, **kw)

    def delete(self, path: str, **kw: Any) -> Reply:
        return call(self.base_url, "DELETE", path, **kw)

    def children(self) -> list[int]:
        """PIDs whose parent is the server process (the llama-server instances it runs)."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    stat = (entry / "stat").read_text()
                    if int(stat.rsplit(")", 1)[1].split()[1]) == self.pid:
                        found.append(int(entry.name))
        return sorted(found)

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def cmdline(pid: int) -> list[str]:
    """argv of a running process, from /proc/<pid>/cmdline."""
    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    return [part.decode() for part in raw.split(b"\0") if part]


def server_params() -> list[Any]:
    """pytest params ["real-lemond", "fake-lemond"]; the real one is skipped, with the reason, when its
    binaries are not found."""
    import pytest

    reason = missing_for("real")
    return [pytest.param("real", id="real-lemond", marks=pytest.mark.skipif(reason is not None, reason=reason or "")),
            pytest.param("fake", id="fake-lemond")]


@contextlib.contextmanager
def running_server(kind: str, root: Path, **layout: Any) -> Iterator[LemonadeServer]:
    """`make_dirs(root, **layout)`, start a server of `kind` over it, stop it on exit."""
    server = LemonadeServer(kind, make_dirs(root, **layout))
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --- pytest fixtures (import them into a test module: `from tests.support.lemond import lemonade_server`) -------
try:
    import pytest as _pytest
except ImportError:  # pragma: no cover - the harness also runs from plain scripts
    _pytest = None

if _pytest is not None:

    @_pytest.fixture(scope="module", params=server_params())
    def lemonade_server(request: Any, tmp_path_factory: Any) -> Iterator[LemonadeServer]:
        """A started server per kind (ids real-lemond / fake-lemond) over a fresh home with `extra.llama-gqa`
        and `user.tiny-local`; module-scoped, so tests in one module share its state."""
        root = tmp_path_factory.mktemp(f"lemonade-{request.param}")
        with running_server(request.param, root, user_models={"tiny-local": "llama-mha"}) as server:
            yield server

    @_pytest.fixture
    def lemonade_dirs(tmp_path: Path) -> LemonadeDirs:
        """A fresh Lemonade home (not served) for tests that start servers themselves."""
        return make_dirs(tmp_path / "lemonade", user_models={"tiny-local": "llama-mha"})
