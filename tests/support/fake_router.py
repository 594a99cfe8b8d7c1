"""The fake lemond's state: models (extra_models_dir, user_models.json), recipe_options.json, loaded
llama-server processes and request telemetry — after Lemonade's ModelManager and Router."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.fake_options import Options, parse_args, reserved_flag_error, resolve_effective
from tests.support.wire import call, free_port, wait_for

AUTO_CTX_FALLBACK = 4096  # auto_tune.h: what ctx_size -1 resolves to when memory cannot be read


class LemonadeError(Exception):
    """An answer other than 200, with lemond's status and JSON body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(json.dumps(body))
        self.status, self.body = status, body


@dataclass
class Model:
    canonical: str  # extra.<stem> / user.<name>: the recipe_options.json key
    bare: str
    source: str  # "extra_models_dir" or the user_models.json "source"
    checkpoint: str
    recipe: str
    labels: list[str]
    registry_options: dict[str, Any] | None
    architecture: str
    max_context_window: int


def _gguf_meta(path: str) -> tuple[str, int]:
    """(general.architecture, <arch>.context_length) of a GGUF, ("", 0) when unreadable."""
    try:
        from gguf import GGUFReader

        fields = GGUFReader(path).fields
        arch_field = fields["general.architecture"]
        arch = bytes(arch_field.parts[arch_field.data[0]]).decode()
        ctx_field = fields.get(f"{arch}.context_length")
        return arch, int(ctx_field.parts[ctx_field.data[0]][0]) if ctx_field else 0
    except Exception:  # noqa: BLE001 - lemond treats an unreadable header as "no metadata"
        return "", 0


class Registry:
    """Models found in extra_models_dir (`extra.<stem>`) and user_models.json (`user.<name>`); bare names
    resolve to the winner of user > extra, the canonical ids always resolve."""

    def __init__(self, config_dir: Path, extra_models_dir: str) -> None:
        self.config_dir, self.extra_dir = config_dir, extra_models_dir
        self.models: dict[str, Model] = {}
        self.scan()

    def scan(self) -> None:
        models: dict[str, Model] = {}
        if self.extra_dir and Path(self.extra_dir).is_dir():
            for gguf in sorted(Path(self.extra_dir).glob("*.gguf")):
                arch, ctx = _gguf_meta(str(gguf))
                models[f"extra.{gguf.stem}"] = Model(f"extra.{gguf.stem}", gguf.stem, "extra_models_dir",
                                                     str(gguf), "llamacpp", ["custom", "chat"], None, arch, ctx)
        try:
            user = json.loads((self.config_dir / "user_models.json").read_text())
        except (OSError, ValueError):
            user = {}
        for name, entry in (user if isinstance(user, dict) else {}).items():
            if isinstance(entry, dict) and isinstance(entry.get("checkpoint"), str):
                arch, ctx = _gguf_meta(entry["checkpoint"])
                opts = entry.get("recipe_options") if isinstance(entry.get("recipe_options"), dict) else None
                models[f"user.{name}"] = Model(f"user.{name}", name, str(entry.get("source", "")), entry["checkpoint"],
                                               str(entry.get("recipe", "llamacpp")), list(entry.get("labels", ["chat"])),
                                               opts, arch, ctx)
        self.models = models

    def public_name(self, model: Model) -> str:
        winner = self._winner(model.bare)
        return model.bare if winner is model else model.canonical

    def _winner(self, bare: str) -> Model | None:
        return self.models.get(f"user.{bare}") or self.models.get(f"extra.{bare}")

    def find(self, name: str) -> Model | None:
        name = name.strip()
        for attempt in range(2):
            found = self.models.get(name) or self._winner(name)
            if found is not None or attempt:
                return found
            self.scan()  # lemond re-reads user_models.json when a lookup misses
        return None

    def not_found(self, name: str) -> LemonadeError:
        names = sorted(self.public_name(m) for m in self.models.values())
        message = f"Model '{name}' was not found. "
        if names:
            message += "Available models include: " + ", ".join(f"'{n}'" for n in names[:3])
            message += f", and {len(names) - 3} more. " if len(names) > 3 else ". "
        message += "Use 'lemonade list' or GET /api/v1/models?show_all=true to see all available models."
        return LemonadeError(404, {"error": {"message": message, "type": "model_not_found", "param": "model",
                                             "code": "model_not_found", "requested_model": name}})


