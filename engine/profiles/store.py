"""The local store of remote rulebooks: immutable version directories and one state file, swapped atomically.

Layout under `$LEMONADE_AUTOTUNE_PROFILES_DIR`, else the platform's user cache dir + `/profiles`:

    state.json              active version, pin, history, last check and its outcome (replaced atomically)
    versions/remote@N/      one activated rulebook version (its YAML files and a `.manifest.json`), never changed
    tuf/<mirror>/           python-tuf's trusted metadata and downloaded targets, per mirror + trusted root
    .lock                   held by whoever changes the store (one updater at a time)

A version directory is built beside the others (`versions/.tmp-*`), checked, then renamed into place; only
then does state.json name it. A process killed at any point leaves either the old state or the new one and at
worst a leftover temporary directory, removed by the next update. Readers take no lock: the state file is
replaced in one rename and a version directory named by it is complete and verified (its digest) on use.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.config import Settings
    from engine.profiles.activate import Checked
    from engine.profiles.bundle import Bundle

ENV_DIR = "LEMONADE_AUTOTUNE_PROFILES_DIR"
STATE_FORMAT = 1
KEEP = 5  # activated versions kept for rollback (the active and the pinned one always)
PREFIX = "remote@"


def directory(env: dict[str, str] | None = None) -> Path:
    """Where the store is: `$LEMONADE_AUTOTUNE_PROFILES_DIR`, else the user cache dir + /profiles."""
    env = dict(os.environ) if env is None else env
    if env.get(ENV_DIR, "").strip():
        return Path(env[ENV_DIR]).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("lemonade-autotune", appauthor=False)) / "profiles"


@dataclass(frozen=True)
class State:
    """What state.json says. Times are ISO 8601 UTC strings; `damaged` says why the file could not be read."""

    active: int | None = None  # the remote version in use; None = the bundled rulebook
    pinned: bool = False  # True: refreshes check but never move `active` (pin / rollback)
    history: tuple[int, ...] = ()  # versions in activation order (oldest first)
    highest: int = 0  # highest version ever activated from a mirror (a lower "latest" is a rollback)
    mirror: dict[str, str] = field(default_factory=dict)  # url + sha256 of the trusted root used last
    remote_version: int | None = None  # latest version the mirror offered at the last good check
    last_attempt: str | None = None
    last_success: str | None = None  # the last check that verified the mirror's metadata
    outcome: str | None = None  # updated | no-change | pinned | offline | rejected | invalid
    error: str | None = None  # why the last attempt failed (None after a success)
    failures: int = 0  # consecutive failed attempts (drives the backoff)
    next_attempt: str | None = None
    damaged: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["history"] = list(self.history)
        out.pop("damaged")
        return {"format": STATE_FORMAT, **out}

    @classmethod
    def from_dict(cls, doc: Any) -> State:
        if not isinstance(doc, dict) or doc.get("format") != STATE_FORMAT:
            return cls(damaged="state.json has an unknown format")
        try:
            state = cls(**{k: (tuple(v) if k == "history" else v) for k, v in doc.items() if k != "format"})
        except TypeError as err:
            return cls(damaged=f"state.json: {err}")
        ints = [state.highest, state.failures, *state.history, *(v for v in (state.active,) if v is not None)]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in ints) or not isinstance(state.mirror, dict):
            return cls(damaged="state.json holds values of the wrong type")
        return state


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class Store:
    """One profiles directory (see the module docstring)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root if root is not None else directory()
        self.versions = self.root / "versions"
        self.state_file = self.root / "state.json"

    # ---- state ------------------------------------------------------------------------------------------
    def state(self) -> State:
        try:
            raw = self.state_file.read_bytes()
        except FileNotFoundError:
            return State()
        except OSError as err:
            return State(damaged=f"state.json cannot be read: {err}")
        try:
            return State.from_dict(json.loads(raw))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            return State(damaged=f"state.json is not JSON: {err}")

    def write_state(self, state: State) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        _write_atomic(self.state_file, json.dumps(state.to_dict(), indent=1).encode())

    def update_state(self, **changes: Any) -> State:
        new = replace(self.state(), damaged=None, **changes)
        self.write_state(new)
        return new

    def lock(self, timeout: float = -1):  # noqa: ANN201 - a filelock.FileLock
        import filelock

        self.root.mkdir(parents=True, exist_ok=True)
        return filelock.FileLock(str(self.root / ".lock"), timeout=timeout)

    # ---- versions ---------------------------------------------------------------------------------------
    def version_dir(self, version: int) -> Path:
        return self.versions / f"{PREFIX}{version}"

    def manifest(self, version: int) -> dict[str, Any] | None:
        try:
            doc = json.loads((self.version_dir(version) / ".manifest.json").read_bytes())
        except (OSError, ValueError):
            return None
        return doc if isinstance(doc, dict) else None

    def installed(self) -> list[int]:
        """Versions with a complete directory (a manifest), ascending."""
        if not self.versions.is_dir():
            return []
        out = []
        for p in self.versions.iterdir():
            tail = p.name[len(PREFIX):]
            if p.name.startswith(PREFIX) and tail.isdigit() and (p / ".manifest.json").is_file():
                out.append(int(tail))
        return sorted(out)

    def problem(self, version: int) -> str | None:
        """Why the stored `version` cannot be used (missing, damaged), None when its files are intact."""
        from engine.errors import RulebookReadError
        from engine.rulebook import digest_of, read_sources

        man = self.manifest(version)
        if man is None or man.get("version") != version:
            return f"{PREFIX}{version} is not in the local store (or its manifest is damaged)"
        try:
            digest = digest_of(read_sources(self.version_dir(version)))
        except RulebookReadError as err:
            return f"{PREFIX}{version} cannot be read: {err}"
        if digest != man.get("digest"):
            return f"{PREFIX}{version} was changed on disk after activation (digest mismatch)"
        return None

    def install(self, bundle: Bundle, *, sha256: str, mirror: dict[str, str], now: str) -> Checked:
        """Write, lint and allowlist-check `bundle` beside the others, then rename it into place (not yet
        active: `activate` does that). ActivationError when it fails the checks (nothing left behind)."""
        from engine.profiles import activate

        self.versions.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.versions, prefix=".tmp-"))
        try:
            staged = tmp / f"{PREFIX}{bundle.version}"
            bundle.write(staged)
            checked = activate.check(staged, bundle.version)
            manifest = {"version": bundle.version, "digest": checked.digest, "rules": checked.rules,
                        "lint_warnings": checked.warnings, "bundle_sha256": sha256, "mirror": mirror,
                        "installed_at": now}
            _write_atomic(staged / ".manifest.json", json.dumps(manifest, indent=1).encode())
            dest = self.version_dir(bundle.version)
            if dest.exists():  # an earlier install of this version (maybe damaged): the verified one replaces it
                shutil.rmtree(dest)
            os.replace(staged, dest)
            return checked
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def activate(self, version: int | None, *, pinned: bool, **changes: Any) -> State:
        """Name `version` (None = bundled) in state.json: the one atomic step that switches rulebooks."""
        st = self.state()
        history = st.history
        if version is not None:
            history = (*[v for v in history if v != version], version)
        new = self.update_state(active=version, pinned=pinned, history=history, **changes)
        self.gc(new)
        return new

    def gc(self, state: State) -> None:
        """Remove versions beyond the KEEP most recent of the history (never the active one) and leftovers."""
        keep = set(state.history[-KEEP:]) | ({state.active} if state.active is not None else set())
        for v in self.installed():
            if v not in keep:
                shutil.rmtree(self.version_dir(v), ignore_errors=True)
        self.clean_leftovers()

    def clean_leftovers(self) -> None:
        """Temporary directories and files of an update that was killed."""
        if self.versions.is_dir():
            for p in self.versions.glob(".tmp-*"):
                shutil.rmtree(p, ignore_errors=True)
        for p in self.root.glob(".state.json.*.tmp"):
            with contextlib.suppress(OSError):
                p.unlink()


def active_root(settings: Settings) -> Path | None:
    """The active remote rulebook's directory when remote rulebooks are on and one is active and intact."""
    if not settings.remote.enabled:
        return None
    store = Store()
    st = store.state()
    if st.active is None or st.damaged:
        return None
    return None if store.problem(st.active) else store.version_dir(st.active)
