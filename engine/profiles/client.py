"""The TUF client: verify the mirror with python-tuf's ngclient, download the rulebook target, activate it.

Every check python-tuf makes (root chain and key rotation, signatures and thresholds, versions never going back,
expiry, snapshot/targets consistency, target length and hashes) runs before a byte of the rulebook is used; then
`store.install` lints it and checks the allowlist, and state.json names it (the atomic swap). Any failure leaves
the last good rulebook active and is recorded with why: `offline` (the mirror could not be reached), `rejected`
(verification failed: tampering, a rollback or freeze attack, a bad signature), `invalid` (a verified rulebook
that fails lint or the allowlist). The targets on the mirror: `rulebook.json` (the latest) and
`rulebooks/<N>.json` (every published version), each with `custom: {"version": N}` in the signed metadata.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import UsageError
from engine.profiles import policy
from engine.profiles.store import PREFIX, State, Store

if TYPE_CHECKING:
    from engine.config import Settings

LATEST = "rulebook.json"
SHIPPED_ROOT = "profiles-root.json"  # engine/data/: the project mirror's root, once it has one (none yet)
DEFAULT_URL: str | None = None  # the project's own mirror, once it exists; until then a mirror is configured


def version_target(version: int) -> str:
    return f"rulebooks/{version}.json"


def shipped_root() -> bytes | None:
    """The trusted root shipped inside the package, when there is one."""
    f = resources.files("engine").joinpath("data", SHIPPED_ROOT)
    return f.read_bytes() if f.is_file() else None


@dataclass(frozen=True)
class Mirror:
    """A TUF repository of static files and the root.json the client trusts for it."""

    url: str  # base: metadata/ and targets/ below it
    root: bytes
    root_source: str  # the file it came from, or "shipped"

    @property
    def key(self) -> str:
        h = hashlib.sha256(self.root).hexdigest()[:16]
        return f"{h}-{hashlib.sha256(self.url.encode()).hexdigest()[:8]}"

    def to_dict(self) -> dict[str, str]:
        return {"url": self.url, "trusted_root": self.root_source, "key": self.key,
                "root_sha256": hashlib.sha256(self.root).hexdigest()}


def mirror_for(settings: Settings, url: str | None = None, trusted_root: str | None = None,
               state: State | None = None) -> Mirror | None:
    """The mirror to use: `--url`/`--trusted-root`, else the config's `remote:`, else the one the active rulebook
    came from, else the project default (none yet). None when no mirror is configured at all."""
    remembered = (state.mirror if state else {}) or {}
    url = url or settings.remote.url or remembered.get("url") or DEFAULT_URL
    if not url:
        return None
    root_path = trusted_root or settings.remote.trusted_root
    if not root_path and remembered.get("url") == url and remembered.get("trusted_root") not in (None, "shipped"):
        root_path = remembered["trusted_root"]
    if root_path:
        path = Path(root_path).expanduser()
        try:
            raw = path.read_bytes()
        except OSError as err:
            raise UsageError(f"{path}: cannot read the trusted root ({err.strerror}); give the mirror's root.json "
                             "with --trusted-root or remote.trusted_root") from None
        return Mirror(url.rstrip("/") + "/", raw, str(path.resolve()))
    raw_shipped = shipped_root()
    if raw_shipped is None:
        raise UsageError(f"no trusted root for {url}: this package ships none; give the mirror's root.json with "
                         "--trusted-root ROOT.json or `remote: {trusted_root: ...}` in config.yaml")
    return Mirror(url.rstrip("/") + "/", raw_shipped, "shipped")


@dataclass(frozen=True)
class Outcome:
    """What one update did: outcome, the active version after it, the mirror's latest, why, how long."""

    outcome: str  # updated | no-change | pinned | offline | rejected | invalid
    active: int | None
    remote_version: int | None
    message: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.outcome in ("updated", "no-change", "pinned")

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "ok": self.ok, "active": self.active,
                "remote_version": self.remote_version, "message": self.message, "seconds": round(self.seconds, 3)}


