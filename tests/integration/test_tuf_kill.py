"""kill -9 of `engine profiles update` in the middle (a real process; downloading from a slow real server, while
staging and linting the new version, and at points spread over a whole update) leaves a store the next start
accepts: the previous or the new version is active and intact, and the next update completes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine import config
from engine.profiles.store import Store
from tests.engine.profiles.tufrepo import Repo, serving

pytestmark = pytest.mark.skipif(os.name == "nt", reason="SIGKILL is POSIX")
SLOW = Path(__file__).resolve().parents[1] / "engine" / "profiles" / "slow_http.py"


@pytest.fixture
def setup(tmp_path, monkeypatch):
    monkeypatch.setenv("LEMONADE_AUTOTUNE_PROFILES_DIR", str(tmp_path / "profiles"))
    monkeypatch.setenv("LEMONADE_AUTOTUNE_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("LEMONADE_AUTOTUNE_REMOTE", raising=False)
    repo = Repo(tmp_path / "mirror")
    repo.publish(1)
    return tmp_path, repo


def updater(url: str, repo: Repo) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "engine", "profiles", "update", "--url", url,
                             "--trusted-root", str(repo.trusted_root), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def run_update(url: str, repo: Repo) -> dict:
    p = updater(url, repo)
    out, err = p.communicate(timeout=60)
    assert p.returncode in (0, 1), err.decode()
    return json.loads(out)


def kill(p: subprocess.Popen) -> None:
    os.kill(p.pid, signal.SIGKILL)
    p.communicate(timeout=30)
    assert p.returncode == -signal.SIGKILL  # it was still running: the kill landed in the middle


def next_start_accepts(expect: set[int], new_process: bool = True) -> int:
    """The next start reads the store (a new process, or this one): status works, the active version is one we
    expect and intact, and the rulebook in force is that version."""
    if new_process:
        p = subprocess.run([sys.executable, "-m", "engine", "profiles", "status", "--json"], capture_output=True,
                           timeout=60)
        assert p.returncode == 0, p.stderr.decode()
        doc = json.loads(p.stdout)
    else:
        from engine.commands.profiles import status_payload

        doc = status_payload(config.load())
    active = doc["active"]
    assert active in expect and doc["origin"] == f"remote@{active}"
    assert Store().problem(active) is None
    book = config.load_book(config.load())
    assert [r.id for r in book.rules if r.id.startswith("remote-marker")] == [f"remote-marker-v{active}"]
    return active


def test_kill_while_downloading_the_target(setup):
    tmp, repo = setup
    with serving(repo.dir, tmp / "http.log") as fast:
        assert run_update(fast.url, repo)["active"] == 1
        repo.publish(2)
        slow = subprocess.Popen([sys.executable, "-u", str(SLOW), str(repo.dir)], stdout=subprocess.PIPE)
        try:
            port = int(slow.stdout.readline().split()[1])
            p = updater(f"http://127.0.0.1:{port}/", repo)
            assert slow.stdout.readline().startswith(b"TARGET ")  # the rulebook download has begun
            time.sleep(0.1)
            kill(p)
        finally:
            slow.kill()
            slow.communicate(timeout=10)
        assert next_start_accepts({1}) == 1
        assert run_update(fast.url, repo)["active"] == 2
        assert next_start_accepts({2}) == 2


def test_kill_while_staging_and_linting_the_new_version(setup):
    tmp, repo = setup
    versions = tmp / "profiles" / "versions"
    with serving(repo.dir, tmp / "http.log") as fast:
        assert run_update(fast.url, repo)["active"] == 1
        repo.publish(2)
        p = updater(fast.url, repo)
        deadline = time.monotonic() + 30
        while not any(versions.glob(".tmp-*/remote@2")) and time.monotonic() < deadline and p.poll() is None:
            time.sleep(0.001)
        kill(p)
        assert any(versions.glob(".tmp-*"))  # a half-written version was left behind ...
        assert next_start_accepts({1}) == 1  # ... and is never used
        assert run_update(fast.url, repo)["active"] == 2
        assert not any(versions.glob(".tmp-*"))  # the next update removed it
        assert next_start_accepts({2}) == 2


def test_kill_at_points_spread_over_an_update(setup):
    tmp, repo = setup
    with serving(repo.dir, tmp / "http.log") as fast:
        assert run_update(fast.url, repo)["active"] == 1
        t0 = time.monotonic()
        repo.publish(2)
        run_update(fast.url, repo)  # measure one whole update (start-up included) ...
        whole = time.monotonic() - t0
        n = 2
        for frac in (0.35, 0.75):  # ... then kill later and later into the next ones
            n += 1
            repo.publish(n)
            p = updater(fast.url, repo)
            time.sleep(whole * frac)
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
            p.communicate(timeout=30)
            active = next_start_accepts({n - 1, n}, new_process=False)
            if active != n:
                assert run_update(fast.url, repo)["active"] == n
        assert next_start_accepts({n}) == n
