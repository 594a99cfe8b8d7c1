"""The publisher: a TUF repository of static files (python-tuf's Metadata API), servable by any static HTTP host.

    repo/metadata/  1.root.json, 2.root.json, ... (every root, for clients walking a key rotation), root.json
                    (a copy of the newest), N.targets.json, N.snapshot.json (consistent snapshots), timestamp.json
    repo/targets/   <sha256>.rulebook.json (the latest bundle), rulebooks/<sha256>.<N>.json (every version)

Keys (`keygen`): one Ed25519 key per role, PEM PKCS#8 files `<role>.key` (mode 0600). The root key signs only
the root of trust: keep it offline and give it (`--root-key`) only to create the repository or rotate a key.
The targets key signs rulebooks (a maintainer's), the snapshot and timestamp keys are online keys (CI or a cron
job re-signs the timestamp before it expires: `engine publish --timestamp`). Versioned files are written first
and timestamp.json last, so a client never sees a timestamp that names files not yet there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from engine.errors import UsageError
from engine.profiles.bundle import pack
from engine.profiles.client import LATEST, version_target

ROLES = ("root", "targets", "snapshot", "timestamp")
ONLINE = ("targets", "snapshot", "timestamp")
EXPIRY_DAYS = {"root": 365.0, "targets": 90.0, "snapshot": 30.0, "timestamp": 7.0}


class PublishError(UsageError):
    code = "publish"


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def keygen(directory: Path) -> list[Path]:
    """One new Ed25519 key per role in `directory`; refuses to overwrite an existing key."""
    from securesystemslib.signer import CryptoSigner

    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for role in ROLES:
        path = directory / f"{role}.key"
        if path.exists():
            raise PublishError(f"{path} exists; keys are never overwritten (move it away first)")
        signer = CryptoSigner.generate_ed25519()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(signer.private_bytes)
        out.append(path)
    return out


def load_signer(path: Path) -> Any:
    """A CryptoSigner from a PEM PKCS#8 private key file."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from securesystemslib.signer import CryptoSigner

    try:
        return CryptoSigner(load_pem_private_key(path.read_bytes(), password=None))
    except OSError as err:
        raise PublishError(f"{path}: cannot read the key ({err.strerror})") from None
    except (ValueError, TypeError) as err:
        raise PublishError(f"{path}: not an unencrypted PEM PKCS#8 private key ({err})") from None


@dataclass
class Expiry:
    """Days until each role's metadata expires (negative: already expired, for tests of a frozen mirror)."""

    days: dict[str, float]

    @classmethod
    def default(cls, **over: float) -> Expiry:
        return cls({**EXPIRY_DAYS, **over})

    def at(self, role: str, now: datetime) -> datetime:
        return now + timedelta(days=self.days[role])


