"""`engine serve` as a real server process on loopback: schemathesis over its OpenAPI document, 8 clients x 500
requests with a reload in the middle, bad bodies answered 4xx with the JSON path, the limits, the off switch."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.support.wire import call, free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
SYSINFO = ROOT / "tests" / "fixtures" / "lemonade-api" / "system-info.json"
GGUF = ROOT / "tests" / "fixtures" / "gguf" / "llama-gqa.gguf"
RULE = """\
rules:
  - id: my-ubatch
    description: the user's ubatch
    layer: user
    priority: 10
    when: {{recipe: llamacpp}}
    set: {{ubatch: {ubatch}}}
"""


class Served:
    def __init__(self, tmp: Path, *extra: str, env: dict[str, str] | None = None, ubatch: int = 1024) -> None:
        self.config = tmp / "autotune-config"
        (self.config / "user-rulebook").mkdir(parents=True)
        self.write_rule(ubatch)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(tmp / "serve.log", "wb")  # noqa: SIM115 - closed in stop()
        full = {**os.environ, "LEMONADE_AUTOTUNE_CONFIG_DIR": str(self.config), **(env or {})}
        self.proc = subprocess.Popen([sys.executable, "-m", "engine", "serve", "--port", str(self.port),
                                      "--system-info", str(SYSINFO), *extra], cwd=ROOT, env=full,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(self.url, "/v1/health", timeout=60, alive=lambda: self.proc.poll() is None)

    def write_rule(self, ubatch: int | str) -> None:
        (self.config / "user-rulebook" / "mine.yaml").write_text(RULE.format(ubatch=ubatch))

    def post(self, path: str, body=None, **kw):
        return call(self.url, "POST", path, body, **kw)

    def get(self, path: str):
        return call(self.url, "GET", path)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)
        self.log.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    srv = Served(tmp_path_factory.mktemp("serve"))
    yield srv
    srv.stop()


# schemathesis's pytest plugin does not run on pytest 9 (it reads a private node attribute), so its Python API
# drives hypothesis here: every operation of the served document, valid bodies and deliberately broken ones.
@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_schemathesis_over_the_served_openapi_finds_no_server_error(served, mode):
    from hypothesis import given
    from schemathesis import GenerationMode
    from schemathesis.checks import positive_data_acceptance

    api = schemathesis.openapi.from_url(f"{served.url}/openapi.json")
    operations = [r.ok() for r in api.get_all_operations()]
    assert {(o.method.upper(), o.path) for o in operations} == {
        ("POST", "/v1/recommend"), ("GET", "/v1/archetype"), ("GET", "/v1/status"), ("GET", "/v1/health"),
        ("POST", "/v1/reload")}
    statuses: dict[int, int] = {}
    for operation in operations:
        if mode == "negative" and operation.path != "/v1/recommend":
            continue  # no body or parameters: nothing to break

        @given(case=operation.as_strategy(generation_mode=GenerationMode(mode)))
        @settings(max_examples=60, suppress_health_check=list(HealthCheck), deadline=None, database=None)
        def run(case):
            # every check but "valid by the schema => 2xx": a model name the registry does not know is 422
            response = case.call_and_validate(excluded_checks=[positive_data_acceptance])
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            assert response.status_code < 500

        run()
    assert statuses and not any(code >= 500 for code in statuses)
    if mode == "positive":
        assert statuses.get(200, 0) >= 1
    else:  # every broken body is refused with a 4xx (schemathesis's negative_data_rejection check ran too)
        assert all(400 <= code < 500 for code in statuses)


def test_recommend_answers_lemonades_keys_with_the_user_layer(served):
    reply = served.post("/v1/recommend", {"model": "Qwen3-8B-GGUF", "scenario": "coding"})
    assert reply.status == 200, reply.text
    body = reply.json
    assert set(body["recipe_options"]) == {"llamacpp_backend", "llamacpp_args", "ctx_size"}
    assert "-ub 1024" in body["recipe_options"]["llamacpp_args"] and body["decisions"]["ubatch"]["layer"] == "user"
    assert body["autotune"]["enabled"] is True and body["rulebook"].startswith("rulebook@") and body["fits"] in ("yes", "estimated")
    big = served.post("/v1/recommend", {"model": "Qwen3.5-122B-A10B-GGUF"})  # 78 GB on a 24 GB machine: said loudly
    assert big.status == 200 and big.json["fits"] == "no" and big.json["memory"]["fits"] == "no"
    assert "does not fit" in big.json["warnings"][0]
    assert all(e["op"] == "choose" for e in body["explanation"]) and body["explanation"]
    facts = served.post("/v1/recommend", {"model": {"architecture": "qwen3moe", "params_b": 30.5, "active_params_b": 3.3,
                                                    "quant": "Q4_K_M", "size_gib": 17.3},
                                          "system_info": json.loads(SYSINFO.read_text()), "explain": "full"})
    assert facts.status == 200 and any(e["op"] == "match" for e in facts.json["explanation"])
    local = served.post("/v1/recommend", {"model": str(GGUF), "overrides": {"ctx_size": 4096}})
    assert local.status == 200 and local.json["recipe_options"]["ctx_size"] == 4096


@pytest.mark.parametrize(("raw", "status", "location"), [
    ("not json", 400, "$"),
    ("[1, 2]", 400, "$"),
    ('{"scenario": "chat"}', 422, "$.model"),
    ('{"model": "Qwen3-8B-GGUF", "bogus": 1}', 422, "$.bogus"),
    ('{"model": {"params_b": -1}}', 422, "$.model.params_b"),
    ('{"model": {"size_gib": true}}', 422, "$.model.size_gib"),
    ('{"model": "no-such-model-anywhere"}', 422, "$.model"),
    ('{"model": "Qwen3-8B-GGUF", "overrides": {"ctx_size": "big"}}', 422, "$.overrides"),
    ('{"model": "Qwen3-8B-GGUF", "overrides": {"backend": "vulkan"}}', 422, "$.model"),
    ('{"model": "Qwen3-8B-GGUF", "scenario": "gaming"}', 422, "$.scenario"),
    ('{"model": "Qwen3-8B-GGUF", "system_info": {"devices": 7}}', 422, "$.system_info"),
])
def test_bad_bodies_get_4xx_with_the_json_path(served, raw, status, location):
    reply = served.post("/v1/recommend", raw=raw)
    assert reply.status == status, reply.text
    assert reply.json["kind"] == "error" and reply.json["errors"][0]["location"] == location, reply.text


def test_size_bound_and_json_errors_for_unknown_routes(served):
    big = '{"model": "Qwen3-8B-GGUF", "system_info": {"x": "' + "a" * (1 << 20) + '"}}'
    reply = served.post("/v1/recommend", raw=big)
    assert reply.status == 413 and reply.json["errors"][0]["code"] == "too_large"
    assert served.get("/v1/nope").json["errors"][0]["code"] == "not_found"
    assert served.get("/v1/recommend").status == 405


def test_archetype_status_health(served):
    assert served.get("/v1/health").json["status"] == "ok"
    arche = served.get("/v1/archetype").json
    assert arche["archetype"]["id"] == "cpu-x86_64-24gb-bw2" and arche["hardware_source"].startswith("--system-info")
    status = served.get("/v1/status").json
    assert status["autotune"]["enabled"] and status["rulebook"]["roots"][-1] == str(served.config / "user-rulebook")
    assert status["limits"]["max_body"] == 1 << 20 and status["requests"]["recommend"] >= 1


def test_a_broken_rulebook_is_refused_and_the_old_one_keeps_serving(served):
    before = served.get("/v1/status").json["rulebook"]["digest"]
    served.write_rule("lots")
    try:
        reply = served.post("/v1/reload")
        assert reply.status == 422 and "mine.yaml:7" in reply.json["errors"][0]["location"], reply.text
        assert served.get("/v1/status").json["rulebook"]["digest"] == before
        assert "-ub 1024" in served.post("/v1/recommend", {"model": "Qwen3-8B-GGUF"}).json["recipe_options"]["llamacpp_args"]
    finally:
        served.write_rule(1024)
        assert served.post("/v1/reload").status == 200


def _client(url: str, bodies: list[bytes], out: list, errors: list) -> None:
    host, port = url[len("http://"):].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        for body in bodies:
            start = time.monotonic()
            conn.request("POST", "/v1/recommend", body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 200:
                errors.append((resp.status, data[:300]))
                continue
            doc = json.loads(data)
            out.append((start, time.monotonic(), doc["rulebook_digest"], doc["recipe_options"]["llamacpp_args"]))
    except Exception as err:  # noqa: BLE001 - any failure is a finding
        errors.append(repr(err))
    finally:
        conn.close()


def test_eight_clients_500_requests_each_with_a_reload_in_the_middle(served):
    sysinfo = json.loads(SYSINFO.read_text())
    kinds = [{"model": "Qwen3-8B-GGUF"}, {"model": "Qwen3-4B-GGUF", "scenario": "coding"},
             {"model": "Qwen3-8B-GGUF", "system_info": sysinfo}, {"model": "Qwen3-0.6B-GGUF", "overrides": {"threads": 2}}]
    bodies = [json.dumps(kinds[i % len(kinds)]).encode() for i in range(500)]
    old = served.get("/v1/status").json["rulebook"]["digest"]
    results: list[list] = [[] for _ in range(8)]
    errors: list = []
    threads = [threading.Thread(target=_client, args=(served.url, bodies, results[i], errors)) for i in range(8)]
    for t in threads:
        t.start()
    while sum(len(r) for r in results) < 1600 and any(t.is_alive() for t in threads):
        time.sleep(0.01)
    served.write_rule(2048)
    reply = served.post("/v1/reload")
    reloaded = time.monotonic()
    for t in threads:
        t.join(300)
    try:
        assert reply.status == 200 and reply.json["changed"] is True, reply.text
        new = reply.json["after"]
        assert errors == [] and sum(len(r) for r in results) == 4000
        seen = {"old": 0, "new": 0}
        for start, _end, digest, args in (x for r in results for x in r):
            if digest == old:  # every answer is whole: old rulebook, old values — or new, new
                assert "-ub 1024" in args and start < reloaded
                seen["old"] += 1
            else:
                assert new == f"rulebook@{digest[:12]}" and "-ub 2048" in args
                seen["new"] += 1
        assert seen["old"] >= 1600 and seen["new"] >= 1
    finally:
        served.write_rule(1024)
        served.post("/v1/reload")


def test_off_switch_and_rate_limit(tmp_path):
    srv = Served(tmp_path, "--rate", "5", "--burst", "5", env={"LEMONADE_AUTOTUNE": "0"})
    try:
        replies = [srv.post("/v1/recommend", {"model": "Qwen3-8B-GGUF"}) for _ in range(12)]
        ok = [r for r in replies if r.status == 200]
        limited = [r for r in replies if r.status == 429]
        assert ok and limited and len(ok) + len(limited) == 12
        assert limited[0].json["errors"][0]["code"] == "rate_limited"
        body = ok[0].json
        assert body["autotune"] == {"enabled": False, "why": "off: LEMONADE_AUTOTUNE=0", "source": "env"}
        assert body["recipe_options"] == {"llamacpp_backend": "system", "llamacpp_args": "", "ctx_size": -1}
    finally:
        srv.stop()


def test_loopback_only_unless_allowed():
    p = subprocess.run([sys.executable, "-m", "engine", "serve", "--host", "0.0.0.0"], capture_output=True, text=True,
                       cwd=ROOT, timeout=60)
    assert p.returncode == 2 and "--allow-remote" in p.stderr

    from engine.serve.limits import Guard

    sent: list = []

    async def app(scope, receive, send):  # pragma: no cover - must not be reached
        raise AssertionError("the guard let a remote client through")

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    guard = Guard(app, allow_remote=False, max_body=100, rate=0, burst=1)
    asyncio.run(guard({"type": "http", "client": ("10.1.2.3", 5555), "headers": []}, receive, send))
    assert sent[0]["status"] == 403 and b"loopback clients only" in sent[1]["body"]


def test_the_answer_carries_expected_performance_with_intervals_and_basis(served):
    gpu = json.loads((ROOT / "tests" / "fixtures" / "system-info" / "rtx-4090-desktop-linux.json").read_text())
    body = served.post("/v1/recommend", {"model": "Qwen3-8B-GGUF", "system_info": gpu}).json
    perf = body["performance"]
    for key in ("generation_tps", "prompt_tps", "ttft_ms"):
        e = perf[key]
        assert e["low"] < e["value"] < e["high"] and e["basis"] and e["n"] >= 1
    cpu = served.post("/v1/recommend", {"model": "Qwen3-8B-GGUF"}).json["performance"]  # no evidence here
    assert cpu["generation_tps"] is None and cpu["reason"]
