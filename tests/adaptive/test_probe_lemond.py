"""engine probe against a running Lemonade (real lemond + llama-server where found, the loopback fake
everywhere): the job loads, chats, unloads; a failing configuration falls to the next one; --write feeds learn."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.adaptive import measure, probe
from engine.lemonade.client import LemondClient
from tests.support.cli import run_engine
from tests.support.lemond import LemonadeServer, make_dirs, server_params

ROOT = Path(__file__).resolve().parents[2]
SYSINFO = str(ROOT / "tests" / "fixtures" / "lemonade-api" / "system-info.json")


engine = run_engine


@pytest.fixture(scope="module", params=server_params())
def server(request, tmp_path_factory):
    srv = LemonadeServer(request.param, make_dirs(tmp_path_factory.mktemp(f"probe-{request.param}"),
                                                  extra_models=("llama-gqa",)))
    srv.start()
    yield srv
    srv.stop()


def test_the_chain_goes_from_the_recommendation_to_safer_configurations():
    rec = {"llamacpp_backend": "vulkan", "llamacpp_args": "-ngl 99 -ub 512", "ctx_size": 32768}
    other = {"llamacpp_backend": "rocm", "llamacpp_args": "-ngl 99", "ctx_size": 32768}
    c = probe.chain(rec, other, other_label="rocm")
    assert [x.label for x in c] == ["recommended", "half the context", "placement left to llama.cpp --fit", "rocm"]
    assert c[1].options["ctx_size"] == 16384 and c[2].options["llamacpp_args"] == "-ub 512"
    assert len(probe.chain({"llamacpp_args": "", "ctx_size": 2048})) == 1  # nothing safer to try: no duplicates


def test_probe_loads_measures_unloads_and_writes_a_bench_file(server, tmp_path):
    out = tmp_path / "probe.json"
    p = engine("probe", "llama-gqa", "--lemonade", server.base_url, "--system-info", SYSINFO, "--runs", "2",
               "--write", str(out), "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    body = json.loads(p.stdout)
    assert body["verdict"] == "ok" and body["chosen"] == "recommended" and body["job_status"] == "completed"
    first = body["attempts"][0]
    assert first["status"] == "ok" and len(first["samples"]) == 2 and first["tps"] > 0
    assert all(a["status"] == "not reached" for a in body["attempts"][1:])
    assert server.get("/v1/health").json["all_models_loaded"] == []  # unloaded at the end
    job = server.get(f"/v1/jobs/{body['job']}").json
    assert [s["status"] for s in job["steps"]][:3] == ["completed", "completed", "completed"]
    ms = measure.read_bench(out)
    assert len(ms) == 1 and ms[0].scenario == "probe" and ms[0].runs == 2 and ms[0].tps == pytest.approx(first["tps"])


def test_a_failing_load_falls_to_the_next_configuration(server):
    client = LemondClient(server.base_url)
    configs = [probe.Config("broken", {"ctx_size": 2048, "llamacpp_args": "--port 5"}),  # a reserved flag
               probe.Config("plain", {"ctx_size": 1024, "llamacpp_args": "-t 1"})]
    outcome = probe.run(client, "llama-gqa", configs, runs=1, timeout=120)
    assert outcome.verdict == "fallback" and outcome.chosen.config.label == "plain"
    assert outcome.attempts[0].status == "load failed" and "--port" in outcome.attempts[0].error
    assert outcome.attempts[1].tps > 0
    none = probe.run(client, "llama-gqa", configs[:1], runs=1, timeout=120)
    assert none.verdict == "failed" and none.status == "completed"  # the job ends cleanly, nothing loaded


def test_dry_run_prints_the_job_and_submits_nothing(server):
    before = server.get("/v1/jobs").json["jobs"]
    p = engine("probe", "llama-gqa", "--lemonade", server.base_url, "--system-info", SYSINFO, "--dry-run")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["steps"][0]["op"] == "load" and doc["steps"][0]["on_fail"].startswith(("load_", "none"))
    assert server.get("/v1/jobs").json["jobs"] == before
