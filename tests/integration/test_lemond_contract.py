"""One contract, two servers: the real lemond (when its binaries are found) and the loopback fake must answer
the endpoints lemonade-autotune uses with the status codes and JSON shapes captured from lemond 11.7.0
(tests/fixtures/lemonade-api/), and keep recipe_options.json the way lemond does."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.lemond import LemonadeServer, cmdline, make_dirs, server_params

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "lemonade-api"
MODEL = "llama-gqa"  # extra_models_dir model: canonical id extra.llama-gqa
USER_MODEL = "tiny-local"  # user_models.json model: canonical id user.tiny-local
OPTIONS = f"/v1/models/{MODEL}/options"
SAVED = {"ctx_size": 2048, "llamacpp_args": "-ub 256 -t 2"}


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def shape(value: Any) -> Any:
    """Keys and JSON types, recursively; a list is the set of its element shapes."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        shapes = []
        for item in value:
            if shape(item) not in shapes:
                shapes.append(shape(item))
        return sorted(shapes, key=repr)
    if value is None:
        return "null"
    return {bool: "bool", int: "int", float: "float", str: "str"}[type(value)]


def assert_like(reply: Any, name: str) -> None:
    """Same status and body shape as the captured lemond answer `name`."""
    want = fixture(name)
    assert reply.status == want["status"], reply.text
    assert shape(reply.json) == shape(want["body"]), reply.text


@pytest.fixture(scope="module", params=server_params() + [pytest.param("fake-recorded",
                                                                       id="fake-lemond-without-llama-server")])
def server(request, tmp_path_factory):
    kind = "fake" if request.param == "fake-recorded" else request.param
    dirs = make_dirs(tmp_path_factory.mktemp(f"lemonade-{request.param}"), extra_models=(MODEL,),
                     user_models={USER_MODEL: "llama-mha"})
    srv = LemonadeServer(kind, dirs, fake_runs_llama_server=request.param != "fake-recorded")
    srv.start()
    yield srv
    srv.stop()


def health_entries(server: LemonadeServer) -> list[dict[str, Any]]:
    return server.get("/v1/health").json["all_models_loaded"]


def saved_file(server: LemonadeServer) -> Any:
    return server.dirs.read_json("recipe_options.json")


# --- read-only endpoints, idle -------------------------------------------------------------------------
def test_live_and_idle_health(server):
    assert server.get("/live").json == {"status": "ok"}
    reply = server.get("/v1/health")
    assert_like(reply, "health-idle.json")
    assert reply.json["all_models_loaded"] == [] and reply.json["model_loaded"] is None
    assert reply.json["version"] == "11.7.0"
    assert reply.json["websocket_port"] == server.dirs.read_json("config.json")["websocket_port"]  # config wins
    assert server.get("/api/v1/health").json["status"] == "ok"  # every route also under /api/v1, /api/v0, /v0


def test_models_list_and_by_id(server):
    listed = server.get("/v1/models")
    assert_like(listed, "models.json")
    assert sorted(m["id"] for m in listed.json["data"]) == [MODEL, USER_MODEL]  # bare ids on the wire
    by_source = {m["id"]: m["source"] for m in listed.json["data"]}
    assert by_source == {MODEL: "extra_models_dir", USER_MODEL: "local_path"}
    for name in (MODEL, f"extra.{MODEL}"):  # the canonical id resolves to the same model
        reply = server.get(f"/v1/models/{name}")
        assert_like(reply, "model.json")
        assert reply.json["id"] == MODEL and reply.json["max_context_window"] == 8192
    assert_like(server.get("/v1/models/no-such-model"), "model-not-found.json")


def test_options_get(server):
    reply = server.get(OPTIONS)
    assert_like(reply, "options-get.json")
    body = reply.json
    assert body["effective"]["model_name"] == MODEL and "pinned" not in body["effective"]
    assert body["resolved_ctx_size"] > 0 and body["effective"]["ctx_size"] == -1
    assert_like(server.get("/v1/models/no-such-model/options"), "options-not-found.json")


