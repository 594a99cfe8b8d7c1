"""Lemonade's config dir per platform (lemond's get_config_dir), the packaged service's dir, the URL from
config.json, lemond's command line, and JSON files that are not JSON."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import UsageError
from engine.lemonade import paths
from engine.lemonade.discovery import parse_argv
from engine.lemonade.paths import LemonadeHome, default_config_dir, find_config_dir, read_json_file


@pytest.mark.parametrize(("platform", "env", "euid", "want"), [
    ("linux", {"STATE_DIRECTORY": "/var/lib/lemonade", "HOME": "/var/lib/lemonade"}, 999, "/var/lib/lemonade"),
    ("linux", {"XDG_CONFIG_HOME": "/x", "HOME": "/home/u"}, 1000, "/x/lemonade"),
    ("linux", {"HOME": "/home/u"}, 1000, "/home/u/.config/lemonade"),
    ("linux", {}, 1000, None),
    ("darwin", {"HOME": "/Users/u"}, 501, "/Users/u/.config/lemonade"),
    ("darwin", {"HOME": "/var/root"}, 0, "/Library/Application Support/lemonade/.config"),
    ("darwin", {"XDG_CONFIG_HOME": "/x", "HOME": "/Users/u"}, 501, "/x/lemonade"),
    ("win32", {"USERPROFILE": "C:\\Users\\u"}, None, "C:\\Users\\u/.config/lemonade"),
])
def test_default_config_dir_is_lemonds(platform, env, euid, want):
    got = default_config_dir(env, platform, euid)
    assert (str(got) if got is not None else None) == want


def test_find_config_dir_order(tmp_path: Path, monkeypatch):
    user = tmp_path / "home" / ".config" / "lemonade"
    service = tmp_path / "var-lib-lemonade"
    monkeypatch.setattr(paths, "PACKAGED_SERVICE_DIR", service)
    env = {"HOME": str(tmp_path / "home")}
    assert find_config_dir("/given", "/configured", env, "linux") == (Path("/given"), "--lemonade-config")
    assert find_config_dir(None, "/configured", env, "linux")[0] == Path("/configured")
    assert find_config_dir(None, None, env, "linux") == (user, "the platform's Lemonade config dir (nothing there yet)")
    with pytest.raises(UsageError, match="pass --lemonade-config"):
        find_config_dir(None, None, {}, "linux")
    service.mkdir()
    (service / "config.json").write_text("{}")
    assert find_config_dir(None, None, env, "linux")[0] == service  # the packaged service has Lemonade files
    user.mkdir(parents=True)
    (user / "recipe_options.json").write_text("{}")
    assert find_config_dir(None, None, env, "linux")[0] == user  # the user's own Lemonade comes first
    assert find_config_dir(None, None, {}, "linux")[0] == service  # no HOME (a system service): the packaged dir


@pytest.mark.parametrize(("config", "url"), [
    ({}, "http://127.0.0.1:13305"),
    ({"port": 8123}, "http://127.0.0.1:8123"),
    ({"host": "0.0.0.0", "port": 9000}, "http://127.0.0.1:9000"),
    ({"host": "::", "port": 9000}, "http://[::1]:9000"),
    ({"host": "192.168.1.5", "port": "x"}, "http://192.168.1.5:13305"),
])
def test_url_from_config_json(tmp_path: Path, config, url):
    import json

    (tmp_path / "config.json").write_text(json.dumps(config))
    assert LemonadeHome(tmp_path).url() == url


def test_lemond_command_line():
    assert parse_argv(["/usr/bin/lemond"]) == ([], None, None)
    assert parse_argv(["lemond", "/c", "/cfg", "--host", "0.0.0.0", "--port=8080", "--no-broadcast"]) == (
        ["/c", "/cfg"], "0.0.0.0", 8080)
    assert parse_argv(["lemond", "--port", "9", "/c"]) == (["/c"], None, 9)


def test_json_that_is_not_json_is_located(tmp_path: Path):
    (tmp_path / "config.json").write_text('{"port": 1,\n "host": }')
    with pytest.raises(UsageError, match=r"config.json:2:10: Lemonade's config.json is not valid JSON"):
        LemonadeHome(tmp_path).url()
    assert read_json_file(tmp_path / "absent.json", "x") is None
