"""p50 latency of `POST /v1/recommend` against a real `engine serve` process on loopback: cache hit and miss.

Run: python bench/serve_latency.py [--n 2000]. Starts `engine serve` (hardware from the captured lemond
system-info), one keep-alive HTTP connection, and prints p50 / p90 in milliseconds for:
  hit           the same body again (a registry model name; the server's start-up facts)
  hit+sysinfo   the same body with lemond's system-info (45 KB) in it, as lemond would send it
  miss          a new `ctx_size` override each time (the Engine's cache cannot answer)
  health        GET /v1/health (the HTTP floor)
Asserts nothing.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from _timing import ROOT  # first: puts the repository root on sys.path

SYSTEM_INFO = ROOT / "tests" / "fixtures" / "lemonade-api" / "system-info.json"
MODEL = "Qwen3-8B-GGUF"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def timed(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None) -> float:
    start = time.perf_counter()
    conn.request(method, path, body=body, headers={"Content-Type": "application/json"} if body else {})
    resp = conn.getresponse()
    data = resp.read()
    elapsed = time.perf_counter() - start
    if resp.status != 200:
        raise SystemExit(f"{method} {path} -> {resp.status}: {data[:300]!r}")
    return elapsed


def measure(conn: http.client.HTTPConnection, bodies, n: int, method: str = "POST", path: str = "/v1/recommend"):
    for body in bodies(10):  # warm
        timed(conn, method, path, body)
    times = [timed(conn, method, path, body) for body in bodies(n)]
    times.sort()
    return statistics.median(times) * 1e3, times[int(len(times) * 0.9)] * 1e3


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=2000, help="requests per measurement")
    args = ap.parse_args()
    port = free_port()
    env = {**os.environ, "LEMONADE_AUTOTUNE_CONFIG_DIR": tempfile.mkdtemp(prefix="serve-bench-cfg-")}
    proc = subprocess.Popen([sys.executable, "-m", "engine", "serve", "--port", str(port), "--rate", "0",
                             "--system-info", str(SYSTEM_INFO)], env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                timed(conn, "GET", "/v1/health", None)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("engine serve did not start") from None
                time.sleep(0.1)
        sysinfo = json.loads(SYSTEM_INFO.read_text())
        same = json.dumps({"model": MODEL}).encode()
        with_si = json.dumps({"model": MODEL, "system_info": sysinfo}).encode()
        counter = iter(range(4096, 10**9, 256))
        cases = {
            "health": (lambda k: [None] * k, "GET", "/v1/health"),
            "hit": (lambda k: [same] * k, "POST", "/v1/recommend"),
            "hit+sysinfo": (lambda k: [with_si] * k, "POST", "/v1/recommend"),
            "miss": (lambda k: [json.dumps({"model": MODEL, "overrides": {"ctx_size": next(counter)}}).encode()
                                for _ in range(k)], "POST", "/v1/recommend"),
        }
        print(f"engine serve, {args.n} requests each over one keep-alive connection, Python {sys.version.split()[0]}, "
              f"{os.cpu_count()} CPUs")
        print(f"{'case':<14}{'p50 ms':>9}{'p90 ms':>9}")
        for name, (bodies, method, path) in cases.items():
            p50, p90 = measure(conn, bodies, args.n, method, path)
            print(f"{name:<14}{p50:>9.3f}{p90:>9.3f}")
        conn.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