class SavedOptions:
    """recipe_options.json: read once at start; every save rewrites the whole file from memory (so an edit made
    on disk while the server runs is invisible and lost at the next save), as ModelManager does."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            data = {}
        self.data: dict[str, Any] = data if isinstance(data, dict) else {}

    def get(self, canonical: str) -> dict[str, Any]:
        entry = self.data.get(canonical)
        return dict(entry) if isinstance(entry, dict) else {}

    def preview(self, canonical: str, changes: dict[str, Any]) -> dict[str, Any]:
        saved = self.get(canonical)
        for key, value in changes.items():
            if value is None:
                saved.pop(key, None)
            else:
                saved[key] = value
        return saved

    def write(self, canonical: str, options: dict[str, Any], merge: bool) -> dict[str, Any]:
        saved = self.preview(canonical, options) if merge else dict(options)
        if saved:
            self.data[canonical] = saved
        else:
            self.data.pop(canonical, None)
        tmp = self.path.with_name(f"{self.path.name}.tmp.{os.getpid()}.{threading.get_ident()}")
        tmp.write_text(json.dumps(self.data, indent=2, sort_keys=True, ensure_ascii=False))  # nlohmann dump(2)
        os.replace(tmp, self.path)
        return saved


@dataclass
class Backend:
    """One loaded model: its effective options, the llama-server command line and process (when one runs)."""

    model: Model
    public: str
    options: Options
    ctx_auto: bool
    port: int
    launch_command: list[str]
    process: subprocess.Popen[bytes] | None
    pinned: bool
    last_use: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.process.pid if self.process is not None else 0

    def alive(self) -> bool:
        return self.process is None or self.process.poll() is None


class Router:
    """Loads, reloads on an option change, evicts LRU past max_loaded_models, unloads; one load at a time.
    `gate` is also held by a running job, so outside load/chat traffic waits for it."""

    def __init__(self, config: dict[str, Any], registry: Registry, saved: SavedOptions,
                 arch_defaults: dict[str, Any], llama_server: str | None) -> None:
        self.config, self.registry, self.saved = config, registry, saved
        self.arch_defaults, self.llama_server = arch_defaults, llama_server
        self.gate = threading.RLock()
        self.loaded: dict[str, Backend] = {}
        self.stats = Telemetry()
        self.per_model: dict[str, Telemetry] = {}

    # The backend lemond picks when nothing names one (system-info `default_backend`): the fake stands for a
    # lemond that runs the llama-server on PATH, whether or not it really starts one.
    default_backend = "system"

    def model_options(self, model: Model, saved: dict[str, Any] | None = None) -> Options:
        layer = {**(model.registry_options or {}), **(self.saved.get(model.canonical) if saved is None else saved)}
        return Options(model.recipe, layer, self.default_backend)

    def effective(self, model: Model, request: Options, saved: dict[str, Any] | None = None) -> Options:
        return resolve_effective(model.recipe, config=self.config,
                                 arch_defaults=self.arch_defaults.get(model.architecture, {}),
                                 registry=model.registry_options,
                                 saved=self.saved.get(model.canonical) if saved is None else saved,
                                 request=request, default_backend=self.default_backend)

    def load(self, model: Model, request: Options, pinned: bool | None = None,
             saved: dict[str, Any] | None = None) -> Backend:
        with self.gate:
            effective = self.effective(model, request, saved)
            existing = self.loaded.get(model.canonical)
            if existing and not existing.alive():
                self._evict(existing)
                existing = None
            if existing:
                have, want = existing.options.resolved(), effective.resolved()
                have.pop("pinned")
                want.pop("pinned")
                if existing.ctx_auto and want["ctx_size"] == -1:
                    have.pop("ctx_size")
                    want.pop("ctx_size")
                if have == want:
                    existing.last_use = time.monotonic()
                    existing.pinned = existing.pinned if pinned is None else pinned
                    return existing
                self._evict(existing)
            limit = int(self.config.get("max_loaded_models", 1))
            while limit > 0 and len(self.loaded) >= limit:
                self._evict(min(self.loaded.values(), key=lambda b: b.last_use))
            ctx_auto = effective.get("ctx_size") == -1
            if ctx_auto:
                effective.set("ctx_size", AUTO_CTX_FALLBACK)
            backend = self._launch(model, effective, ctx_auto)
            backend.pinned = bool(pinned) if pinned is not None else effective.get("pinned") is True
            self.loaded[model.canonical] = backend
            return backend

    def _launch(self, model: Model, options: Options, ctx_auto: bool) -> Backend:
        args = options.get("llamacpp_args") or ""
        backend_name = options.get("llamacpp_backend")
        if backend_name not in ("system", "auto", ""):  # RuntimeConfig::validate_backend_choice: installed ones
            raise ValueError("'llamacpp.backend' must be one of: auto, system")
        port = free_port()
        argv = ["llama-server", "-m", model.checkpoint, "--ctx-size", str(options.get("ctx_size"))]
        if options.get("llamacpp_device"):
            argv += ["--device", str(options.get("llamacpp_device"))]
        argv += ["--port", str(port), "--jinja", "--metrics"]
        if args:
            if err := reserved_flag_error(args):
                raise ValueError("Invalid custom llama-server arguments:\n" + err)
            argv += parse_args(args)
        process = None
        if self.llama_server:
            # No PR_SET_PDEATHSIG here (lemond sets it): it fires when the *thread* that forked exits, and each
            # request runs on its own thread. The harness kills the process group instead.
            process = subprocess.Popen(argv, executable=self.llama_server, stdin=subprocess.DEVNULL)
            try:
                wait_for(f"http://127.0.0.1:{port}", "/health", timeout=60, alive=lambda: process.poll() is None)
            except (RuntimeError, TimeoutError) as err:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                process.wait()
                raise RuntimeError("llama-server failed to start") from err  # lemond's words; the why is in its log
        return Backend(model, self.registry.public_name(model), options, ctx_auto, port, argv, process, False)

    def _evict(self, backend: Backend) -> None:
        self.loaded.pop(backend.model.canonical, None)
        if backend.process is not None and backend.process.poll() is None:
            backend.process.terminate()
            try:
                backend.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                backend.process.kill()
                backend.process.wait()

    def unload(self, name: str = "") -> None:
        """Empty name: everything. A model that is not loaded raises LemonadeError 404 like lemond."""
        with self.gate:
            if not name:
                for backend in list(self.loaded.values()):
                    self._evict(backend)
                return
            model = self.registry.find(name)
            backend = self.loaded.get(model.canonical) if model else None
            if backend is None:
                raise LemonadeError(404, {"error": f"Model not loaded: {name}"})
            self._evict(backend)

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        """Chat completion: auto-load with saved options, forward to llama-server, record telemetry."""
        name = body.get("model")
        model = self.registry.find(name) if isinstance(name, str) else None
        if model is None:
            raise self.registry.not_found(str(name))
        with self.gate:
            backend = self.loaded.get(model.canonical) or self.load(model, Options(model.recipe, {}))
            backend.last_use = time.monotonic()
            if backend.process is None:
                reply = _synthetic_completion(body)
            else:
                answer = call(f"http://127.0.0.1:{backend.port}", "POST", "/v1/chat/completions", body, timeout=120)
                reply = answer.json
                if answer.status != 200 or not isinstance(reply, dict):
                    raise LemonadeError(answer.status if answer.status != 200 else 500,
                                        {"error": {"message": answer.text, "type": "backend_error"}})
                reply["model"] = name  # lemond answers with the name the client asked for
        self.stats.record(reply)
        self.per_model.setdefault(model.canonical, Telemetry()).record(reply)
        return reply

    def health_entries(self) -> list[dict[str, Any]]:
        out = []
        for backend in list(self.loaded.values()):
            if not backend.alive():
                continue
            entry = {"model_name": backend.public, "checkpoint": backend.model.checkpoint, "type": "llm",
                     "residency_class": "standard", "slot_pool": "standard/llm",
                     "device": "cpu" if backend.options.get("llamacpp_backend") == "cpu" else "gpu",
                     "backend_url": f"http://127.0.0.1:{backend.port}/v1", "pid": backend.pid,
                     "launch_command": backend.launch_command, "status": "ready", "backend_alive": True,
                     "backend_health": "ready", "loaded": True, "watchdog_reset": False, "pinned": backend.pinned,
                     "recipe": backend.model.recipe, "recipe_options": dict(backend.options.values),
                     "is_busy": False, "is_streaming": False, "last_use": int(backend.last_use * 1000)}
            if backend.model.max_context_window > 0:
                entry["max_context_window"] = backend.model.max_context_window
            out.append(entry)
        return out


class Telemetry:
    """Router::get_stats: the latest request's tokens and speed plus running totals."""

    def __init__(self) -> None:
        self.last = {"input_tokens": 0, "output_tokens": 0, "time_to_first_token": 0.0, "tokens_per_second": 0.0,
                     "prompt_tokens": 0, "cache_tokens": None}
        self.totals = {"request_count_total": 0, "input_tokens_total": 0, "output_tokens_total": 0,
                       "prompt_tokens_total": 0, "cache_tokens_total": 0}

    def record(self, reply: dict[str, Any]) -> None:
        usage = reply.get("usage") if isinstance(reply.get("usage"), dict) else {}
        timings = reply.get("timings") if isinstance(reply.get("timings"), dict) else {}
        details = usage.get("prompt_tokens_details") if isinstance(usage.get("prompt_tokens_details"), dict) else {}
        prompt = int(usage.get("prompt_tokens", 0))
        cached = details.get("cached_tokens")
        self.last = {"input_tokens": int(timings.get("prompt_n", prompt)),
                     "output_tokens": int(usage.get("completion_tokens", 0)),
                     "time_to_first_token": float(timings.get("prompt_ms", 0.0)) / 1000.0,
                     "tokens_per_second": float(timings.get("predicted_per_second", 0.0)),
                     "prompt_tokens": prompt, "cache_tokens": int(cached) if cached is not None else None}
        self.totals["request_count_total"] += 1
        for key in ("input_tokens", "output_tokens", "prompt_tokens", "cache_tokens"):
            self.totals[f"{key}_total"] += self.last[key] or 0

    def to_json(self) -> dict[str, Any]:
        return {**self.last, **self.totals}


def _synthetic_completion(body: dict[str, Any]) -> dict[str, Any]:
    """Without a llama-server the fake answers in llama-server's shape, one word per requested token."""
    limit = int(body.get("max_tokens") or body.get("max_completion_tokens") or 8)
    prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []) if isinstance(m, dict))
    text = " ".join(f"tok{i}" for i in range(limit))
    return {"choices": [{"finish_reason": "length", "index": 0, "message": {"content": text, "role": "assistant"}}],
            "created": int(time.time()), "id": f"chatcmpl-fake{time.monotonic_ns()}", "model": body.get("model"),
            "object": "chat.completion", "system_fingerprint": "fake-lemond",
            "timings": {"cache_n": 0, "predicted_ms": float(limit), "predicted_n": limit,
                        "predicted_per_second": 1000.0, "predicted_per_token_ms": 1.0, "prompt_ms": float(prompt),
                        "prompt_n": prompt, "prompt_per_second": 1000.0, "prompt_per_token_ms": 1.0},
            "usage": {"completion_tokens": limit, "prompt_tokens": prompt, "prompt_tokens_details": {"cached_tokens": 0},
                      "total_tokens": limit + prompt}}
