"""Refresh policy (interval + jitter, backoff 5 min -> 4 h) and the `remote:` settings with their off switch."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from engine import config
from engine.errors import UsageError
from engine.profiles import policy

T0 = datetime(2026, 12, 1, tzinfo=timezone.utc)


def test_backoff_doubles_from_5_minutes_to_at_most_4_hours():
    minutes = [policy.backoff(n).total_seconds() / 60 for n in range(1, 10)]
    assert minutes == [5, 10, 20, 40, 80, 160, 240, 240, 240]
    rng = random.Random(7)
    for n in range(1, 12):
        delay = policy.after_failure(T0, n, 24, rng) - T0
        assert policy.backoff(n) * 0.8 <= delay <= min(policy.backoff(n) * 1.2, timedelta(hours=4))
    assert policy.after_failure(T0, 9, interval_hours=1, rng=rng) - T0 <= timedelta(hours=1)  # never past the interval


def test_interval_has_jitter_and_spreads_a_fleet():
    rng = random.Random(1)
    delays = [(policy.after_success(T0, 24, rng) - T0).total_seconds() / 3600 for _ in range(200)]
    assert min(delays) >= 24 * 0.8 and max(delays) <= 24 * 1.2 and max(delays) - min(delays) > 4


def test_due_and_stale():
    assert policy.due(None) and policy.due("not a time")
    assert not policy.due(policy.iso(T0 + timedelta(minutes=1)), T0)
    assert policy.due(policy.iso(T0), T0 + timedelta(seconds=1))
    assert not policy.stale(policy.iso(T0), 24, T0 + timedelta(hours=28))  # within interval + 20 %
    assert policy.stale(policy.iso(T0), 24, T0 + timedelta(hours=29)) and policy.stale(None, 24, T0)


def write_config(tmp_path, monkeypatch, text: str):
    monkeypatch.setenv("LEMONADE_AUTOTUNE_CONFIG_DIR", str(tmp_path))
    monkeypatch.delenv("LEMONADE_AUTOTUNE_REMOTE", raising=False)
    (tmp_path / "config.yaml").write_text(text, encoding="utf-8")


def test_remote_settings_and_the_off_switches(tmp_path, monkeypatch):
    write_config(tmp_path, monkeypatch, "remote:\n  url: https://m.example/\n  trusted_root: keys/root.json\n"
                                        "  interval_hours: 6\n  timeout_s: 2\n")
    r = config.load().remote
    assert r.enabled and r.url == "https://m.example/" and r.interval_hours == 6.0 and r.timeout_s == 2.0
    assert r.trusted_root == str(tmp_path / "keys" / "root.json")  # relative to the config file
    monkeypatch.setenv("LEMONADE_AUTOTUNE_REMOTE", "0")
    r = config.load().remote
    assert not r.enabled and "LEMONADE_AUTOTUNE_REMOTE=0" in r.why
    monkeypatch.delenv("LEMONADE_AUTOTUNE_REMOTE")
    write_config(tmp_path, monkeypatch, "scenario: chat\nremote: {enabled: false}\n")
    r = config.load().remote
    assert not r.enabled and "config.yaml:2" in r.why
    assert config.rulebook_roots(config.load())[0].name == "rulebook"  # the bundled one, nothing started


@pytest.mark.parametrize(("text", "says"), [
    ("remote: {urll: x}\n", "config.yaml:1:1 remote.urll: unknown setting"),
    ("remote: {interval_hours: yes}\n", "remote.interval_hours: expected int"),
    ("remote: {timeout_s: 500}\n", "remote.timeout_s: 500 is outside"),
    ("remote: [1]\n", "remote: expected dict"),
])
def test_bad_remote_settings_say_where(tmp_path, monkeypatch, text, says):
    write_config(tmp_path, monkeypatch, text)
    with pytest.raises(UsageError, match=None) as err:
        config.load()
    assert says in str(err.value)


def test_bad_env_switch(tmp_path, monkeypatch):
    write_config(tmp_path, monkeypatch, "")
    monkeypatch.setenv("LEMONADE_AUTOTUNE_REMOTE", "maybe")
    with pytest.raises(UsageError, match="LEMONADE_AUTOTUNE_REMOTE='maybe'"):
        config.load()
