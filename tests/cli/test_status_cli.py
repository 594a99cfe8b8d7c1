"""`engine status` with lemond stopped (worked out from the files) and with nothing to talk to."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.lemond import make_dirs
from tests.support.wire import free_port

ROOT = Path(__file__).resolve().parents[2]
SYSINFO = str(ROOT / "tests" / "fixtures" / "lemonade-api" / "system-info.json")


def engine(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_stopped_status_says_what_wins_from_the_files(tmp_path: Path):
    home = make_dirs(tmp_path / "lemonade", user_models={"tiny-local": "llama-mha"},
                     config={"llamacpp": {"args": "-b 512 -t 4"}},
                     recipe_options={"user.tiny-local": {"llamacpp_args": "-t 1"}})
    assert engine("apply", "llama-gqa", "tiny-local", "--set", "n_gpu_layers=0", "--lemonade-config", str(home.config),
                  "--system-info", SYSINFO, "--set", "ubatch=256").returncode == 0
    p = engine("status", "--lemonade-config", str(home.config), "--system-info", SYSINFO, "--json")
    assert p.returncode == 0, p.stderr
    env = json.loads(p.stdout)
    assert env["kind"] == "status" and env["lemonade"]["mode"] == "file" and env["autotune"]["enabled"]
    assert env["hardware"]["archetype"] == "cpu-x86_64-24gb-bw2" and env["hardware"]["source"].startswith("--system-info")
    models = {m["model"]: m for m in env["models"]}
    tiny = {r["key"]: r for r in models["user.tiny-local"]["rows"]}
    assert tiny["-t"] == {"key": "-t", "apply_wrote": None, "user_set": "1", "lemond_uses": "1", "wins": "user"}
    assert tiny["-b"]["wins"] == "lemonade" and tiny["-b"]["lemond_uses"] == "512"  # config.json's args
    assert tiny["-ngl"]["wins"] == "autotune" and tiny["llamacpp_backend"]["wins"] == "autotune"
    assert models["user.tiny-local"]["lemond_uses"]["llamacpp_args"] == "-b 512 -ngl 0 -t 1 -ub 256"  # lemond's order
    assert models["user.tiny-local"]["applied_with"]["overrides"] == {"n_gpu_layers": 0, "ubatch": 256}
    assert models["extra.llama-gqa"]["apply_wrote"]["ctx_size"] == 8192
    text = engine("status", "--lemonade-config", str(home.config)).stdout
    assert "lemond stopped; config dir" in text and "user.tiny-local" in text
    assert "    -t                -             1             1             user" in text
    assert ", scenario chat, --set n_gpu_layers=0 --set ubatch=256" in text or "--set ubatch=256" in text


def test_status_without_a_lemonade_still_reports_the_switch_and_the_archetype(tmp_path: Path):
    p = engine("status", "--lemonade", f"http://127.0.0.1:{free_port()}", "--no-autotune", "--json")
    assert p.returncode == 0, p.stderr
    env = json.loads(p.stdout)
    assert env["lemonade"]["mode"] == "unknown" and "no lemond answers" in env["lemonade"]["error"]
    assert env["autotune"] == {"enabled": False, "why": "off: --no-autotune was given", "source": "flag"}
    assert env["rulebook"]["roots"][0].endswith("defaults") and env["models"] == []
    assert env["hardware"]["source"].startswith("detected on this machine")