class Repository:
    """A repository directory: read its newest metadata, write new versions."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.metadata = root / "metadata"
        self.targets = root / "targets"

    def exists(self) -> bool:
        return (self.metadata / "1.root.json").is_file()

    def root_version(self) -> int:
        n = 1
        while (self.metadata / f"{n + 1}.root.json").is_file():
            n += 1
        return n

    def load(self, role: str) -> Any:
        from tuf.api.metadata import Metadata

        if role == "root":
            name = f"{self.root_version()}.root.json"
        elif role == "timestamp":
            name = "timestamp.json"
        elif role == "snapshot":
            name = f"{self.load('timestamp').signed.snapshot_meta.version}.snapshot.json"
        else:
            name = f"{self.load('snapshot').signed.meta['targets.json'].version}.targets.json"
        try:
            return Metadata.from_file(str(self.metadata / name))
        except (OSError, ValueError) as err:
            raise PublishError(f"{self.metadata / name}: cannot read the repository's {role} metadata ({err})") from None

    def write(self, role: str, md: Any) -> Path:
        self.metadata.mkdir(parents=True, exist_ok=True)
        data = md.to_bytes()
        names = ["timestamp.json"] if role == "timestamp" else [f"{md.signed.version}.{role}.json"]
        if role == "root":
            names.append("root.json")
        for name in names:
            tmp = self.metadata / f".{name}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, self.metadata / name)
        return self.metadata / names[0]


def _sign(md: Any, signers: list[Any]) -> None:
    md.signatures.clear()
    for s in signers:
        md.sign(s, append=True)


def _check_key(root: Any, role: str, signer: Any, path: Path) -> None:
    if signer.public_key.keyid not in root.roles[role].keyids:
        raise PublishError(f"{path}: not a {role} key of this repository (its root lists "
                           f"{', '.join(k[:12] for k in root.roles[role].keyids)})")


def _online(repo: Repository, keys: Path, root: Any) -> dict[str, Any]:
    out = {}
    for role in ONLINE:
        path = keys / f"{role}.key"
        out[role] = load_signer(path)
        _check_key(root, role, out[role], path)
    return out


def init(repo: Repository, keys: Path, root_key: Path, *, expiry: Expiry, now: datetime) -> None:
    """Root v1 (consistent snapshots, threshold 1 per role), empty targets, snapshot and timestamp v1."""
    from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, Targets, Timestamp

    signers = {role: load_signer(root_key if role == "root" else keys / f"{role}.key") for role in ROLES}
    root = Root(expires=expiry.at("root", now), consistent_snapshot=True)
    for role, s in signers.items():
        root.add_key(s.public_key, role)
    md_root = Metadata(root)
    _sign(md_root, [signers["root"]])
    repo.write("root", md_root)
    targets = Metadata(Targets(expires=expiry.at("targets", now)))
    _sign(targets, [signers["targets"]])
    repo.write("targets", targets)
    snapshot = Metadata(Snapshot(expires=expiry.at("snapshot", now)))
    snapshot.signed.meta["targets.json"] = MetaFile(version=1)
    _sign(snapshot, [signers["snapshot"]])
    repo.write("snapshot", snapshot)
    timestamp = Metadata(Timestamp(expires=expiry.at("timestamp", now), snapshot_meta=MetaFile(version=1)))
    _sign(timestamp, [signers["timestamp"]])
    repo.write("timestamp", timestamp)


def _chain(repo: Repository, signers: dict[str, Any], expiry: Expiry, now: datetime, *, targets: Any = None,
           snapshot: bool = True) -> dict[str, int]:
    """Bump and sign targets (when given), snapshot and timestamp, in that order; their new versions."""
    from tuf.api.metadata import MetaFile

    out: dict[str, int] = {}
    snap = repo.load("snapshot")
    if targets is not None:
        targets.signed.version += 1
        targets.signed.expires = expiry.at("targets", now)
        _sign(targets, [signers["targets"]])
        repo.write("targets", targets)
        snap.signed.meta["targets.json"] = MetaFile.from_data(targets.signed.version, targets.to_bytes(), ["sha256"])
        out["targets"] = targets.signed.version
    if snapshot or targets is not None:
        snap.signed.version += 1
        snap.signed.expires = expiry.at("snapshot", now)
        _sign(snap, [signers["snapshot"]])
        repo.write("snapshot", snap)
        out["snapshot"] = snap.signed.version
    ts = repo.load("timestamp")
    ts.signed.version += 1
    ts.signed.expires = expiry.at("timestamp", now)
    ts.signed.snapshot_meta = MetaFile.from_data(snap.signed.version, snap.to_bytes(), ["sha256"])
    _sign(ts, [signers["timestamp"]])
    repo.write("timestamp", ts)
    out["timestamp"] = ts.signed.version
    return out


def versions(targets: Any) -> list[int]:
    """The rulebook versions a targets metadata lists."""
    out = []
    for path, tf in targets.signed.targets.items():
        v = (tf.custom or {}).get("version") if isinstance(tf.custom, dict) else None
        if path.startswith("rulebooks/") and isinstance(v, int):
            out.append(v)
    return sorted(out)


def publish(rulebook: Path, repo_dir: Path, keys: Path, *, version: int | None = None, root_key: Path | None = None,
            expiry: Expiry | None = None, now: datetime | None = None) -> dict[str, Any]:
    """Add `rulebook` as the next version (checked like a client checks it) and re-sign targets, snapshot and
    timestamp; creates the repository first (needs the root key) when there is none."""
    import hashlib
    import tempfile

    from tuf.api.metadata import TargetFile

    from engine.profiles import activate

    expiry = expiry or Expiry.default()
    now = now or _now()
    repo = Repository(repo_dir)
    created = False
    if not repo.exists():
        rk = root_key or keys / "root.key"
        if not rk.is_file():
            raise PublishError(f"{repo_dir} is not a TUF repository yet; creating one needs the root key "
                               f"(--root-key FILE; {rk} does not exist)")
        init(repo, keys, rk, expiry=expiry, now=now)
        created = True
    root = repo.load("root").signed
    signers = _online(repo, keys, root)
    targets = repo.load("targets")
    known = versions(targets)
    version = version if version is not None else (known[-1] + 1 if known else 1)
    if known and version <= known[-1]:
        raise PublishError(f"version {version}: the repository already has version {known[-1]}; versions only go "
                           "up (clients refuse a lower one as a rollback), so publish old content as a new version")
    bundle = pack(rulebook, version)
    with tempfile.TemporaryDirectory() as tmp:  # the same checks a client makes before activating it
        staged = Path(tmp) / f"remote@{version}"
        bundle.write(staged)
        checked = activate.check(staged, version)
    data = bundle.to_bytes()
    sha = hashlib.sha256(data).hexdigest()
    for path in (LATEST, version_target(version)):
        tf = TargetFile(len(data), {"sha256": sha}, path, {"custom": {"version": version}})
        targets.signed.targets[path] = tf
        dirname, _, base = path.rpartition("/")
        dest = repo.targets / dirname / f"{sha}.{base}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
    bumped = _chain(repo, signers, expiry, now, targets=targets)
    return {"repository": str(repo_dir), "created": created, "version": version, "sha256": sha,
            "bytes": len(data), "rules": checked.rules, "lint_warnings": checked.warnings, "metadata": bumped,
            "expires": {r: expiry.at(r, now).isoformat() for r in ONLINE}}


def resign_timestamp(repo_dir: Path, keys: Path, *, expiry: Expiry | None = None,
                     now: datetime | None = None) -> dict[str, Any]:
    """A new timestamp (same snapshot) before the old one expires: what an online cron job runs."""
    expiry = expiry or Expiry.default()
    now = now or _now()
    repo = Repository(repo_dir)
    if not repo.exists():
        raise PublishError(f"{repo_dir} is not a TUF repository (no metadata/1.root.json)")
    root = repo.load("root").signed
    signer = load_signer(keys / "timestamp.key")
    _check_key(root, "timestamp", signer, keys / "timestamp.key")
    bumped = _chain(repo, {"timestamp": signer}, expiry, now, snapshot=False)
    return {"repository": str(repo_dir), "metadata": bumped, "expires": expiry.at("timestamp", now).isoformat()}


def rotate(repo_dir: Path, keys: Path, role: str, new_key: Path, root_key: Path, *,
           expiry: Expiry | None = None, now: datetime | None = None) -> dict[str, Any]:
    """Replace `role`'s key with `new_key` in a new root version signed by the current root key (and, for the
    root role, by the new one too); then re-sign what that key signs. Clients walk the root chain to it.
    Afterwards `new_key` is that role's key: put it in the keys directory in place of the old one."""
    if role not in ROLES:
        raise PublishError(f"role {role!r}: expected one of {', '.join(ROLES)}")
    expiry = expiry or Expiry.default()
    now = now or _now()
    repo = Repository(repo_dir)
    if not repo.exists():
        raise PublishError(f"{repo_dir} is not a TUF repository (no metadata/1.root.json)")
    md_root = repo.load("root")
    root = md_root.signed
    old_root = load_signer(root_key)
    _check_key(root, "root", old_root, root_key)
    fresh = load_signer(new_key)
    for keyid in list(root.roles[role].keyids):
        root.revoke_key(keyid, role)
    root.add_key(fresh.public_key, role)
    root.version += 1
    root.expires = expiry.at("root", now)
    _sign(md_root, [old_root, fresh] if role == "root" else [old_root])
    repo.write("root", md_root)
    signers = {r: (fresh if r == role else load_signer(keys / f"{r}.key")) for r in ONLINE}
    bumped: dict[str, int] = {"root": root.version}
    if role in ONLINE:
        targets = repo.load("targets") if role == "targets" else None
        bumped.update(_chain(repo, signers, expiry, now, targets=targets, snapshot=role != "timestamp"))
    return {"repository": str(repo_dir), "role": role, "keyid": fresh.public_key.keyid, "metadata": bumped}