@pytest.mark.parametrize("body", list(fixture("options-errors.json")))
def test_options_post_rejects_like_lemond(server, body):
    want = fixture("options-errors.json")[body]
    before = saved_file(server)
    reply = server.post(OPTIONS, raw="" if body == "<empty>" else body)
    assert (reply.status, reply.json) == (want["status"], want["body"])
    assert saved_file(server) == before


def test_dry_run_writes_nothing(server):
    server.delete(OPTIONS)
    before = server.dirs.recipe_options.read_bytes() if server.dirs.recipe_options.exists() else None
    reply = server.post(OPTIONS, {**SAVED, "dry_run": True})
    assert_like(reply, "options-dry-run.json")
    assert reply.json["saved"] == {}
    assert reply.json["effective"]["ctx_size"] == 2048 and reply.json["effective"]["llamacpp_args"] == "-ub 256 -t 2"
    assert reply.json["resolved_ctx_size"] == 2048
    after = server.dirs.recipe_options.read_bytes() if server.dirs.recipe_options.exists() else None
    assert after == before


def test_options_round_trip(server):
    reply = server.post(OPTIONS, SAVED)
    assert_like(reply, "options-post.json")
    assert reply.json["saved"] == SAVED
    assert saved_file(server)[f"extra.{MODEL}"] == SAVED  # keyed by canonical id
    assert server.get(OPTIONS).json["saved"] == SAVED
    cleared = server.post(OPTIONS, {"llamacpp_args": None, "model_name": "ignored"})  # null removes a key
    assert cleared.json["saved"] == {"ctx_size": 2048}
    assert server.post(OPTIONS, {"llamacpp_args": ""}).json["saved"] == {"ctx_size": 2048}  # "" clears too
    assert server.post(OPTIONS, {"ctx_size": -1}).json["saved"] == {"ctx_size": -1}  # -1 is stored (auto)
    deleted = server.delete(OPTIONS)
    assert_like(deleted, "options-delete.json")
    assert deleted.json["saved"] == {} and f"extra.{MODEL}" not in saved_file(server)


def test_save_rewrites_the_whole_file_and_loses_external_edits(server):
    server.post(OPTIONS, SAVED)
    edited = saved_file(server)
    edited[f"extra.{MODEL}"]["ctx_size"] = 999
    edited["user.ghost"] = {"ctx_size": 512}
    server.dirs.write_json("recipe_options.json", edited)  # an edit behind the running server's back
    assert server.get(OPTIONS).json["saved"] == SAVED  # not seen: the file was read once, at start
    server.post(f"/v1/models/{USER_MODEL}/options", {"ctx_size": 1024})
    text = server.dirs.recipe_options.read_text()
    assert json.loads(text) == {f"extra.{MODEL}": SAVED, f"user.{USER_MODEL}": {"ctx_size": 1024}}
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True)  # nlohmann dump(2), no newline
    server.delete(f"/v1/models/{USER_MODEL}/options")


# --- load, chat, reload ----------------------------------------------------------------------------------
def test_load_runs_llama_server_with_saved_options(server):
    server.post(OPTIONS, SAVED)
    reply = server.post("/v1/load", {"model_name": MODEL})
    assert_like(reply, "load.json")
    health = server.get("/v1/health")
    assert_like(health, "health-loaded.json")
    (entry,) = health.json["all_models_loaded"]
    assert entry["recipe_options"] == SAVED
    argv = entry["launch_command"]
    assert argv[0] == "llama-server" and argv[argv.index("--ctx-size") + 1] == "2048"
    assert argv[-4:] == ["-ub", "256", "-t", "2"] and "--metrics" in argv and "--jinja" in argv
    if server.llama_server is not None:
        assert entry["pid"] in server.children()
        assert cmdline(entry["pid"]) == argv
    assert server.get(f"/v1/models/{MODEL}").json["context_length"] == 2048


