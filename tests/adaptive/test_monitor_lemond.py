"""engine monitor against a running Lemonade: the real lemond + llama-server where found (real-lemond), the
loopback fake everywhere (fake-lemond). /v1/health + /metrics after a chat, --measure, --write as a baseline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import run_engine
from tests.support.lemond import LemonadeServer, make_dirs, server_params

ROOT = Path(__file__).resolve().parents[2]
SYSINFO = str(ROOT / "tests" / "fixtures" / "lemonade-api" / "system-info.json")


engine = run_engine


@pytest.fixture(scope="module", params=server_params())
def server(request, tmp_path_factory):
    dirs = make_dirs(tmp_path_factory.mktemp(f"monitor-{request.param}"), extra_models=("llama-gqa",),
                     recipe_options={"extra.llama-gqa": {"ctx_size": 2048, "llamacpp_args": "-t 2"}})
    srv = LemonadeServer(request.param, dirs)
    srv.start()
    yield srv
    srv.stop()


def test_nothing_loaded_means_nothing_measured_and_exit_0(server):
    server.post("/v1/unload")
    p = engine("monitor", "--lemonade", server.base_url, "--system-info", SYSINFO)
    assert p.returncode == 0, p.stderr
    assert "0 measurement(s)" in p.stdout and "--measure" in p.stdout


def test_after_a_chat_monitor_reads_the_models_figures_from_lemond(server):
    reply = server.post("/v1/chat/completions", {"model": "llama-gqa", "max_tokens": 8,
                                                 "messages": [{"role": "user", "content": "hi"}]})
    assert reply.status == 200, reply.text
    stats = server.get("/v1/stats").json
    p = engine("monitor", "--lemonade", server.base_url, "--system-info", SYSINFO, "--json")
    assert p.returncode in (0, 1), p.stderr
    body = json.loads(p.stdout)
    assert body["lemond"]["url"] == server.base_url
    ms = [e["measurement"] for e in body["entries"] if e["measurement"]]
    assert len(ms) == 1 and ms[0]["model"] == "llama-gqa" and ms[0]["scenario"] == "live"
    assert ms[0]["tps"] == pytest.approx(stats["tokens_per_second"], rel=1e-3)
    assert ms[0]["source"].endswith(("/metrics", "/v1/stats"))
    assert ms[0]["args"] == "-t 2" and ms[0]["ctx_size"] == 2048  # the effective options from /v1/health
    assert ms[0]["extra"]["launch_command"][0].endswith("llama-server")
    # a CPU-only box has no benchmark evidence: nothing to compare with, said as such
    sev = {f["severity"] for e in body["entries"] for f in e["findings"] if f["against"] == "prediction"}
    assert sev == {"unknown"}


def test_measure_writes_a_baseline_and_a_much_faster_baseline_flags_critical(server, tmp_path):
    out = tmp_path / "run.json"
    p = engine("monitor", "--lemonade", server.base_url, "--system-info", SYSINFO, "--measure", "--runs", "2",
               "--write", str(out), "--json")
    assert p.returncode in (0, 1), p.stderr
    m = next(e["measurement"] for e in json.loads(p.stdout)["entries"] if e["measurement"])
    assert m["scenario"] == "monitor" and m["runs"] == 2 and m["tps"] > 0 and m["tps_min"] <= m["tps"] <= m["tps_max"]
    doc = json.loads(out.read_text())
    sc = doc["models"][0]["results"][0]["scenarios"][0]
    assert doc["models"][0]["model"] == "llama-gqa" and sc["tps"]["p50"] == pytest.approx(m["tps"])
    for block in ("tps",):
        for k in ("p50", "min", "max", "mean"):
            sc[block][k] *= 10  # as if this machine once ran ten times faster
    fast = tmp_path / "fast.json"
    fast.write_text(json.dumps(doc))
    p = engine("monitor", "--lemonade", server.base_url, "--system-info", SYSINFO, "--measure", "--runs", "1",
               "--baseline", str(fast))
    assert p.returncode == 1, p.stdout + p.stderr
    assert "CRITICAL" in p.stdout and "vs baseline" in p.stdout and "re-benchmark llama-gqa" in p.stdout
