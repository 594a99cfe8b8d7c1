"""A loopback stand-in for lemond: `python -m tests.support.fake_lemond CACHE CONFIG --host H --port P` serves
Lemonade's documented shapes (server.cpp handlers) for the endpoints lemonade-autotune uses; see README.md."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.fake_jobs import JobError, JobManager
from tests.support.fake_metrics import prometheus_text, system_stats
from tests.support.fake_options import Options, validate_changes
from tests.support.fake_router import AUTO_CTX_FALLBACK, LemonadeError, Model, Registry, Router, SavedOptions
from tests.support.lemond import find_llama_server

VERSION = "11.7.0"
DATA = Path(__file__).resolve().parents[1] / "fixtures" / "lemonade-api"
PREFIXES = ("/api/v0/", "/api/v1/", "/v0/", "/v1/")
MODEL_TYPES = ("classification", "embedding", "image", "llm", "reranking", "transcription", "tts")
POST_ONLY = {"load", "unload", "chat/completions"}


class Lemonade:
    """The fake's handlers over one config dir; each returns (status, JSON body)."""

    def __init__(self, cache_dir: Path, config_dir: Path, *, use_llama_server: bool = True) -> None:
        self.config_dir = config_dir
        self.config = self._config()
        self.registry = Registry(config_dir, str(self.config.get("extra_models_dir", "")))
        self.saved = SavedOptions(config_dir / "recipe_options.json")
        arch = json.loads((DATA / "architecture_defaults.json").read_text())
        llama = find_llama_server() if use_llama_server else None
        self.router = Router(self.config, self.registry, self.saved, arch, str(llama) if llama else None)
        self.jobs = JobManager(self._ops(), config_dir / "jobs.json", self.router.gate)

    def _config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"max_loaded_models": 1, "ctx_size": -1, "extra_models_dir": "",
                                  "websocket_port": "auto", "llamacpp": {"args": "", "backend": "auto"}}
        try:
            user = json.loads((self.config_dir / "config.json").read_text())
        except (OSError, ValueError):
            user = {}
        for key, value in (user if isinstance(user, dict) else {}).items():
            config[key] = {**config[key], **value} if isinstance(config.get(key), dict) and isinstance(value, dict) \
                else value
        return config

    # --- models ----------------------------------------------------------------------------------------
    def find(self, name: str) -> Model:
        model = self.registry.find(name)
        if model is None:
            raise self.registry.not_found(name)
        return model

    def model_json(self, model: Model, wire_id: str | None = None) -> dict[str, Any]:
        loaded = self.router.loaded.get(model.canonical)
        ctx = loaded.options.get("ctx_size") if loaded else self.router.effective(model, Options(model.recipe)).get(
            "ctx_size")
        out = {"id": wire_id or self.registry.public_name(model), "object": "model", "created": 1234567890,
               "owned_by": "lemonade", "checkpoint": model.checkpoint, "checkpoints": {"main": model.checkpoint},
               "recipe": model.recipe, "downloaded": True, "update_available": False, "suggested": True,
               "source": model.source, "registry_source": "huggingface", "labels": model.labels, "components": [],
               "recipe_options": dict(self.router.model_options(model).values)}
        if model.max_context_window > 0:
            out["max_context_window"] = model.max_context_window
        context_length = ctx if isinstance(ctx, int) and ctx > 0 else model.max_context_window
        if context_length > 0:
            out["context_length"] = context_length
        return out

    def models(self) -> dict[str, Any]:
        self.registry.scan()
        data = [self.model_json(m) for m in sorted(self.registry.models.values(), key=self.registry.public_name)]
        return {"data": data, "object": "list"}

    def options(self, model_id: str, method: str, body: Any) -> dict[str, Any]:
        """GET/POST/DELETE /v1/models/{id}/options (Server::respond_with_model_options)."""
        model = self.find(model_id)
        preview = None
        if method == "POST":
            body = _required_json(body)
            if not isinstance(body, dict):
                raise LemonadeError(400, {"error": "Request body must be a JSON object of recipe options"})
            dry_run = body.pop("dry_run", False)
            if not isinstance(dry_run, bool):
                raise LemonadeError(400, {"error": "'dry_run' must be a boolean"})
            changes, error = validate_changes(model.recipe, body)
            if changes is None:
                raise LemonadeError(400, {"error": error})
            if dry_run:
                preview = self.saved.preview(model.canonical, changes)
            elif changes:
                self.saved.write(model.canonical, changes, merge=True)
        elif method == "DELETE" and self.saved.get(model.canonical):
            self.saved.write(model.canonical, {}, merge=False)
        no_request = Options(model.recipe, {})
        effective = self.router.effective(model, no_request, preview)
        defaults = self.router.effective(model, no_request, {})
        ctx = effective.get("ctx_size")
        return {"model_name": model_id, "recipe": model.recipe, "saved": self.saved.get(model.canonical),
                "effective": _replayable(effective, model_id), "defaults": _replayable(defaults, model_id),
                "resolved_ctx_size": AUTO_CTX_FALLBACK if ctx == -1 else ctx}

    # --- load / unload / chat --------------------------------------------------------------------------
    def load(self, body: Any) -> dict[str, Any]:
        """POST /v1/load (Server::handle_load): options in the body, null tombstones, save_options."""
        body = _required_json(body)
        name = body.get("model_name") if isinstance(body, dict) else None
        if not isinstance(name, str):
            raise LemonadeError(400, {"error": {"message": f"Invalid request: type must be string, but is "
                                                           f"{_json_type(name)}", "type": "invalid_request_error",
                                                "code": "invalid_request"}})
        model = self.find(name)
        request = Options(model.recipe, body)
        tombstones = {k for k, v in request.explicit.items() if v is None}
        if body.get("save_options") is True:
            to_write = dict(request.values)
            existing = self.saved.get(model.canonical)
            to_write.update({k: existing[k] for k in tombstones if k in existing})
            self.saved.write(model.canonical, to_write, merge=False)
        saved = {k: v for k, v in self.saved.get(model.canonical).items() if k not in tombstones}
        pinned = body.get("pinned") if isinstance(body.get("pinned"), bool) else None
        try:
            self.router.load(model, request, pinned, saved)
        except (ValueError, RuntimeError, OSError) as err:
            raise LemonadeError(500, {"error": {"message": f"Failed to load model '{name}': {err}",
                                                "type": "model_load_error", "param": "model",
                                                "code": "model_load_error", "requested_model": name}}) from err
        return {"status": "success", "model_name": name, "checkpoint": model.checkpoint, "recipe": model.recipe}

    def unload(self, raw: str) -> dict[str, Any]:
        name = ""
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        if isinstance(body, dict):
            name = next((body[k] for k in ("model_name", "model") if isinstance(body.get(k), str)), "")
        self.router.unload(name)
        if not name:
            return {"status": "success", "message": "All models unloaded successfully"}
        return {"status": "success", "message": "Model unloaded successfully", "model_name": name}

    def health(self) -> dict[str, Any]:
        entries = self.router.health_entries()
        latest = max(entries, key=lambda e: e["last_use"])["model_name"] if entries else None
        ws = self.config.get("websocket_port")
        pinned = {t: 0 for t in MODEL_TYPES}
        pinned["llm"] = sum(1 for e in entries if e["pinned"])
        return {"status": "ok", "version": VERSION, "telemetry": {"enabled": False}, "model_loaded": latest,
                "all_models_loaded": entries, "max_models": {t: int(self.config["max_loaded_models"]) for t in
                                                             MODEL_TYPES},
                "pinned_models": pinned, "pinned_helper_models": {t: 0 for t in MODEL_TYPES},
                "websocket_port": ws if isinstance(ws, int) and ws > 0 else 9000, "update_check_done": True}

    def system_info(self) -> dict[str, Any]:
        text = (DATA / "system-info.json").read_text()
        return json.loads(text.replace("<MODELS_DIR>", str(self.config.get("models_dir", ""))))

    # --- jobs ------------------------------------------------------------------------------------------
    def _ops(self) -> dict[str, tuple[Any, bool]]:
        def sleep(params: dict[str, Any], cancel: threading.Event) -> dict[str, Any]:
            cancel.wait(max(0, int(params.get("ms", 0))) / 1000)
            return {}

        def models(params: dict[str, Any], cancel: threading.Event) -> dict[str, Any]:
            if "id" in params:
                model = self.registry.find(str(params["id"]))
                if model is None:
                    raise JobError(404, f"unknown model '{params['id']}'")
                return self.model_json(model, str(params["id"]))
            return self.models()

        def load(params: dict[str, Any], cancel: threading.Event) -> dict[str, Any]:
            if not isinstance(params.get("model"), str):
                raise JobError(400, "load requires a 'model' string")
            model = self.registry.find(params["model"])
            if model is None:
                raise JobError(404, f"unknown model '{params['model']}'")
            pinned = params["pinned"] if isinstance(params.get("pinned"), bool) else None
            try:
                backend = self.router.load(model, Options(model.recipe, params), pinned)
            except Exception as err:
                raise JobError(500, str(err)) from err
            return {"loaded": True, "model": params["model"], "backend": backend.options.get("llamacpp_backend"),
                    "ctx_size": backend.options.get("ctx_size")}

        def unload(params: dict[str, Any], cancel: threading.Event) -> dict[str, Any]:
            name = params.get("model") if isinstance(params.get("model"), str) else ""
            model = self.registry.find(name) if name else None
            if not name or (model and model.canonical in self.router.loaded):
                self.router.unload(name)
            return {}

        def chat(params: dict[str, Any], cancel: threading.Event) -> dict[str, Any]:
            try:
                return self.router.chat(dict(params))
            except LemonadeError as err:
                message = err.body.get("error")
                raise JobError(424, message.get("message", "chat failed") if isinstance(message, dict)
                               else str(message)) from err

        return {"system_info": (lambda p, c: self.system_info(), False), "system_stats": (lambda p, c: system_stats(),
                False), "models": (models, False), "sleep": (sleep, False), "load": (load, True),
                "unload": (unload, True), "chat": (chat, True)}


