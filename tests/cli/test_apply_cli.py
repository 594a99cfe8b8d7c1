"""`engine apply` on a stopped Lemonade (the file path) over a Lemonade home in a temp dir: diff and file,
idempotence, undo (byte for byte, and key by key after others wrote), the do-no-harm skips, the off switch; and, as
real subprocesses, two applies at once, kill -9 mid-apply, and the refusal while a lemond process serves the dir.

Single runs call the CLI's `main()` in this process (the same code path, without a Python start-up each)."""

from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.lemonade.store import dump
from tests.support.lemond import make_dirs

ROOT = Path(__file__).resolve().parents[2]
SYSINFO = str(ROOT / "tests" / "fixtures" / "lemonade-api" / "system-info.json")  # lemond 11.7.0, CPU-only box
ORIGINAL = b'{"user.tiny-local": {"ctx_size": 1024, "llamacpp_args": "-t  1"},\n "user.ghost": {"pinned": true}}\n'


def engine(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`engine ARGS` through engine.cli.main in this process: exit code, stdout, stderr."""
    from contextlib import redirect_stderr, redirect_stdout

    from engine.cli import main

    out, err = io.StringIO(), io.StringIO()
    before = dict(os.environ)
    os.environ.update(env or {})
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as stop:  # argparse's usage errors
                code = int(stop.code or 0)
    finally:
        os.environ.clear()
        os.environ.update(before)
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


@pytest.fixture
def home(tmp_path: Path):
    dirs = make_dirs(tmp_path / "lemonade", extra_models=("llama-gqa", "qwen3moe"),
                     user_models={"tiny-local": "llama-mha"})
    dirs.recipe_options.write_bytes(ORIGINAL)
    return dirs


# our rules leave layer placement to llama.cpp's --fit on this CPU-only box, so the recommendation carries no
# flag of its own; --set n_gpu_layers=0 gives apply one to write, merge and take back
SET = ("--set", "n_gpu_layers=0")


def apply(home, *args: str, env=None) -> subprocess.CompletedProcess:
    extra = SET if "--undo" not in args else ()
    return engine("apply", *args, *extra, "--lemonade-config", str(home.config), "--system-info", SYSINFO, env=env)


def saved(home) -> dict:
    return json.loads(home.recipe_options.read_bytes())


def backups(home) -> list[Path]:
    return sorted((home.config / "lemonade-autotune" / "backups").glob("*.json"))


def test_apply_writes_the_merge_shows_the_diff_and_is_idempotent(home):
    p = apply(home, "llama-gqa", "tiny-local")
    assert p.returncode == 0, p.stderr
    assert "lemond is stopped: writing" in p.stdout and "extra.llama-gqa: applied" in p.stdout
    assert '  llamacpp_args     "-t  1" -> "-t  1 -ngl 0"' in p.stdout
    assert "kept what the user saved: ctx_size=1024" in p.stdout
    data = saved(home)
    assert data["extra.llama-gqa"] == {"ctx_size": 8192, "llamacpp_args": "-ngl 0", "llamacpp_backend": "system"}
    assert data["user.tiny-local"] == {"ctx_size": 1024, "llamacpp_args": "-t  1 -ngl 0", "llamacpp_backend": "system"}
    assert data["user.ghost"] == {"pinned": True}  # other entries untouched
    assert [b.read_bytes() for b in backups(home)] == [ORIGINAL]
    first = home.recipe_options.read_bytes()
    again = apply(home, "extra.llama-gqa", "user.tiny-local", "--json")
    assert again.returncode == 0, again.stderr
    env = json.loads(again.stdout)
    assert env["kind"] == "apply" and [m["action"] for m in env["models"]] == ["unchanged", "unchanged"]
    assert home.recipe_options.read_bytes() == first and len(backups(home)) == 1


def test_dry_run_writes_nothing(home):
    p = apply(home, "llama-gqa", "--dry-run", "--json")
    assert p.returncode == 0, p.stderr
    env = json.loads(p.stdout)
    assert env["dry_run"] is True and env["models"][0]["changes"][0] == {"key": "ctx_size", "before": None, "after": 8192}
    assert home.recipe_options.read_bytes() == ORIGINAL and backups(home) == []


def test_undo_restores_the_file_byte_for_byte(home):
    assert apply(home, "llama-gqa", "tiny-local").returncode == 0
    assert apply(home, "qwen3moe").returncode == 0  # a second apply: undo still goes back to the original
    p = engine("apply", "--undo", "--lemonade-config", str(home.config))
    assert p.returncode == 0, p.stderr
    assert "restored" in p.stdout and home.recipe_options.read_bytes() == ORIGINAL


def test_undo_after_others_wrote_takes_back_only_our_unchanged_values(home):
    assert apply(home, "llama-gqa", "tiny-local").returncode == 0
    data = saved(home)
    data["extra.llama-gqa"]["ctx_size"] = 2048  # the user changed a value we wrote
    data["user.new"] = {"ctx_size": 512}  # and lemond saved another model (its format)
    home.recipe_options.write_bytes(dump(data))
    p = engine("apply", "--undo", "--lemonade-config", str(home.config), "--json")
    assert p.returncode == 0, p.stderr
    assert saved(home) == {"extra.llama-gqa": {"ctx_size": 2048}, "user.new": {"ctx_size": 512},
                           "user.tiny-local": {"ctx_size": 1024, "llamacpp_args": "-t  1"}, "user.ghost": {"pinned": True}}
    notes = {m["model"]: m.get("notes") for m in json.loads(p.stdout)["models"]}
    assert "ctx_size=2048" in notes["extra.llama-gqa"][0]


def test_without_any_system_info_nothing_is_written(home):
    p = engine("apply", "llama-gqa", "--lemonade-config", str(home.config))
    assert p.returncode == 2 and "cannot tell which backends" in p.stderr
    assert home.recipe_options.read_bytes() == ORIGINAL


def test_a_saved_system_info_from_an_earlier_run_is_used(home):
    state = home.config / "lemonade-autotune"
    state.mkdir()
    (state / "system-info.json").write_text(Path(SYSINFO).read_text())
    p = engine("apply", "llama-gqa", "--lemonade-config", str(home.config))
    assert p.returncode == 0, p.stderr
    assert "from saved system-info" in p.stdout and saved(home)["extra.llama-gqa"]["llamacpp_backend"] == "system"


@pytest.mark.parametrize(("model", "extra", "why"), [
    ("builtin.Qwen3.5-122B-A10B-GGUF", (), "does not fit"),
    ("llama-gqa", ("--set", "backend=vulkan"), "vulkan"),
    ("builtin.Qwen2.5-0.5B-Instruct-CPU", (), "ryzenai-llm needs an AMD XDNA2 NPU"),
])
def test_what_cannot_run_here_is_skipped_with_the_reason(home, model, extra, why):
    p = apply(home, model, *extra)
    assert p.returncode == 1, p.stderr
    assert f"{model}: skipped: " in p.stdout and why in p.stdout, p.stdout
    assert home.recipe_options.read_bytes() == ORIGINAL


def test_off_switch_applies_nothing_and_says_why(home):
    p = apply(home, "llama-gqa", env={"LEMONADE_AUTOTUNE": "0"})
    assert p.returncode == 0 and "auto-tune is off: LEMONADE_AUTOTUNE=0: nothing applied" in p.stdout
    p = apply(home, "llama-gqa", "--no-autotune", "--json")
    assert json.loads(p.stdout)["autotune"]["source"] == "flag"
    assert home.recipe_options.read_bytes() == ORIGINAL


def test_unknown_model_is_a_usage_error(home):
    p = apply(home, "no-such-model")
    assert p.returncode == 2 and "no model 'no-such-model'" in p.stderr


def test_two_applies_at_once_both_land(home):
    procs = [subprocess.Popen([sys.executable, "-m", "engine", "apply", m, "--lemonade-config", str(home.config),
                               "--system-info", SYSINFO], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for m in ("llama-gqa", "qwen3moe")]
    for p in procs:
        assert p.wait(120) == 0, p.stderr.read()
    data = saved(home)  # valid JSON with both models (the lock's lost-update test is in tests/engine/lemonade)
    assert {"extra.llama-gqa", "extra.qwen3moe", "user.tiny-local"} <= set(data)
    record = json.loads((home.config / "lemonade-autotune" / "owned.json").read_text())
    assert set(record["models"]) == {"extra.llama-gqa", "extra.qwen3moe"}  # the record holds both too
    assert engine("apply", "--undo", "--lemonade-config", str(home.config)).returncode == 0
    assert home.recipe_options.read_bytes() == ORIGINAL


def test_kill_9_during_apply_leaves_the_old_or_the_new_file(home):
    assert apply(home, "llama-gqa", "qwen3moe").returncode == 0
    new = home.recipe_options.read_bytes()
    assert engine("apply", "--undo", "--lemonade-config", str(home.config)).returncode == 0
    rng = random.Random(3)
    for _ in range(4):
        p = subprocess.Popen([sys.executable, "-m", "engine", "apply", "llama-gqa", "qwen3moe", *SET, "--lemonade-config",
                              str(home.config), "--system-info", SYSINFO], cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 1.5))
        p.send_signal(signal.SIGKILL)
        p.wait()
        assert home.recipe_options.read_bytes() in (ORIGINAL, new)  # valid JSON, old or new
    # whatever moment the last kill hit (even between the record and the file), undo ends at the original
    assert engine("apply", "--undo", "--lemonade-config", str(home.config)).returncode == 0
    assert home.recipe_options.read_bytes() == ORIGINAL


def test_a_lemond_process_over_the_dir_that_does_not_answer_blocks_the_file(home, tmp_path):
    fake = tmp_path / "fake-cache"  # a process whose command line is `lemond <cache> <config>` (python runs it)
    fake.mkdir()
    (fake / "__main__.py").write_text("import time\ntime.sleep(60)\n")
    proc = subprocess.Popen(["lemond", str(fake), str(home.config)], executable=sys.executable)
    try:
        time.sleep(0.3)
        p = apply(home, "llama-gqa")
        assert p.returncode == 2 and f"lemond pid {proc.pid} serves" in p.stderr, p.stderr
        assert home.recipe_options.read_bytes() == ORIGINAL
    finally:
        proc.kill()
        proc.wait()


def test_a_lemond_asked_for_by_url_must_answer(home):
    from tests.support.wire import free_port

    p = engine("apply", "llama-gqa", "--lemonade", f"http://127.0.0.1:{free_port()}", "--system-info", SYSINFO)
    assert p.returncode == 2 and "no lemond answers at http://127.0.0.1:" in p.stderr
    assert home.recipe_options.read_bytes() == ORIGINAL
