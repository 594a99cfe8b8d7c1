"""`engine publish` and `engine profiles` on the command line: what a maintainer and a user type, the text they
read, and the exit codes of their mistakes."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from engine.cli import main
from tests.engine.profiles.tufrepo import rulebook, serving

SYSTEM_INFO = Path(__file__).resolve().parents[1] / "fixtures" / "system-info" / "rtx-4090-desktop-linux.json"


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("LEMONADE_AUTOTUNE_PROFILES_DIR", str(tmp_path / "profiles"))
    monkeypatch.setenv("LEMONADE_AUTOTUNE_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("LEMONADE_AUTOTUNE_REMOTE", raising=False)
    return tmp_path


def test_a_maintainer_publishes_and_a_user_follows(env, capsys):
    keys, repo = env / "keys", env / "repo"
    assert main(["publish", "--keygen", str(keys)]) == 0
    assert "keep root.key offline" in capsys.readouterr().out
    assert sorted(p.name for p in keys.iterdir()) == ["root.key", "snapshot.key", "targets.key", "timestamp.key"]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in keys.iterdir())
    assert main(["publish", "--keygen", str(keys)]) == 2  # keys are never overwritten
    capsys.readouterr()
    offline = env / "offline-root.key"
    (keys / "root.key").rename(offline)  # the root key lives elsewhere
    assert main(["publish", str(rulebook(env / "rb1", 1)), "--repo", str(repo), "--keys", str(keys)]) == 2
    assert "needs the root key" in capsys.readouterr().err
    assert main(["publish", str(rulebook(env / "rb1", 1)), "--repo", str(repo), "--keys", str(keys),
                 "--root-key", str(offline)]) == 0
    assert "created" in capsys.readouterr().out and (repo / "metadata" / "1.root.json").is_file()
    assert main(["publish", str(rulebook(env / "rb2", 2)), "--repo", str(repo), "--keys", str(keys), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["version"] == 2 and doc["created"] is False and doc["metadata"]["targets"] == 3
    assert main(["publish", str(env / "rb1"), "--repo", str(repo), "--keys", str(keys), "--version", "1"]) == 2
    assert "versions only go up" in capsys.readouterr().err
    assert main(["publish", "--timestamp", "--repo", str(repo), "--keys", str(keys), "--timestamp-days", "2"]) == 0
    assert "timestamp version 4" in capsys.readouterr().out

    with serving(repo, env / "http.log") as srv:
        assert main(["profiles", "update", "--url", srv.url, "--trusted-root",
                     str(repo / "metadata" / "1.root.json")]) == 0
        out = capsys.readouterr().out
        assert out.startswith("updated: activated remote@2") and "remote: fresh" in out
    assert main(["profiles", "status"]) == 0
    out = capsys.readouterr().out
    assert "rulebook: remote@2" in out and "stored versions: remote@2" in out
    assert main(["status", "--system-info", str(SYSTEM_INFO)]) == 0
    assert "rulebook origin: remote@2; remote: fresh" in capsys.readouterr().out
    assert main(["profiles", "rollback"]) == 0  # no earlier version stored: back to the bundled rulebook
    assert "rolled back from remote@2 to the bundled rulebook" in capsys.readouterr().out
    assert main(["profiles", "status", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["origin"] == "bundled" and doc["state"] == "fallback-to-bundled" and "pinned" in doc["why"]
    assert main(["profiles", "pin", "2"]) == 0  # stored: no network needed
    assert "pinned to remote@2" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "says"), [
    (["profiles", "update"], "no profiles mirror is configured"),
    (["profiles", "pin", "two"], "expected a positive integer"),
    (["profiles", "rollback"], "nothing to roll back"),
    (["profiles", "update", "--url", "http://127.0.0.1:9/", "--trusted-root", "/nonexistent/root.json"],
     "cannot read the trusted root"),
    (["publish", "--repo", "r", "--keys", "k"], "give RULEBOOK_DIR"),
    (["publish", "--rotate", "timestamp", "--repo", "r"], "--keys and --root-key and --new-key required"),
    (["submit", "missing.json"], "missing.json"),
])
def test_mistakes_exit_2_and_say_what_to_do(env, capsys, argv, says):
    assert main(argv) == 2
    assert says in capsys.readouterr().err