def _replayable(options: Options, model_id: str) -> dict[str, Any]:
    out = options.resolved()
    out.pop("pinned", None)
    out["model_name"] = model_id
    return out


def _json_type(value: Any) -> str:
    return {type(None): "null", bool: "boolean", int: "number", float: "number", list: "array", dict: "object"}.get(
        type(value), "string")


def _required_json(raw: Any) -> Any:
    if raw == "":
        raise LemonadeError(400, {"error": "Request body is required but was empty"})
    try:
        return json.loads(raw)
    except ValueError as err:
        raise LemonadeError(400, {"error": f"Invalid JSON in request body: {err}"}) from err


class Handler(BaseHTTPRequestHandler):
    server_version = "fake-lemond"
    lemonade: Lemonade  # set on the class by serve()

    def log_message(self, fmt: str, *args: Any) -> None:  # quiet, like lemond at info level
        pass

    def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
        data = (body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> str:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length).decode("utf-8", errors="replace") if length else ""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        raw = self._body() if method != "GET" else ""
        try:
            status, body = self._route(method, url.path, parse_qs(url.query), raw)
        except LemonadeError as err:
            status, body = err.status, err.body
        except JobError as err:
            status, body = err.status, {"error": str(err)}
        if isinstance(body, str):
            self._send(status, body, "text/plain; version=0.0.4; charset=utf-8")
        else:
            self._send(status, body)

    def _route(self, method: str, path: str, query: dict[str, list[str]], raw: str) -> tuple[int, Any]:
        lem = self.lemonade
        if path == "/live" and method == "GET":
            return 200, {"status": "ok"}
        if path == "/metrics" and method == "GET":
            return 200, prometheus_text(lem.router, VERSION, int(lem.config["max_loaded_models"]))
        prefix = next((p for p in PREFIXES if path.startswith(p)), None)
        if prefix is None:
            return 404, ""
        ep = path[len(prefix):]
        if method == "GET" and ep in POST_ONLY:
            return 405, {"error": "Method Not Allowed. Use POST for this endpoint"}
        parts = ep.split("/")
        if ep.startswith("models/") and ep.endswith("/options") and len(ep) > len("models//options"):
            return 200, lem.options(ep[len("models/"):-len("/options")], method, raw)
        if method == "GET":
            if ep == "health":
                return 200, lem.health()
            if ep == "models":
                return 200, lem.models()
            if ep.startswith("models/"):
                return 200, lem.model_json(lem.find(ep[len("models/"):]))  # id: the public (bare) name
            if ep == "stats":
                return 200, {**lem.router.stats.to_json(), "routing_decisions_total": 0, "routing_switches_total": 0}
            if ep == "system-info":
                return 200, lem.system_info()
            if ep == "system-stats":
                return 200, system_stats()
            if ep == "jobs":
                return 200, {"jobs": lem.jobs.list()}
            if parts[0] == "jobs" and len(parts) == 2:
                job = lem.jobs.get(parts[1])
                return (200, job) if job is not None else (404, {"error": "unknown job"})
        if method == "POST":
            if ep == "load":
                return 200, lem.load(raw)
            if ep == "unload":
                return 200, lem.unload(raw)
            if ep == "chat/completions":
                return 200, lem.router.chat(_required_json(raw))
            if ep == "jobs":
                try:
                    body = json.loads(raw)
                except ValueError as err:
                    return 400, {"error": str(err)}
                return 202, {"id": lem.jobs.create(body)}
            if parts[0] == "jobs" and len(parts) == 3 and parts[2] in ("pause", "interrupt", "resume"):
                if lem.jobs.control(parts[1], parts[2]):
                    return 200, {"status": {"pause": "pausing", "interrupt": "interrupting", "resume": "resuming"}[
                        parts[2]]}
                return 404, {"error": f"job not found or not {parts[2]}able".replace("pauseable", "pausable")}
        if method == "DELETE" and parts[0] == "jobs" and len(parts) == 2:
            if lem.jobs.control(parts[1], "delete"):
                return 200, {"status": "deleted"}
            return 404, {"error": "unknown job"}
        return 404, ""


def serve(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fake_lemond", description=__doc__)
    parser.add_argument("cache_dir")
    parser.add_argument("config_dir", nargs="?")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--no-broadcast", action="store_true")
    parser.add_argument("--no-llama-server", action="store_true", help="record launch commands, run nothing")
    args = parser.parse_args(argv)
    config_dir = Path(args.config_dir or args.cache_dir)
    Handler.lemonade = Lemonade(Path(args.cache_dir), config_dir, use_llama_server=not args.no_llama_server)
    httpd = ThreadingHTTPServer((args.host, args.port), Handler)
    httpd.daemon_threads = True
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threading.Thread(target=httpd.serve_forever, name="fake-lemond-http", daemon=True).start()
    print(f"fake lemond {VERSION} on http://{args.host}:{args.port} config {config_dir}", flush=True)
    stop.wait()
    httpd.shutdown()
    Handler.lemonade.router.unload()
    return 0


if __name__ == "__main__":
    sys.exit(serve())
