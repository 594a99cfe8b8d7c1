"""Refresh like a good daemon, against a real repository over loopback: a start that finds a refresh due launches
it in the background and serves the last good rulebook; the next start uses what it activated; a long-running
Engine swaps the new rulebook in through a Refresher thread; after a failure the backoff holds off the next try."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import timedelta

import pytest

from engine import config
from engine.profiles import policy, refresher
from engine.profiles.store import Store
from tests.engine.profiles.tufrepo import Repo, closed_port_url, serving


@pytest.fixture
def setup(tmp_path, monkeypatch):
    monkeypatch.setenv("LEMONADE_AUTOTUNE_PROFILES_DIR", str(tmp_path / "profiles"))
    monkeypatch.setenv("LEMONADE_AUTOTUNE_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("LEMONADE_AUTOTUNE_REMOTE", raising=False)
    repo = Repo(tmp_path / "mirror")
    repo.publish(1)
    return tmp_path, repo


def configure(tmp_path, url: str, repo: Repo, interval: float = 24) -> None:
    (tmp_path / "config").mkdir(exist_ok=True)
    (tmp_path / "config" / "config.yaml").write_text(
        f"remote:\n  url: {url}\n  trusted_root: {repo.trusted_root}\n  interval_hours: {interval}\n")


def wait_for(pred, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_start_refreshes_in_the_background_and_the_next_start_uses_it(setup):
    tmp, repo = setup
    with serving(repo.dir, tmp / "http.log") as srv:
        configure(tmp, srv.url, repo)
        p = subprocess.run([sys.executable, "-m", "engine", "status", "--json"], capture_output=True, timeout=60)
        assert p.returncode == 0, p.stderr.decode()
        first = json.loads(p.stdout)["rulebook"]
        assert first["origin"] == "bundled"  # this start did not wait for the network
        wait_for(lambda: Store().state().active == 1)  # the detached refresh activated remote@1
        wait_for(lambda: Store().state().outcome == "updated")
        second = subprocess.run([sys.executable, "-m", "engine", "status", "--json"], capture_output=True, timeout=60)
        book = json.loads(second.stdout)["rulebook"]
        assert book["origin"] == "remote@1" and book["remote"]["state"] == "fresh"
        st = Store().state()
        assert policy.parse(st.next_attempt) > policy.now() + timedelta(hours=19)  # not due for a day
        assert refresher.start_if_due(config.load()) is False  # ... so the next start launches nothing


def test_a_failed_refresh_backs_off(setup):
    tmp, repo = setup
    configure(tmp, closed_port_url(), repo)
    from engine.profiles import client

    out = client.update(config.load())
    assert out.outcome == "offline"
    st = Store().state()
    wait = policy.parse(st.next_attempt) - policy.now()
    assert timedelta(minutes=3) < wait <= timedelta(minutes=6) and st.failures == 1
    assert refresher.start_if_due(config.load()) is False  # within the backoff: no new try
    out = client.update(config.load())  # an explicit update still tries (and doubles the backoff)
    assert Store().state().failures == 2
    wait = policy.parse(Store().state().next_attempt) - policy.now()
    assert timedelta(minutes=7) < wait <= timedelta(minutes=12)


def test_a_refresher_swaps_the_new_rulebook_into_a_running_engine(setup):
    from engine.session import Engine

    tmp, repo = setup
    with serving(repo.dir, tmp / "http.log") as srv:
        configure(tmp, srv.url, repo, interval=0.01)
        settings = config.load()
        eng = Engine(config.load_book(settings, refresh=False), evaluator="python")
        before = eng.rulebook
        outcomes = []
        r = refresher.Refresher(settings, lambda: eng.reload(config.load_book(settings, refresh=False)),
                                on_outcome=outcomes.append, poll_s=0.1).start()
        try:
            wait_for(lambda: any(x.id == "remote-marker-v1" for x in eng.rulebook.rules))
            assert eng.rulebook is not before
            repo.publish(2)  # the mirror moves on: the thread's next refresh (interval 36 s) ...
            Store().update_state(next_attempt=policy.iso(policy.now()))  # ... made due now
            wait_for(lambda: any(o.outcome == "updated" and o.active == 2 for o in outcomes))
            wait_for(lambda: any(x.id == "remote-marker-v2" for x in eng.rulebook.rules))
        finally:
            r.stop()
            eng.close()
