"""`engine apply` end to end against lemond — the real lemond + llama-server where the binaries are found (id
real-lemond), the loopback fake everywhere (id fake-lemond): apply while stopped, start, load, and the
llama-server command line carries exactly our flags and ctx; apply while running goes through the API and
survives lemond's own saves and a restart; a user edit in between is kept; undo restores; chat works; --watch
applies to a model that appears before its first load; status says which value wins.

The tests of one kind share one Lemonade home and run in order (like tests/integration/test_lemond_contract.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.lemond import GGUF_DIR, LemonadeServer, cmdline, make_dirs, server_params

ROOT = Path(__file__).resolve().parents[2]
SYSINFO = str(ROOT / "tests" / "fixtures" / "lemonade-api" / "system-info.json")
USER_SAVED = {"ctx_size": 1024, "llamacpp_args": "-t 1"}  # the user's own options for tiny-local
OTHER = {"user.other": {"evict_idle_timeout": 30}}  # an entry for a model this Lemonade does not have


# our rules leave layer placement to llama.cpp's --fit on this CPU-only box, so the recommendation carries no
# flag of its own; --set n_gpu_layers=0 gives apply one to write, merge and take back
SET = ("--set", "n_gpu_layers=0")


def engine(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)


@pytest.fixture(scope="module", params=server_params())
def server(request, tmp_path_factory):
    dirs = make_dirs(tmp_path_factory.mktemp(f"apply-{request.param}"), extra_models=("llama-gqa",),
                     user_models={"tiny-local": "llama-mha"},
                     recipe_options={"user.tiny-local": USER_SAVED, **OTHER})
    srv = LemonadeServer(request.param, dirs)  # not started: the first test applies while it is stopped
    yield srv
    srv.stop()


def owned(server: LemonadeServer) -> dict:
    record = json.loads((server.dirs.config / "lemonade-autotune" / "owned.json").read_text())
    return {m: r["owned"] for m, r in record["models"].items()}


def entry_for(server: LemonadeServer, name: str) -> dict:
    loaded = server.get("/v1/health").json["all_models_loaded"]
    return next(m for m in loaded if m["model_name"] == name)


def assert_runs_with(server: LemonadeServer, entry: dict, ctx: int, args: list[str]) -> None:
    argv = entry["launch_command"]
    assert argv[argv.index("--ctx-size") + 1] == str(ctx)
    tail = argv[argv.index("--metrics") + 1:]  # Lemonade's own flags first, then llamacpp_args
    assert tail == args, argv
    if server.llama_server is not None:  # a real llama-server process runs with exactly that argv
        assert entry["pid"] in server.children()
        assert cmdline(entry["pid"]) == argv


def test_apply_while_stopped_then_load_runs_exactly_our_flags(server):
    config = str(server.dirs.config)
    p = engine("apply", "llama-gqa", "tiny-local", *SET, "--lemonade-config", config, "--system-info", SYSINFO)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("lemond is stopped: writing")
    ours = owned(server)
    gqa, tiny = ours["extra.llama-gqa"], ours["user.tiny-local"]
    assert set(gqa) == {"ctx_size", "llamacpp_backend", "llamacpp_args"} and "ctx_size" not in tiny
    server.start()
    assert server.post("/v1/load", {"model_name": "llama-gqa"}).status == 200
    assert_runs_with(server, entry_for(server, "llama-gqa"), gqa["ctx_size"], gqa["llamacpp_args"])
    chat = server.post("/v1/chat/completions", {"model": "llama-gqa", "max_tokens": 3,
                                                 "messages": [{"role": "user", "content": "hi"}]})
    assert chat.status == 200 and chat.json["choices"][0]["message"]["role"] == "assistant"
    assert chat.json["usage"]["completion_tokens"] >= 1
    assert server.post("/v1/load", {"model_name": "tiny-local"}).status == 200
    # the user's ctx and -t stay, our -ngl follows them
    assert_runs_with(server, entry_for(server, "tiny-local"), 1024, ["-t", "1", *tiny["llamacpp_args"]])


def test_undo_while_running_gives_back_the_same_options(server):
    p = engine("apply", "--undo", "--lemonade-config", str(server.dirs.config))
    assert p.returncode == 0, p.stderr
    assert "writing through POST /v1/models/{id}/options" in p.stdout
    assert server.get("/v1/models/llama-gqa/options").json["saved"] == {}
    assert server.get("/v1/models/tiny-local/options").json["saved"] == USER_SAVED
    assert owned(server) == {}


def test_apply_while_running_goes_through_the_api_and_survives_lemonds_saves(server):
    backups = server.dirs.config / "lemonade-autotune" / "backups"
    before = sorted(backups.iterdir())
    p = engine("apply", "llama-gqa", "tiny-local", *SET, "--lemonade-config", str(server.dirs.config), "--json")
    assert p.returncode == 0, p.stderr
    env = json.loads(p.stdout)
    assert env["target"]["mode"] == "api" and env["hardware"]["source"] == "lemond's GET /v1/system-info"
    gqa = next(m for m in env["models"] if m["model"] == "extra.llama-gqa")
    assert gqa["action"] == "applied" and gqa["lemond_will_use"]["llamacpp_args"] == " ".join(gqa["owned"]["llamacpp_args"])
    assert sorted(backups.iterdir()) == before  # the file was not written by us
    ours = owned(server)["extra.llama-gqa"]
    want = {"ctx_size": ours["ctx_size"], "llamacpp_backend": ours["llamacpp_backend"],
            "llamacpp_args": " ".join(ours["llamacpp_args"])}
    assert server.dirs.read_json("recipe_options.json")["extra.llama-gqa"] == want  # lemond saved it
    # lemond's own next save (another model's options) rewrites the whole file from memory: ours stay
    assert server.post("/v1/models/tiny-local/options", {"evict_idle_timeout": 120}).status == 200
    on_disk = server.dirs.read_json("recipe_options.json")
    assert on_disk["extra.llama-gqa"] == want and on_disk["user.other"] == OTHER["user.other"]
    server.restart()
    assert server.get("/v1/models/llama-gqa/options").json["saved"] == want
    again = engine("apply", "llama-gqa", "tiny-local", *SET, "--lemonade-config", str(server.dirs.config), "--json")
    assert [m["action"] for m in json.loads(again.stdout)["models"]] == ["unchanged", "unchanged"]


def test_a_user_edit_in_between_is_kept_by_apply_and_by_undo(server):
    assert server.post("/v1/models/llama-gqa/options", {"ctx_size": 2048}).status == 200  # the user's choice
    p = engine("apply", "llama-gqa", *SET, "--lemonade-config", str(server.dirs.config), "--json")
    assert p.returncode == 0, p.stderr
    (model,) = json.loads(p.stdout)["models"]
    assert model["action"] == "unchanged" and model["user_kept"] == {"ctx_size": 2048}
    assert server.get("/v1/models/llama-gqa/options").json["saved"]["ctx_size"] == 2048
    status = json.loads(engine("status", "--lemonade-config", str(server.dirs.config), "--json").stdout)
    rows = {r["key"]: r for m in status["models"] if m["model"] == "extra.llama-gqa" for r in m["rows"]}
    assert rows["ctx_size"]["wins"] == "user" and rows["ctx_size"]["lemond_uses"] == 2048
    assert rows["llamacpp_backend"]["wins"] == "autotune" and rows["-ngl"]["wins"] == "autotune"
    assert engine("apply", "--undo", "--lemonade-config", str(server.dirs.config)).returncode == 0
    assert server.get("/v1/models/llama-gqa/options").json["saved"] == {"ctx_size": 2048}
    assert server.get("/v1/models/tiny-local/options").json["saved"] == {**USER_SAVED, "evict_idle_timeout": 120}


def test_watch_applies_to_a_model_that_appears_before_its_first_load(server):
    watcher = subprocess.Popen([sys.executable, "-m", "engine", "apply", "--watch", *SET, "--interval", "0.2",
                                "--lemonade-config", str(server.dirs.config), "--json"], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = watcher.stderr.readline()
        assert "watching" in line, line + watcher.stderr.read()
        shutil.copyfile(GGUF_DIR / "gemma3-swa.gguf", server.dirs.extra_models / "fresh.gguf")
        event = json.loads(watcher.stdout.readline())
        assert event["model"] == "extra.fresh" and event["action"] == "applied", event
    finally:
        watcher.terminate()
        assert watcher.wait(20) == 0
    saved = server.get("/v1/models/fresh/options").json["saved"]
    ours = owned(server)["extra.fresh"]
    assert saved["llamacpp_args"] == " ".join(ours["llamacpp_args"]) and saved["ctx_size"] == ours["ctx_size"]
    assert server.post("/v1/load", {"model_name": "fresh"}).status == 200
    assert_runs_with(server, entry_for(server, "fresh"), ours["ctx_size"], ours["llamacpp_args"])
    os.remove(server.dirs.extra_models / "fresh.gguf")
    time.sleep(0)
