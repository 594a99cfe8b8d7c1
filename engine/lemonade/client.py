"""A small HTTP client for a running lemond (docs/lemonade-api.md): health, models, options, system-info, load.

stdlib only (http.client): one short-lived connection per call, JSON in and out, `LEMONADE_API_KEY` sent as a
Bearer token when set (lemond then requires it). Every failure is a `LemondError` that says what was asked.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from typing import Any
from urllib.parse import quote, urlsplit

from engine.errors import UserError

MAX_BODY = 64 << 20


class LemondError(UserError):
    """lemond answered with an error, or an answer that is not what its API documents."""

    code = "lemond"

    def __init__(self, message: str, status: int | None = None, body: Any = None):
        self.status, self.body = status, body
        super().__init__(message)


class LemondUnreachable(LemondError):
    """Nothing answers at the URL (connection refused, timeout, no such host)."""

    code = "lemond_unreachable"


def _error_text(body: Any) -> str:
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            return str(err.get("message") or err)
        if err is not None:
            return str(err)
    return json.dumps(body)[:300] if body is not None else "(no body)"


class LemondClient:
    """Calls to one lemond at `url` (`http://host:port`)."""

    def __init__(self, url: str, *, timeout: float = 30.0, api_key: str | None = None) -> None:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UserError(f"--lemonade {url!r}: expected a URL such as http://127.0.0.1:13305")
        self.scheme, self.host = parts.scheme, parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/")
        self.url = f"{parts.scheme}://{parts.netloc}{self.prefix}"
        self.timeout = timeout
        self.api_key = api_key if api_key is not None else os.environ.get("LEMONADE_API_KEY") or None

    # --- plumbing ------------------------------------------------------------------------------------
    def call(self, method: str, path: str, body: Any = None, *, timeout: float | None = None) -> tuple[int, Any]:
        """(status, parsed JSON body or None) of one request; LemondUnreachable when nothing answers."""
        status, raw = self.call_raw(method, path, body, timeout=timeout)
        try:
            parsed = json.loads(raw) if raw.strip() else None
        except ValueError:
            parsed = None
        return status, parsed

    def call_raw(self, method: str, path: str, body: Any = None, *,
                 timeout: float | None = None) -> tuple[int, bytes]:
        """(status, body bytes) of one request; LemondUnreachable when nothing answers."""
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        conn = cls(self.host, self.port, timeout=timeout or self.timeout)
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        try:
            conn.request(method, self.prefix + path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read(MAX_BODY + 1)
        except (TimeoutError, ConnectionError, socket.gaierror, OSError, http.client.HTTPException) as err:
            raise LemondUnreachable(f"lemond at {self.url} did not answer {method} {path}: {err}") from None
        finally:
            conn.close()
        if len(raw) > MAX_BODY:
            raise LemondError(f"{method} {self.url}{path}: answer larger than {MAX_BODY} bytes", resp.status)
        return resp.status, raw

    def _json(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200,)) -> Any:
        status, parsed = self.call(method, path, body)
        if status == 401:
            raise LemondError(f"lemond at {self.url} wants an API key: set LEMONADE_API_KEY", status, parsed)
        if status not in ok:
            raise LemondError(f"{method} {self.url}{path} -> {status}: {_error_text(parsed)}", status, parsed)
        return parsed

    # --- endpoints -----------------------------------------------------------------------------------
    def probe(self, timeout: float = 2.0) -> dict[str, Any] | None:
        """`GET /v1/health` when a lemond answers it (status ok + version), else None (nothing, or not lemond)."""
        try:
            status, body = self.call("GET", "/v1/health", timeout=timeout)
        except LemondUnreachable:
            return None
        if status == 401:
            raise LemondError(f"lemond at {self.url} wants an API key: set LEMONADE_API_KEY", status, body)
        if status == 200 and isinstance(body, dict) and body.get("status") == "ok" and "version" in body:
            return body
        return None

    def health(self) -> dict[str, Any]:
        body = self._json("GET", "/v1/health")
        if not isinstance(body, dict):
            raise LemondError(f"GET {self.url}/v1/health: not a JSON object")
        return body

    def models(self) -> list[dict[str, Any]]:
        """Downloaded models (`GET /v1/models` data)."""
        body = self._json("GET", "/v1/models")
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise LemondError(f"GET {self.url}/v1/models: no `data` list")
        return [m for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]

    def model(self, model_id: str) -> dict[str, Any] | None:
        """One model, or None when lemond does not know it (404)."""
        status, body = self.call("GET", f"/v1/models/{quote(model_id, safe='')}")
        if status == 404:
            return None
        if status != 200 or not isinstance(body, dict):
            raise LemondError(f"GET {self.url}/v1/models/{model_id} -> {status}: {_error_text(body)}", status, body)
        return body

    def options(self, model_id: str) -> dict[str, Any]:
        """`{model_name, recipe, saved, effective, defaults, resolved_ctx_size}` of one model."""
        return self._check_options(self._json("GET", f"/v1/models/{quote(model_id, safe='')}/options"), model_id)

    def post_options(self, model_id: str, changes: dict[str, Any], *, dry_run: bool) -> dict[str, Any]:
        """Merge `changes` into the saved entry (`null` clears a key); `dry_run` writes nothing."""
        body = {**changes, "dry_run": dry_run}
        return self._check_options(self._json("POST", f"/v1/models/{quote(model_id, safe='')}/options", body),
                                   model_id)

    def _check_options(self, body: Any, model_id: str) -> dict[str, Any]:
        if not (isinstance(body, dict) and isinstance(body.get("saved"), dict)
                and isinstance(body.get("effective"), dict)):
            raise LemondError(f"{self.url}: the options answer for {model_id!r} lacks `saved`/`effective`")
        return body

    def system_info(self) -> dict[str, Any]:
        body = self._json("GET", "/v1/system-info")
        if not isinstance(body, dict):
            raise LemondError(f"GET {self.url}/v1/system-info: not a JSON object")
        return body

    def load(self, model_id: str, **options: Any) -> dict[str, Any]:
        return self._json("POST", "/v1/load", {"model_name": model_id, **options})

    def stats(self) -> dict[str, Any]:
        """`GET /v1/stats`: the last request's speed and TTFT, and totals."""
        body = self._json("GET", "/v1/stats")
        if not isinstance(body, dict):
            raise LemondError(f"GET {self.url}/v1/stats: not a JSON object")
        return body

    def metrics(self) -> str:
        """`GET /metrics` (Prometheus text; no API prefix)."""
        status, raw = self.call_raw("GET", "/metrics")
        if status != 200:
            raise LemondError(f"GET {self.url}/metrics -> {status}", status)
        return raw.decode("utf-8", "replace")

    def chat(self, body: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        """`POST /v1/chat/completions` (OpenAI body) -> llama-server's answer (with `timings`)."""
        status, parsed = self.call("POST", "/v1/chat/completions", body, timeout=timeout)
        if status != 200 or not isinstance(parsed, dict):
            raise LemondError(f"POST {self.url}/v1/chat/completions -> {status}: {_error_text(parsed)}", status,
                              parsed)
        return parsed

    def submit_job(self, job: dict[str, Any]) -> str:
        """`POST /v1/jobs` -> the job id (202)."""
        body = self._json("POST", "/v1/jobs", job, ok=(200, 201, 202))
        if not isinstance(body, dict) or not isinstance(body.get("id"), str):
            raise LemondError(f"POST {self.url}/v1/jobs: no job `id` in the answer")
        return body["id"]

    def job(self, job_id: str) -> dict[str, Any]:
        """`GET /v1/jobs/{id}`: the job record with its steps."""
        body = self._json("GET", f"/v1/jobs/{quote(job_id, safe='')}")
        if not isinstance(body, dict):
            raise LemondError(f"GET {self.url}/v1/jobs/{job_id}: not a JSON object")
        return body
