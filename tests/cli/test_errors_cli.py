"""Exit codes and error envelopes: a user's bad input exits 2 with where and what; a bug exits 3 and says to
report it; with --json the error comes as an `error` envelope on stdout (what lemond parses)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine._version import __version__
from engine.cli import main

ROOT = Path(__file__).resolve().parents[2]
SYSINFO = ROOT / "tests" / "fixtures" / "system-info" / "rtx-4090-desktop-linux.json"


def engine(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *args], input=stdin, capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def test_version():
    p = engine("--version")
    assert p.returncode == 0 and p.stdout.strip() == f"lemonade-autotune {__version__}"


def test_every_envelope_names_the_engine_version_and_has_an_errors_list():
    p = engine("recommend", "--model", "Qwen3-4B-GGUF", "--system-info", str(SYSINFO), "--json")
    doc = json.loads(p.stdout)
    assert p.returncode == 0 and doc["engine_version"] == __version__ and doc["errors"] == []


@pytest.mark.parametrize("args, code, where", [
    (("--model", "Qwen3-4B-GGUF", "--system-info", str(ROOT / "tests" / "fixtures" / "gguf" / "llama-gqa.gguf")),
     "invalid_input", "llama-gqa.gguf"),
    (("--model", "No-Such-Model", "--system-info", str(SYSINFO)), "model_facts", "No-Such-Model"),
    (("--model", "Qwen3-4B-GGUF", "--system-info", str(SYSINFO), "--set", "ctx_size=²"), "usage", None),
    (("--model", "Qwen3-4B-GGUF", "--system-info", str(SYSINFO), "--set", "extra_args=--poll ٥٠ -ts ١,٢"), "usage",
     None),  # non-ASCII digits pass str.isdigit() but llama-server cannot parse them
    (("--model", "Qwen3-4B-GGUF", "--system-info", str(SYSINFO), "--set", "threads=８"), "usage", None),
    (("--model", "Phi-4-mini-instruct-Hybrid", "--system-info", str(SYSINFO)), "recipe_unavailable", None),
])
def test_user_errors_exit_2_with_an_error_envelope_on_stdout(args, code, where):
    p = engine("recommend", *args, "--json")
    assert p.returncode == 2, p.stderr
    doc = json.loads(p.stdout)
    assert doc["kind"] == "error" and doc["exit_code"] == 2
    (err,) = doc["errors"]
    assert err["code"] == code and err["message"]
    if where:
        assert where in (err["location"] or "")
    assert "Traceback" not in p.stderr and "engine recommend: error:" in p.stderr


def test_a_gguf_given_as_system_info_is_named_at_once():
    p = engine("facts", "--system-info", str(ROOT / "tests" / "fixtures" / "gguf" / "qwen3moe.gguf"))
    assert p.returncode == 2 and "this is a GGUF model file, not a system-info document" in p.stderr


def test_a_utf16_system_info_with_a_bom_is_read(tmp_path):
    path = tmp_path / "si.json"
    path.write_bytes(SYSINFO.read_text(encoding="utf-8").encode("utf-16"))  # PowerShell's `>` writes this
    p = engine("facts", "--system-info", str(path), "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["archetype"]["id"].startswith("nvidia-ada-sm_89")


def test_a_bug_exits_3_and_asks_for_a_report(monkeypatch, capsys):
    import engine.commands.facts as verb

    def broken(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(verb, "run", broken)
    assert main(["facts", "--json"]) == 3
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert doc["kind"] == "error" and doc["errors"][0]["code"] == "internal"
    assert "ZeroDivisionError" in err and "bug in lemonade-autotune" in err


def test_cache_verb_shows_and_clears_the_compiled_rulebook_cache(tmp_path):
    import os

    env = {**os.environ, "LEMONADE_AUTOTUNE_CACHE_DIR": str(tmp_path / "c")}
    run = lambda *a: subprocess.run([sys.executable, "-m", "engine", *a], capture_output=True, text=True,  # noqa: E731
                                    cwd=ROOT, env=env, timeout=120)
    assert run("lint").returncode == 0  # loading the bundled rulebook fills the cache
    doc = json.loads(run("cache", "--json").stdout)
    assert doc["directory"] == str(tmp_path / "c") and doc["entries"] and doc["bytes"] > 0
    doc = json.loads(run("cache", "--clear", "--json").stdout)
    assert doc["removed"] >= 1 and doc["entries"] == []


def test_the_quick_exit_keeps_the_whole_answer_and_the_exit_code():
    """entry() ends the process without tearing the interpreter down: a long answer written to a pipe still
    arrives whole, an error still exits 2, and a reader that goes away early gets no traceback."""
    p = engine("explain", "--model", "Qwen3-30B-A3B-GGUF", "--system-info", str(SYSINFO), "--level", "full",
               "--json")
    assert p.returncode == 0 and json.loads(p.stdout)["kind"] == "explanation" and len(p.stdout) > 16_384  # past a pipe buffer
    p = engine("recommend", "--model", "No-Such-Model", "--system-info", str(SYSINFO))
    assert p.returncode == 2 and "No-Such-Model" in p.stderr
    cmd = f'"{sys.executable}" -m engine explain --model Qwen3-8B-GGUF --level full | head -c 10'
    p = subprocess.run(cmd, shell=True, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert len(p.stdout) == 10 and "Traceback" not in p.stderr