class _Refused(Exception):
    def __init__(self, outcome: str, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome


def _classify(err: BaseException) -> tuple[str, str]:
    """(outcome, why) for an error python-tuf or the network raised."""
    from tuf.api import exceptions as tx

    if isinstance(err, tx.ExpiredMetadataError):
        return "rejected", (f"expired metadata ({err}): a freeze attack or a mirror that stopped re-signing; "
                            "keeping the last good rulebook")
    if isinstance(err, tx.EqualVersionNumberError):
        return "rejected", f"metadata replayed with an equal version ({err})"
    if isinstance(err, tx.BadVersionNumberError):
        return "rejected", f"rollback attempt: the mirror offered older metadata than already trusted ({err})"
    if isinstance(err, tx.UnsignedMetadataError):
        return "rejected", f"bad or missing signatures ({err}): not signed by the trusted keys"
    if isinstance(err, (tx.LengthOrHashMismatchError, tx.DownloadLengthMismatchError)):
        return "rejected", f"tampered download: length or hashes differ from the signed metadata ({err})"
    if isinstance(err, tx.RepositoryError):
        return "rejected", f"the mirror's metadata failed verification ({type(err).__name__}: {err})"
    if isinstance(err, tx.DownloadHTTPError):
        return "offline", f"the mirror answered HTTP {err.status_code} ({err})"
    return "offline", f"the mirror cannot be reached: {_root_cause(err)}"


def _root_cause(err: BaseException) -> str:
    """The innermost reason of a network error (urllib3 wraps it in MaxRetryError.reason), as one line."""
    seen = err
    while True:
        nxt = getattr(seen, "reason", None) if isinstance(getattr(seen, "reason", None), BaseException) else None
        nxt = nxt or seen.__cause__ or seen.__context__
        if nxt is None or nxt is seen:
            break
        seen = nxt
    return str(seen).strip() or type(seen).__name__


def _updater(store: Store, mirror: Mirror, timeout: float):  # noqa: ANN202 - tuf.ngclient.Updater
    from tuf.ngclient import Updater, UpdaterConfig
    from tuf.ngclient.urllib3_fetcher import Urllib3Fetcher

    from engine._version import __version__

    base = store.root / "tuf" / mirror.key
    (base / "metadata").mkdir(parents=True, exist_ok=True)
    (base / "targets").mkdir(parents=True, exist_ok=True)
    fetcher = Urllib3Fetcher(socket_timeout=timeout, app_user_agent=f"lemonade-autotune/{__version__}")  # type: ignore[arg-type]
    return Updater(str(base / "metadata"), mirror.url + "metadata/", str(base / "targets"), mirror.url + "targets/",
                   fetcher=fetcher, config=UpdaterConfig(), bootstrap=mirror.root)


def _version_of(info: Any, name: str) -> int:
    custom = info.custom if isinstance(info.custom, dict) else {}
    v = custom.get("version")
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise _Refused("invalid", f"target {name} carries no rulebook version in its signed metadata")
    return v


def _fetch(updater: Any, info: Any, version: int) -> tuple[Any, str]:
    """Download (or reuse the verified cached copy of) the target; the bundle and its sha256."""
    from engine.profiles.bundle import BundleError, unpack

    path = updater.find_cached_target(info) or updater.download_target(info)
    raw = Path(path).read_bytes()
    try:
        bundle = unpack(raw, info.path)
    except BundleError as err:
        raise _Refused("invalid", str(err)) from None
    if bundle.version != version:
        raise _Refused("rejected", f"{info.path} says version {bundle.version} but the signed metadata says {version}")
    return bundle, hashlib.sha256(raw).hexdigest()


def update(settings: Settings, *, url: str | None = None, trusted_root: str | None = None,
           pin: int | None = None, store: Store | None = None, lock_timeout: float = 30.0) -> Outcome:
    """Check the mirror and activate its latest rulebook (or version `pin`, pinned); record the outcome.

    UsageError when no mirror is configured or the store is busy; every network or verification failure is an
    Outcome (the last good rulebook stays active)."""
    import filelock

    store = store or Store()
    st = store.state()
    mirror = mirror_for(settings, url, trusted_root, st)
    if mirror is None:
        raise UsageError("no profiles mirror is configured: give --url URL --trusted-root ROOT.json, or set "
                         "`remote: {url: ..., trusted_root: ...}` in config.yaml (docs/profiles.md)")
    try:
        with store.lock(timeout=lock_timeout):
            return _update_locked(settings, store, mirror, pin)
    except filelock.Timeout:
        raise UsageError(f"another update holds {store.root / '.lock'}; try again when it is done") from None


def _update_locked(settings: Settings, store: Store, mirror: Mirror, pin: int | None) -> Outcome:
    from engine.profiles.activate import ActivationError

    started = time.monotonic()
    store.clean_leftovers()
    st = store.state()
    same_mirror = st.mirror.get("key") == mirror.key
    highest = st.highest if same_mirror else 0
    at = policy.now()
    remote_version: int | None = st.remote_version if same_mirror else None
    try:
        try:
            updater = _updater(store, mirror, settings.remote.timeout_s)
            latest_info = updater.get_targetinfo(LATEST)
            if latest_info is None:
                raise _Refused("invalid", f"the mirror lists no {LATEST} target")
            remote_version = _version_of(latest_info, LATEST)
            if pin is not None:
                info = updater.get_targetinfo(version_target(pin))
                if info is None:
                    raise _Refused("invalid", f"the mirror has no version {pin} (latest: {remote_version})")
                _version_of(info, version_target(pin))
                target_version = pin
            elif st.pinned:
                raise _Done("pinned", f"pinned to {_name(st.active)}; the mirror offers {PREFIX}{remote_version}")
            elif remote_version < highest:
                raise _Refused("rejected", f"rollback attempt: the mirror's latest is {PREFIX}{remote_version} but "
                                           f"{PREFIX}{highest} was already activated from it")
            elif remote_version == st.active and store.problem(remote_version) is None:
                raise _Done("no-change", f"{PREFIX}{remote_version} is the latest and active")
            else:
                info, target_version = latest_info, remote_version
            bundle, sha = _fetch(updater, info, target_version)
            store.install(bundle, sha256=sha, mirror=mirror.to_dict(), now=policy.iso(at))
        except _Done:
            raise
        except _Refused:
            raise
        except ActivationError as err:
            raise _Refused("invalid", str(err)) from None
        except Exception as err:  # python-tuf and the network: every failure keeps the last good rulebook
            outcome, why = _classify(err)
            raise _Refused(outcome, why) from err
    except _Done as done:
        new = store.update_state(**_success(settings, at, remote_version, done.outcome, mirror, highest))
        return Outcome(done.outcome, new.active, remote_version, str(done), time.monotonic() - started)
    except _Refused as ref:
        failures = st.failures + 1
        fields: dict[str, Any] = {"last_attempt": policy.iso(at), "outcome": ref.outcome, "error": str(ref),
                                  "failures": failures, "next_attempt": policy.iso(policy.after_failure(
                                      at, failures, settings.remote.interval_hours))}
        if not st.mirror:
            fields["mirror"] = mirror.to_dict()
        new = store.update_state(**fields)
        return Outcome(ref.outcome, new.active, remote_version, str(ref), time.monotonic() - started)
    changes = _success(settings, at, remote_version, "updated", mirror, max(highest, target_version if pin is None
                                                                             else highest))
    new = store.activate(target_version, pinned=pin is not None, **changes)
    how = f"pinned to {PREFIX}{target_version}" if pin is not None else f"activated {PREFIX}{target_version}"
    return Outcome("updated", new.active, remote_version, how, time.monotonic() - started)


class _Done(Exception):
    def __init__(self, outcome: str, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome


def _name(version: int | None) -> str:
    return "the bundled rulebook" if version is None else f"{PREFIX}{version}"


def _success(settings: Settings, at: Any, remote_version: int | None, outcome: str, mirror: Mirror,
             highest: int) -> dict[str, Any]:
    return {"last_attempt": policy.iso(at), "last_success": policy.iso(at), "outcome": outcome, "error": None,
            "failures": 0, "remote_version": remote_version, "mirror": mirror.to_dict(), "highest": highest,
            "next_attempt": policy.iso(policy.after_success(at, settings.remote.interval_hours))}
