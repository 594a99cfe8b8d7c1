"""`engine recommend` as a real subprocess: text, JSON envelope, stdin input, overrides, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SYSINFO = ROOT / "tests" / "fixtures" / "system-info"
STARTER = str(ROOT / "rulebook" / "defaults")  # the starter rulebook alone: Lemonade's behaviour


def engine(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *args], input=stdin, capture_output=True,
                          text=True, cwd=ROOT, timeout=120)


def test_text_output_shows_archetype_options_and_table():
    p = engine("recommend", "--model", "Qwen3-4B-GGUF", "--system-info", str(SYSINFO / "rtx-4090-desktop-linux.json"),
               "--no-memory-fit", "--rulebook", STARTER)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert out.startswith("archetype: nvidia-")
    assert "llamacpp_backend  cuda" in out and "llamacpp_args     (empty)" in out and "ctx_size          -1" in out
    assert "backend       cuda     recipe-default  lemonade-default-cuda" in out
    assert p.stderr == ""


def test_json_envelope_from_stdin_with_overrides_on_the_python_engine():
    doc = (SYSINFO / "strix-halo-128gb-linux.json").read_text()
    p = engine("recommend", "--model", "Qwen3-4B-GGUF", "--system-info", "-", "--json", "--engine", "python",
               "--set", "ctx_size=16384", "--set", "extra_args=--no-warmup --cache-reuse 256", "--no-memory-fit",
               "--rulebook", STARTER,
               stdin=doc)
    assert p.returncode == 0, p.stderr
    env = json.loads(p.stdout)
    assert (env["schema_version"], env["kind"], env["engine"]) == (2, "recommendation", "python")
    assert set(env) >= {"archetype", "recipe_options", "decisions", "expected", "rulebook", "engine"}
    assert env["recipe_options"] == {"llamacpp_backend": "vulkan", "ctx_size": 16384,
                                     "llamacpp_args": "--no-warmup --cache-reuse 256"}
    assert env["decisions"]["ctx_size"]["rule"] == "user-override"
    assert env["decisions"]["backend"]["overridden"][0]["rule"] == "llamacpp-installed-vulkan"
    assert env["archetype"]["id"] == "amd-rdna3.5-gfx1151-unified-128gb-bw2"
    assert env["rulebook"].startswith("rulebook@")


def test_rulebook_flag_and_scenario(tmp_path):
    p = engine("recommend", "--model", "Qwen3-4B-GGUF", "--system-info", str(SYSINFO / "strix-halo-128gb-linux.json"),
               "--rulebook", str(ROOT / "tests" / "golden" / "rulebook"), "--scenario", "coding", "--json",
               "--no-memory-fit")
    assert p.returncode == 0, p.stderr
    env = json.loads(p.stdout)
    assert env["decisions"]["parallel"] == {**env["decisions"]["parallel"], "value": 2, "rule": "coding-parallel"}
    assert "-np 2" in env["recipe_options"]["llamacpp_args"]


def test_user_errors_exit_2_with_a_message_on_stderr():
    base = ("recommend", "--model", "Qwen3-4B-GGUF", "--system-info", str(SYSINFO / "cpu-only-linux.json"))
    for extra, needle in ((("--set", "ctx_size=12"), "ctx_size"), (("--set", "nonsense"), "PARAM=VALUE"),
                          (("--set", "backend=cuda"), "not available"), (("--scenario", "karaoke"), "scenario"),
                          (("--set", "extra_args=--port 1"), "reserved")):
        p = engine(*base, *extra)
        assert p.returncode == 2, (extra, p.stderr)
        assert needle in p.stderr and p.stdout == ""
    p = engine("recommend", "--model", "No-Such-Model-XYZ", "--system-info", str(SYSINFO / "cpu-only-linux.json"))
    assert p.returncode == 2 and "No-Such-Model-XYZ" in p.stderr
    p = engine("recommend", "--model", "Qwen3-4B-GGUF", "--system-info", "-", stdin="{not json")
    assert p.returncode == 2 and p.stdout == ""


def test_without_system_info_it_detects_this_machine():
    p = engine("recommend", "--model", "Qwen3-4B-GGUF", "--json", "--no-memory-fit")
    assert p.returncode == 0, p.stderr
    env = json.loads(p.stdout)
    assert env["recipe_options"]["llamacpp_backend"] in {"system", "metal", "cuda", "vulkan", "rocm", "cpu"}


def test_a_corrupt_gguf_falls_back_to_size_based_estimates(tmp_path):
    """`engine memory` refuses a truncated GGUF; recommend warns and carries on with size-based facts."""
    good = (ROOT / "tests" / "fixtures" / "gguf" / "llama-gqa.gguf").read_bytes()
    bad = tmp_path / "Qwen3-8B-Q4_K_M.gguf"
    bad.write_bytes(good[: len(good) // 3])
    mem = engine("memory", str(bad))
    assert mem.returncode == 2 and "gguf" in mem.stderr.lower()
    sysinfo = str(SYSINFO / "rtx-4090-desktop-linux.json")
    p = engine("recommend", "--model", str(bad), "--system-info", sysinfo, "--json")
    assert p.returncode == 0, p.stderr
    assert "falling back to size-based estimates" in p.stderr
    doc = json.loads(p.stdout)
    assert doc["recipe_options"]["llamacpp_backend"] == "cuda"
    explain = engine("explain", "--model", str(bad), "--system-info", sysinfo, "--level", "full")
    assert explain.returncode == 0, explain.stderr
    assert "estimated" in explain.stdout