def test_chat_completion_and_stats(server):
    before = server.get("/v1/stats").json["request_count_total"]
    reply = server.post("/v1/chat/completions", {"model": MODEL, "max_tokens": 3,
                                                  "messages": [{"role": "user", "content": "hi"}]})
    assert_like(reply, "chat.json")
    assert reply.json["model"] == MODEL and reply.json["choices"][0]["message"]["role"] == "assistant"
    assert 1 <= reply.json["usage"]["completion_tokens"] <= 3
    stats = server.get("/v1/stats")
    assert_like(stats, "stats.json")
    assert stats.json["request_count_total"] == before + 1
    assert stats.json["output_tokens"] == reply.json["usage"]["completion_tokens"]
    assert stats.json["tokens_per_second"] == reply.json["timings"]["predicted_per_second"]
    metrics = server.get("/metrics").text
    for name in ("lemonade_server_up 1", 'lemonade_max_loaded_models{type="llm"} 1', "lemonade_requests_total",
                 "lemonade_model_tokens_per_second{", "lemonade_model_time_to_first_token_seconds{"):
        assert name in metrics
    if server.llama_server is not None:
        assert "lemonade_llamacpp_tokens_predicted_total{" in metrics


def test_saved_options_apply_at_the_next_load_not_before(server):
    (old,) = health_entries(server)
    server.post(OPTIONS, {"ctx_size": 1024})
    assert health_entries(server)[0]["launch_command"] == old["launch_command"]  # running model untouched
    server.post("/v1/load", {"model_name": MODEL})  # same model, changed options: lemond reloads it
    (new,) = health_entries(server)
    assert new["launch_command"][new["launch_command"].index("--ctx-size") + 1] == "1024"
    assert new["recipe_options"] == {"ctx_size": 1024, "llamacpp_args": "-ub 256 -t 2"}
    if server.llama_server is not None:
        assert new["pid"] != old["pid"]


def test_reserved_flag_is_saved_but_the_load_fails_and_unloads(server):
    saved = server.post(OPTIONS, {"llamacpp_args": "-c 99"})
    assert saved.status == 200 and saved.json["saved"]["llamacpp_args"] == "-c 99"  # not checked at save time
    reply = server.post("/v1/load", {"model_name": MODEL})
    assert_like(reply, "load-reserved-flag.json")
    assert reply.json["error"]["code"] == "model_load_error"
    assert "Argument '-c' is managed by Lemonade and cannot be overridden." in reply.json["error"]["message"]
    assert health_entries(server) == []  # the model that was running is gone
    server.delete(OPTIONS)


def test_load_and_unload_errors(server):
    assert_like(server.post("/v1/load", {"model_name": "no-such-model"}), "load-not-found.json")
    empty = server.post("/v1/load", raw="")
    assert (empty.status, empty.json) == (400, fixture("load-empty-body.json")["body"])
    assert_like(server.post("/v1/load", {}), "load-no-name.json")
    assert server.get("/v1/load").json == fixture("load-get-405.json")["body"]
    vulkan = server.post("/v1/load", {"model_name": MODEL, "llamacpp_backend": "vulkan"})  # not installed here
    assert vulkan.status == 500 and vulkan.json["error"]["code"] == "model_load_error"
    assert vulkan.json["error"]["message"].endswith("'llamacpp.backend' must be one of: auto, system")
    if server.llama_server is not None:  # a flag llama-server does not know: it exits, lemond says only this
        unknown = server.post("/v1/load", {"model_name": MODEL, "llamacpp_args": "--no-such-flag"})
        assert unknown.status == 500
        assert unknown.json["error"]["message"] == f"Failed to load model '{MODEL}': llama-server failed to start"
    not_loaded = server.post("/v1/unload", {"model_name": MODEL})
    assert (not_loaded.status, not_loaded.json) == (404, fixture("unload-not-loaded.json")["body"])
    everything = server.post("/v1/unload", raw="")
    assert (everything.status, everything.json) == (200, fixture("unload-all.json")["body"])


