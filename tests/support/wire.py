"""Loopback HTTP plumbing shared by the lemond harness and the fake: free ports, JSON calls, readiness waits."""

from __future__ import annotations

import http.client
import json
import socket
import time
from dataclasses import dataclass
from typing import Any


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it; another process may still take it later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Reply:
    """One HTTP answer: status, content type and body; `.json` parses the body (None when it is not JSON)."""

    status: int
    content_type: str
    text: str

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.text)
        except ValueError:
            return None


def call(base_url: str, method: str, path: str, body: Any = None, *, raw: str | bytes | None = None,
         timeout: float = 60.0) -> Reply:
    """One request to `base_url` + `path`; `body` is sent as JSON, `raw` as given (for malformed-body tests)."""
    assert base_url.startswith("http://"), base_url
    host, _, port = base_url[len("http://"):].partition(":")
    conn = http.client.HTTPConnection(host, int(port.split("/")[0]), timeout=timeout)
    try:
        data: bytes | None
        if raw is not None:
            data = raw.encode() if isinstance(raw, str) else raw
        elif body is not None:
            data = json.dumps(body).encode()
        else:
            data = None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        text = resp.read().decode("utf-8", errors="replace")
        return Reply(resp.status, resp.getheader("Content-Type") or "", text)
    finally:
        conn.close()


def wait_for(base_url: str, path: str, *, timeout: float, alive: Any = None, ok=(200,)) -> float:
    """Poll `path` until it answers with a status in `ok`; `alive()` returning False aborts early.

    Returns the seconds waited; raises TimeoutError (or RuntimeError when `alive` says the process died)."""
    start = time.monotonic()
    while True:
        if alive is not None and not alive():
            raise RuntimeError(f"process died before {base_url}{path} answered")
        try:
            if call(base_url, "GET", path, timeout=2.0).status in ok:
                return time.monotonic() - start
        except OSError:
            pass
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{base_url}{path} did not answer within {timeout:.0f} s")
        time.sleep(0.02)
