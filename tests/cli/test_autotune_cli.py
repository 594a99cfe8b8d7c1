"""The auto-tune switch (LEMONADE_AUTOTUNE, --no-autotune, config.yaml), the user rulebook and config overrides,
as `engine recommend` / `engine explain` / `engine status` see them (the first test as a real subprocess, the rest
through engine.cli.main in this process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STRIX = str(ROOT / "tests" / "fixtures" / "system-info" / "strix-halo-128gb-linux.json")
MODEL = "Qwen3-8B-GGUF"
USER_RULE = """\
rules:
  - id: my-ubatch
    description: my own ubatch for llama.cpp
    layer: user
    priority: 10
    when: {recipe: llamacpp}
    set: {ubatch: 1024}
"""


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    return tmp_path / "autotune-config"


def engine(cfg: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`engine ARGS` through engine.cli.main in this process, with our config dir at `cfg`."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from engine.cli import main

    out, err = io.StringIO(), io.StringIO()
    before = dict(os.environ)
    os.environ.update({"LEMONADE_AUTOTUNE_CONFIG_DIR": str(cfg), **(env or {})})
    try:
        with redirect_stdout(out), redirect_stderr(err):
            code = main(list(args))
    finally:
        os.environ.clear()
        os.environ.update(before)
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def recommend_json(cfg: Path, *extra: str, env: dict[str, str] | None = None) -> dict:
    p = engine(cfg, "recommend", "--model", MODEL, "--system-info", STRIX, "--json", *extra, env=env)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_on_by_default_and_says_so(cfg):
    p = subprocess.run([sys.executable, "-m", "engine", "recommend", "--model", MODEL, "--system-info", STRIX, "--json"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120,
                       env={**os.environ, "LEMONADE_AUTOTUNE_CONFIG_DIR": str(cfg)})
    assert p.returncode == 0, p.stderr
    env = json.loads(p.stdout)
    assert env["autotune"] == {"enabled": True, "source": "default", "why": env["autotune"]["why"]}
    assert env["recipe_options"]["ctx_size"] != -1  # tuned: a context sized for the scenario, not Lemonade's auto
    assert env["decisions"]["backend"]["layer"] in ("archetype", "model-overlay")  # tuned (a known failure beats speed)


@pytest.mark.parametrize(("how", "env", "extra", "source"), [
    ("env", {"LEMONADE_AUTOTUNE": "0"}, (), "env"),
    ("flag", None, ("--no-autotune",), "flag"),
])
def test_off_gives_lemonades_defaults_and_says_why(cfg, how, env, extra, source):
    out = recommend_json(cfg, *extra, env=env)
    assert out["autotune"]["enabled"] is False and out["autotune"]["source"] == source
    assert out["recipe_options"] == {"llamacpp_backend": "vulkan", "llamacpp_args": "", "ctx_size": -1}
    text = engine(cfg, "recommend", "--model", MODEL, "--system-info", STRIX, *extra, env=env).stdout
    assert text.startswith("auto-tune: off: ") and "Lemonade's own defaults" in text.splitlines()[0]


def test_config_file_switch_names_its_line_and_the_env_wins_over_it(cfg):
    cfg.mkdir()
    (cfg / "config.yaml").write_text("# mine\nscenario: chat\nenabled: false\n")
    out = recommend_json(cfg)
    assert out["autotune"]["enabled"] is False
    assert out["autotune"]["why"] == f"off: enabled: false in {cfg / 'config.yaml'}:3"
    assert recommend_json(cfg, env={"LEMONADE_AUTOTUNE": "on"})["autotune"]["enabled"] is True


@pytest.mark.parametrize(("text", "where"), [
    ("enabled: maybe\n", ":1:1 enabled: expected bool"),
    ("colour: blue\n", ":1:1 colour: unknown setting"),
    ("overrides: {ubatch: 7}\n", ":1:1 overrides: invalid override"),
    ("scenario: gaming\n", ":1:1 scenario: unknown scenario"),
    ("enabled: [\n", ":2:1: "),
])
def test_a_bad_config_file_is_a_located_usage_error(cfg, text, where):
    cfg.mkdir()
    (cfg / "config.yaml").write_text(text)
    p = engine(cfg, "recommend", "--model", MODEL, "--system-info", STRIX)
    assert p.returncode == 2 and f"config.yaml{where}" in p.stderr, p.stderr


def test_bad_switch_value(cfg):
    p = engine(cfg, "recommend", "--model", MODEL, "--system-info", STRIX, env={"LEMONADE_AUTOTUNE": "maybe"})
    assert p.returncode == 2 and "LEMONADE_AUTOTUNE='maybe'" in p.stderr


def test_user_rulebook_is_the_highest_rule_layer_and_set_beats_it(cfg):
    (cfg / "user-rulebook").mkdir(parents=True)
    (cfg / "user-rulebook" / "mine.yaml").write_text(USER_RULE)
    out = recommend_json(cfg)
    assert out["decisions"]["ubatch"]["rule"] == "my-ubatch" and out["decisions"]["ubatch"]["layer"] == "user"
    assert out["decisions"]["ubatch"]["source"] == "user-rulebook/mine.yaml:2"
    assert "-ub 1024" in out["recipe_options"]["llamacpp_args"]
    text = engine(cfg, "explain", "--model", MODEL, "--system-info", STRIX).stdout
    assert "my-ubatch" in text and "user-rulebook/mine.yaml:2" in text
    over = recommend_json(cfg, "--set", "ubatch=2048")
    assert over["decisions"]["ubatch"]["rule"] == "user-override" and "-ub 2048" in over["recipe_options"]["llamacpp_args"]
    status = engine(cfg, "status", "--lemonade-config", str(cfg / "no-lemonade"), "--system-info", STRIX).stdout
    assert "user rule: my-ubatch (user-rulebook/mine.yaml:2) sets ubatch=1024" in status
    off = recommend_json(cfg, "--no-autotune")  # off: the user rulebook is not loaded either
    assert off["recipe_options"]["llamacpp_args"] == ""


def test_user_rulebook_rules_must_say_layer_user(cfg):
    (cfg / "user-rulebook").mkdir(parents=True)
    (cfg / "user-rulebook" / "mine.yaml").write_text(USER_RULE.replace("layer: user", "layer: archetype"))
    p = engine(cfg, "recommend", "--model", MODEL, "--system-info", STRIX)
    assert p.returncode == 2
    assert f"{cfg / 'user-rulebook' / 'mine.yaml'}:2:1" in p.stderr and "must say `layer: user`" in p.stderr


def test_config_overrides_apply_under_the_command_line(cfg):
    cfg.mkdir()
    (cfg / "config.yaml").write_text("overrides: {ubatch: 256, ctx_size: 16384}\n")
    out = recommend_json(cfg, "--set", "ctx_size=8192")
    assert "-ub 256" in out["recipe_options"]["llamacpp_args"] and out["recipe_options"]["ctx_size"] == 8192
    status = engine(cfg, "status", "--lemonade-config", str(cfg / "no-lemonade"), "--system-info", STRIX, "--json")
    assert json.loads(status.stdout)["settings"]["overrides"] == {"ubatch": 256, "ctx_size": 16384}
