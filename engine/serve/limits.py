"""ASGI guards in front of `engine serve`: loopback clients only (unless allowed), a request-body size cap, and a
per-client token-bucket rate limit. Each refusal is a JSON error envelope (403, 413, 429)."""

from __future__ import annotations

import ipaddress
import json
import threading
import time
from typing import Any

from engine.envelope import envelope

Scope = dict[str, Any]


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def error_body(status: int, code: str, message: str, location: str | None = None) -> bytes:
    return json.dumps(envelope("error", {"status": status},
                               [{"code": code, "message": message, "location": location}])).encode()


async def send_error(send: Any, status: int, code: str, message: str, headers: list[tuple[bytes, bytes]] = ()
                     ) -> None:
    body = error_body(status, code, message)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


class TokenBucket:
    """`rate` requests per second per key, bursts up to `burst` (rate 0 = unlimited)."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, max(burst, 1.0)
        self._state: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0 when allowed, else the seconds until a token is there."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            tokens, last = self._state.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._state[key] = (tokens - 1.0, now)
                return 0.0
            self._state[key] = (tokens, now)
            if len(self._state) > 10000:  # forget idle clients
                self._state = {k: v for k, v in self._state.items() if now - v[1] < 60}
            return (1.0 - tokens) / self.rate


class Guard:
    """The ASGI middleware: loopback check, rate limit, body cap (Content-Length and streamed bytes)."""

    def __init__(self, app: Any, *, allow_remote: bool, max_body: int, rate: float, burst: float) -> None:
        self.app = app
        self.allow_remote = allow_remote
        self.max_body = max_body
        self.bucket = TokenBucket(rate, burst)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or (None, None))[0]
        if not self.allow_remote and not is_loopback(client):
            await send_error(send, 403, "forbidden", "engine serve answers loopback clients only "
                                                     "(start it with --allow-remote to change that)")
            return
        wait = self.bucket.take(str(client))
        if wait > 0:
            await send_error(send, 429, "rate_limited", f"too many requests; retry in {wait:.3f} s",
                             [(b"retry-after", str(max(1, round(wait))).encode())])
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                declared = -1
            if declared < 0 or declared > self.max_body:
                await send_error(send, 413, "too_large", f"request body over {self.max_body} bytes")
                return
        body = bytearray()  # read it all here (bounded), then hand it to the app in one message
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = bool(message.get("more_body"))
            if len(body) > self.max_body:
                await send_error(send, 413, "too_large", f"request body over {self.max_body} bytes")
                return
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