# --- jobs ----------------------------------------------------------------------------------------------
def test_job_graph_errors(server):
    for case in fixture("jobs-errors.json"):
        reply = server.post("/v1/jobs", case["request"])
        assert (reply.status, reply.json) == (case["status"], case["body"])
    unknown = server.get("/v1/jobs/job-unknown")
    assert (unknown.status, unknown.json) == (404, fixture("job-unknown.json")["body"])


def test_job_load_chat_unload_with_on_fail(server):
    created = server.post("/v1/jobs", fixture("job-request.json"))
    assert_like(created, "job-create.json")
    job_id = created.json["id"]
    deadline = time.monotonic() + 60
    while (job := server.get(f"/v1/jobs/{job_id}")).json["status"] not in ("completed", "failed"):
        assert time.monotonic() < deadline, job.text
        time.sleep(0.05)
    want = fixture("job-done.json")["body"]
    assert [(s["id"], s["status"]) for s in job.json["steps"]] == [(s["id"], s["status"]) for s in want["steps"]]
    assert set(job.json["context"]) == set(want["context"])
    assert job.json["context"]["good"] == {"loaded": True, "model": MODEL, "backend": "system", "ctx_size": 1024}
    assert job.json["context"]["tps"] == job.json["context"]["run"]["timings"]["predicted_per_second"]
    bad = next(s for s in job.json["steps"] if s["id"] == "bad")
    assert bad["failure_handled"] is True and "Argument '--port' is managed by Lemonade" in bad["error"]
    listed = server.get("/v1/jobs")
    assert_like(listed, "jobs-list.json")
    assert listed.json["jobs"][0]["progress"] == {"cursor": "", "completed": 8, "step_count": 8}
    assert health_entries(server) == []  # the job's last step unloaded the model


def test_system_info_and_stats(server):
    info = server.get("/v1/system-info")
    assert info.status == 200
    assert set(info.json) == set(fixture("system-info.json"))
    assert info.json["recipes"]["llamacpp"]["options"] == fixture("system-info.json")["recipes"]["llamacpp"]["options"]
    assert_like(server.get("/v1/system-stats"), "system-stats.json")


# --- stopped: the file is the only way in ------------------------------------------------------------
def test_options_written_while_stopped_are_used_after_start(server):
    server.stop()
    written = {f"extra.{MODEL}": {"ctx_size": 3072}, f"user.{USER_MODEL}": {"ctx_size": 1536, "llamacpp_args": "-t 1"},
               USER_MODEL: {"ctx_size": 999}}  # a bare key names no model (only built-ins are migrated)
    server.dirs.write_json("recipe_options.json", written)
    config = server.dirs.read_json("config.json")
    server.dirs.write_json("config.json", {**config, "llamacpp": {"args": "-t 4 -b 512"}})  # global args
    server.start()
    extra = server.get(OPTIONS).json
    assert extra["saved"] == {"ctx_size": 3072}
    assert extra["effective"]["llamacpp_args"] == "-t 4 -b 512"  # one layer only: verbatim
    user = server.get(f"/v1/models/{USER_MODEL}/options").json
    assert user["saved"] == {"ctx_size": 1536, "llamacpp_args": "-t 1"}
    assert user["effective"]["llamacpp_args"] == "-b 512 -t 1"  # merged per flag, saved wins, sorted by flag
    server.post(OPTIONS, {"ctx_size": 3072})  # a save keeps the bare key: the file is rewritten from memory
    assert saved_file(server) == written
    assert server.post("/v1/load", {"model_name": f"user.{USER_MODEL}"}).status == 200
    (entry,) = health_entries(server)
    assert entry["model_name"] == USER_MODEL
    argv = entry["launch_command"]
    assert argv[argv.index("--ctx-size") + 1] == "1536" and argv[-4:] == ["-b", "512", "-t", "1"]
    if server.llama_server is not None:
        assert cmdline(entry["pid"]) == argv
