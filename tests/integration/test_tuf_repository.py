"""A real TUF repository (made here with real keys, served by a real `python -m http.server` on 127.0.0.1) against
the client: fresh install, update, offline, expired metadata, rollback, mix-and-match, tampered target, a signed
rulebook that fails lint, key rotation. Each case checks the active rulebook and what `engine profiles status`
says."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engine import config
from engine.cli import main
from engine.profiles import client, manage, publisher
from tests.engine.profiles.tufrepo import Repo, closed_port_url, serving

SYSTEM_INFO = Path(__file__).resolve().parents[1] / "fixtures" / "system-info" / "rtx-4090-desktop-linux.json"


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A fresh profiles store and config dir for each test."""
    monkeypatch.setenv("LEMONADE_AUTOTUNE_PROFILES_DIR", str(tmp_path / "profiles"))
    monkeypatch.setenv("LEMONADE_AUTOTUNE_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("LEMONADE_AUTOTUNE_REMOTE", raising=False)
    return tmp_path


@pytest.fixture
def repo(env):
    r = Repo(env / "mirror")
    r.publish(1)
    return r


def update(srv_url: str, repo: Repo, capsys, *extra: str) -> dict:
    capsys.readouterr()
    code = main(["profiles", "update", "--url", srv_url, "--trusted-root", str(repo.trusted_root), "--json", *extra])
    doc = json.loads(capsys.readouterr().out)
    doc["exit"] = code
    return doc


def status(capsys) -> dict:
    capsys.readouterr()
    assert main(["profiles", "status", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def active_marker() -> int | None:
    """Which test rulebook version the rulebook in force is (its marker rule), None for the bundled one."""
    book = config.load_book(config.load())
    ids = [r.id for r in book.rules if r.id.startswith("remote-marker-v")]
    assert len(ids) <= 1
    if not ids:
        assert config.rulebook_roots(config.load(), refresh=False)[0].name == "rulebook"  # the bundled one
        return None
    return int(ids[0].removeprefix("remote-marker-v"))


def llamacpp_args() -> list[str]:
    from engine.session import Engine
    from facts import from_system_info
    from facts.registry import resolve_model_spec

    eng = Engine(config.load_book(config.load()), evaluator="python")
    try:
        rec = eng.recommend(from_system_info(json.loads(SYSTEM_INFO.read_text())), resolve_model_spec("Qwen3-8B-GGUF"))
        return rec.recipe_options()["llamacpp_args"].split()
    finally:
        eng.close()


def test_fresh_install_activates_the_remote_rulebook(repo, env, capsys):
    assert active_marker() is None and status(capsys)["state"] == "not-configured"
    with serving(repo.dir, env / "http.log") as srv:
        doc = update(srv.url, repo, capsys)
    assert doc["exit"] == 0 and doc["outcome"] == "updated" and doc["active"] == 1
    assert active_marker() == 1
    args = llamacpp_args()
    assert args[args.index("-np") + 1] == "1"  # recommend uses the remote rulebook's rule
    st = status(capsys)
    assert st["origin"] == "remote@1" and st["state"] == "fresh" and st["installed"] == [1]
    capsys.readouterr()
    assert main(["status", "--json", "--system-info", str(SYSTEM_INFO)]) == 0
    book = json.loads(capsys.readouterr().out)["rulebook"]
    assert book["origin"] == "remote@1" and book["remote"]["state"] == "fresh"
    assert Path(book["roots"][0]).name == "remote@1"
    rules = config.load_book(config.load()).rules
    assert all(r.source.startswith("remote@1/") for r in rules)  # every rule's source names its origin ...
    capsys.readouterr()
    assert main(["explain", "--model", "Qwen3-8B-GGUF", "--system-info", str(SYSTEM_INFO)]) == 0
    out = capsys.readouterr().out
    assert "remote@1/families/marker.yaml" in out and "rulebook/" not in out  # ... and explain shows it
    assert main(["recommend", "--model", "Qwen3-8B-GGUF", "--system-info", str(SYSTEM_INFO), "--json"]) == 0
    args = json.loads(capsys.readouterr().out)["recipe_options"]["llamacpp_args"].split()
    assert args[args.index("-np") + 1] == "1"


def test_update_then_no_change_fetches_only_the_timestamp(repo, env, capsys):
    with serving(repo.dir, env / "http.log") as srv:
        assert update(srv.url, repo, capsys)["active"] == 1
        repo.publish(2)
        doc = update(srv.url, repo, capsys)
        assert doc["outcome"] == "updated" and doc["active"] == 2 and active_marker() == 2
        before = len(srv.requests())
        again = update(srv.url, repo, capsys)
        fetched = srv.requests()[before:]
    assert again["outcome"] == "no-change" and again["exit"] == 0
    # the next root (404: none) and the timestamp; snapshot, targets and the rulebook come from the cache
    assert [r.split()[1] for r in fetched] == ["/metadata/2.root.json", "/metadata/timestamp.json"]
    assert status(capsys)["installed"] == [1, 2]


def test_offline_keeps_the_cache_and_a_fresh_install_falls_back_to_bundled(repo, env, capsys):
    doc = update(closed_port_url(), repo, capsys)
    assert doc["exit"] == 1 and doc["outcome"] == "offline" and active_marker() is None
    st = status(capsys)
    assert st["state"] == "fallback-to-bundled" and "cannot be reached" in st["why"]
    with serving(repo.dir, env / "http.log") as srv:
        assert update(srv.url, repo, capsys)["active"] == 1
    doc = update(closed_port_url(), repo, capsys)
    assert doc["outcome"] == "offline" and doc["active"] == 1 and active_marker() == 1
    st = status(capsys)
    assert st["state"] == "offline-using-cache" and st["origin"] == "remote@1" and st["failures"] == 1
    assert "cannot be reached" in st["why"]


def test_expired_timestamp_is_a_freeze_and_is_refused(repo, env, capsys):
    with serving(repo.dir, env / "http.log") as srv:
        assert update(srv.url, repo, capsys)["active"] == 1
        repo.publish(2, timestamp=-1.0)  # the mirror serves a timestamp that expired a day ago
        doc = update(srv.url, repo, capsys)
    assert doc["exit"] == 1 and doc["outcome"] == "rejected" and "expired" in doc["message"]
    assert active_marker() == 1
    st = status(capsys)
    assert st["state"] == "stale" and "expired" in st["why"] and st["origin"] == "remote@1"


def test_replayed_old_metadata_is_a_rollback_and_is_refused(repo, env, capsys):
    old = repo.snapshot_files()
    with serving(repo.dir, env / "http.log") as srv:
        repo.publish(2)
        assert update(srv.url, repo, capsys)["active"] == 2
        repo.restore(old, only=("metadata/timestamp.json",))  # an attacker replays the v1-era timestamp
        doc = update(srv.url, repo, capsys)
    assert doc["outcome"] == "rejected" and "rollback" in doc["message"] and active_marker() == 2
    assert status(capsys)["state"] == "stale"


def test_mix_and_match_snapshot_is_refused(repo, env, capsys):
    with serving(repo.dir, env / "http.log") as srv:
        assert update(srv.url, repo, capsys)["active"] == 1
        repo.publish(2)
        ts = json.loads((repo.dir / "metadata" / "timestamp.json").read_text())
        n = ts["signed"]["meta"]["snapshot.json"]["version"]
        # the attacker serves the previous (validly signed) snapshot under the name the new timestamp asks for
        shutil.copy(repo.dir / "metadata" / f"{n - 1}.snapshot.json", repo.dir / "metadata" / f"{n}.snapshot.json")
        doc = update(srv.url, repo, capsys)
    assert doc["outcome"] == "rejected" and active_marker() == 1


def test_tampered_target_is_refused(repo, env, capsys):
    with serving(repo.dir, env / "http.log") as srv:
        assert update(srv.url, repo, capsys)["active"] == 1
        info = repo.publish(2)
        for target in (repo.dir / "targets").rglob(f"{info['sha256']}.*"):
            data = bytearray(target.read_bytes())
            i = data.index(b"parallel: 2")
            data[i:i + 11] = b"parallel: 9"  # same length, different bytes: only the hash can tell
            target.write_bytes(bytes(data))
        doc = update(srv.url, repo, capsys)
    assert doc["outcome"] == "rejected" and "tampered" in doc["message"] and active_marker() == 1
    assert status(capsys)["state"] == "stale"


BAD_FLAG = """\
rules:
  - id: sneaky-port
    description: a signed rule that tries to move the server
    layer: family
    priority: 10
    when: {recipe: llamacpp}
    set: {extra_args: ["--port", "1"]}
    evidence: none
"""

USER_LAYER = """\
rules:
  - id: outrank-the-user
    description: a signed rule in the user's layer
    layer: user
    priority: 10
    when: {recipe: llamacpp}
    set: {ctx_size: 4096}
    evidence: none
"""


@pytest.mark.parametrize("extra", [BAD_FLAG, USER_LAYER], ids=["reserved-flag", "user-layer"])
def test_a_signed_rulebook_that_fails_the_checks_is_not_activated(repo, env, capsys, monkeypatch, extra):
    with serving(repo.dir, env / "http.log") as srv:
        assert update(srv.url, repo, capsys)["active"] == 1
        _publish_unchecked(repo, 2, extra, monkeypatch)
        doc = update(srv.url, repo, capsys)
    assert doc["outcome"] == "invalid" and "remote rulebook version 2 refused" in doc["message"]
    assert active_marker() == 1 and 2 not in status(capsys)["installed"]


def _publish_unchecked(repo: Repo, n: int, extra: str, monkeypatch) -> None:
    """What a compromised maintainer could sign: the publisher's own checks are skipped (they refuse this too)."""
    from engine.profiles import activate

    with pytest.raises(activate.ActivationError):
        repo.publish(n, extra=extra)
    with monkeypatch.context() as m:
        m.setattr(activate, "check", lambda root, version: activate.Checked("x", 0, 0))
        repo.publish(n, extra=extra)


def test_key_rotation_is_followed_and_the_old_key_is_refused(repo, env, capsys):
    with serving(repo.dir, env / "http.log") as srv:
        assert update(srv.url, repo, capsys)["active"] == 1
        old_keys = env / "old-keys"
        shutil.copytree(repo.keys, old_keys)
        new = publisher.keygen(env / "new-keys")
        by_role = {p.stem: p for p in new}
        for role in ("timestamp", "root"):  # an online key, then the root key itself
            publisher.rotate(repo.dir, repo.keys, role, by_role[role], repo.keys / "root.key")
            shutil.copy(by_role[role], repo.keys / f"{role}.key")
        repo.publish(2)
        doc = update(srv.url, repo, capsys)
        assert doc["outcome"] == "updated" and doc["active"] == 2  # the client walked root 1 -> 2 -> 3
        tuf_dir = next((env / "profiles" / "tuf").iterdir()) / "metadata" / "root_history"
        assert sorted(p.name for p in tuf_dir.iterdir()) == ["1.root.json", "2.root.json", "3.root.json"]
        # the revoked timestamp key signs a newer timestamp: refused
        from tuf.api.metadata import Metadata

        ts = Metadata.from_file(str(repo.dir / "metadata" / "timestamp.json"))
        ts.signed.version += 1
        ts.sign(publisher.load_signer(old_keys / "timestamp.key"), append=False)
        (repo.dir / "metadata" / "timestamp.json").write_bytes(ts.to_bytes())
        doc = update(srv.url, repo, capsys)
    assert doc["outcome"] == "rejected" and "signature" in doc["message"] and active_marker() == 2


def test_pin_and_rollback(repo, env, capsys):
    with serving(repo.dir, env / "http.log") as srv:
        assert update(srv.url, repo, capsys)["active"] == 1
        repo.publish(2)
        repo.publish(3)
        assert update(srv.url, repo, capsys)["active"] == 3
        capsys.readouterr()
        assert main(["profiles", "rollback", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["active"] == 1 and active_marker() == 1  # 2 was never stored
        assert update(srv.url, repo, capsys)["outcome"] == "pinned" and active_marker() == 1  # a pin holds
        settings = config.load()
        out = manage.pin(settings, 2, url=srv.url, trusted_root=str(repo.trusted_root))  # fetched, verified
        assert out.active == 2 and active_marker() == 2 and status(capsys)["pinned"] is True
        capsys.readouterr()
        assert main(["profiles", "pin", "latest", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["active"] == 3 and active_marker() == 3
        assert client.update(settings).outcome == "no-change"  # the mirror is remembered from the last update


def test_the_off_switch_uses_the_bundled_rulebook_and_fetches_nothing(repo, env, capsys, monkeypatch):
    with serving(repo.dir, env / "http.log") as srv:
        assert update(srv.url, repo, capsys)["active"] == 1
        monkeypatch.setenv("LEMONADE_AUTOTUNE_REMOTE", "0")
        assert active_marker() is None
        st = status(capsys)
        assert st["state"] == "off" and st["origin"] == "bundled" and "LEMONADE_AUTOTUNE_REMOTE=0" in st["why"]
        n = len(srv.requests())
        assert main(["profiles", "update", "--url", srv.url, "--trusted-root", str(repo.trusted_root)]) == 2
        assert len(srv.requests()) == n
