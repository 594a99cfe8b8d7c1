"""The `engine serve` application (Starlette): the recommendation API lemond calls at load time.

One `Generation` — settings + Engine — answers each request; `POST /v1/reload` loads the rulebook and settings
again and swaps them in (`Engine.reload` when only the rulebook changed, a fresh Engine when the settings did),
so an answer never mixes two generations: its values and its `rulebook` always come from the same one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cachetools import LRUCache, TTLCache
from pydantic import ValidationError

from engine import config
from engine.envelope import envelope
from engine.errors import EngineError, InternalError, RulebookError, UserError
from engine.serve.schemas import RecommendBody, openapi
from facts.documents import JSONProblem, parse_json

if TYPE_CHECKING:
    from engine.session import Engine
    from facts.models import HardwareFacts, ModelFacts

log = logging.getLogger("engine.serve")


class Problem(Exception):
    """A request that cannot be answered: status + error records (each with its JSON-path location)."""

    def __init__(self, status: int, records: list[dict[str, Any]]):
        self.status, self.records = status, records
        super().__init__(records[0]["message"] if records else str(status))


_UNION_TAGS = frozenset({"str", "ModelFactsBody", "dict[str,any]", "function-after[check(), str]"})


def _path(loc: tuple[Any, ...]) -> str:
    """A pydantic error location as a JSON path (`$.model.params_b`), without pydantic's union-member tags."""
    out = "$"
    for part in loc:
        if isinstance(part, str) and part in _UNION_TAGS:
            continue
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _problem(status: int, err: Exception, location: str) -> Problem:
    if isinstance(err, EngineError):
        return Problem(status, [{**r, "location": r.get("location") or location} for r in err.records()])
    return Problem(status, [{"code": getattr(err, "code", "input"), "message": str(err), "location": location}])


@dataclass(frozen=True)
class Generation:
    settings: config.Settings
    engine: Engine
    number: int


def _relevant(s: config.Settings) -> tuple[Any, ...]:
    return (s.autotune.enabled, s.scenario, json.dumps(dict(s.overrides), sort_keys=True, default=str))


class ServeState:
    """What the server holds: the generation, the start-up hardware facts, caches and counters."""

    def __init__(self, *, hardware: HardwareFacts, hardware_source: str, no_autotune: bool = False,
                 evaluator: str | None = None, limits: dict[str, Any] | None = None) -> None:
        self.no_autotune, self.evaluator = no_autotune, evaluator
        settings = config.load(no_autotune=no_autotune)
        self.gen = Generation(settings, config.make_engine(settings, evaluator=evaluator), 1)
        self.hardware, self.hardware_source = hardware, hardware_source
        self.limits = limits or {}
        self.started = time.time()
        self._lock = threading.Lock()  # caches and counters
        self._reload_lock = threading.Lock()
        self._hw: LRUCache = LRUCache(maxsize=64)  # sha256 of a system-info document -> HardwareFacts
        self._models: TTLCache = TTLCache(maxsize=512, ttl=30)  # model spec -> ModelFacts
        # (generation, loopback, sha256 of the body) -> the answer's bytes: lemond sends the same body at every
        # load of a model; 30 s like the model facts (a registry model may get downloaded meanwhile)
        self._answers: TTLCache = TTLCache(maxsize=1024, ttl=30)
        self.counts: Counter[str] = Counter()

    def count(self, key: str) -> None:
        with self._lock:
            self.counts[key] += 1

    # --- inputs --------------------------------------------------------------------------------------
    def _hardware_for(self, doc: dict[str, Any] | None) -> HardwareFacts:
        if doc is None:
            return self.hardware
        key = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
        with self._lock:
            hit = self._hw.get(key)
        if hit is not None:
            return hit
        from facts.errors import FactsError
        from facts.lemonade import from_system_info

        try:
            hw = from_system_info(doc, source="system-info:request")
        except FactsError as err:
            raise _problem(422, err, "$.system_info") from None
        with self._lock:
            return self._hw.setdefault(key, hw)

    def _model_for(self, spec: Any, loopback: bool) -> ModelFacts:
        from facts.errors import FactsError

        if not isinstance(spec, str):
            return _facts_from_body(spec)
        if (spec.lower().endswith(".gguf") or os.sep in spec or "/" in spec) and not loopback:
            raise Problem(422, [{"code": "input", "location": "$.model",
                                 "message": "a file path is accepted from loopback clients only; send a model "
                                            "name or model facts"}])
        key = spec
        if spec.lower().endswith(".gguf"):
            try:
                st = os.stat(spec)
                key = f"{spec}\0{st.st_mtime_ns}\0{st.st_size}"
            except OSError:
                pass
        with self._lock:
            hit = self._models.get(key)
        if hit is not None:
            return hit
        from facts.registry import resolve_model_spec

        try:
            facts = resolve_model_spec(spec)
        except FactsError as err:
            raise _problem(422, err, "$.model") from None
        with self._lock:
            return self._models.setdefault(key, facts)

    # --- endpoints -----------------------------------------------------------------------------------
    def cached_answer(self, raw: bytes, loopback: bool) -> tuple[Any, bytes | None]:
        """(cache key, the answer's bytes when this exact body was answered by the current generation)."""
        gen = self.gen
        key = (gen.number, loopback, hashlib.sha256(raw).digest())
        with self._lock:
            return (gen, key), self._answers.get(key)

    def answer(self, raw: bytes, loopback: bool, cached: tuple[Any, Any]) -> bytes:
        """The recommendation for a raw body, as bytes (stored for the next identical body)."""
        gen, key = cached
        payload = self.recommend(parse_body(raw), loopback, gen)
        data = json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
        with self._lock:
            self._answers[key] = data
        return data

    def recommend(self, body: RecommendBody, loopback: bool, gen: Generation | None = None) -> dict[str, Any]:
        from engine.errors import BackendUnavailableError, DoesNotFitError, RecipeUnavailableError, UsageError
        from engine.recommend import validate_overrides
        from engine.render import recommendation_dict
        from engine.trace import filter_events

        gen = gen or self.gen  # one read: everything below comes from this generation
        hw = self._hardware_for(body.system_info)
        model = self._model_for(body.model, loopback)
        scenario = body.scenario or gen.settings.scenario
        try:
            from engine import scenarios

            scenarios.check(scenario)
        except UsageError as err:
            raise _problem(422, err, "$.scenario") from None
        try:
            overrides = validate_overrides(body.overrides)
        except UsageError as err:
            raise _problem(422, err, "$.overrides") from None
        kwargs = config.recommend_kwargs(gen.settings, overrides)
        try:
            try:
                rec = gen.engine.recommend(hw, model, scenario=scenario, **kwargs)
            except DoesNotFitError:  # said in the answer: `fits` "no", the numbers in `memory` and `warnings`
                rec = gen.engine.recommend(hw, model, scenario=scenario, force=True, **kwargs)
        except (RecipeUnavailableError, BackendUnavailableError) as err:
            raise _problem(422, err, "$.model") from None
        except UsageError as err:
            raise _problem(422, err, "$") from None
        out = recommendation_dict(rec)
        out["fits"] = rec.memory.fits if rec.memory is not None else None
        out["rulebook_digest"] = rec.rulebook_digest
        out["explanation"] = [e.to_dict() for e in filter_events(rec.trace, body.explain)]
        out["autotune"] = gen.settings.autotune.to_dict()
        out["hardware_source"] = hw.source
        out["generation"] = gen.number
        return envelope("recommendation", out)

    def reload(self) -> dict[str, Any]:
        with self._reload_lock:
            old = self.gen
            before = old.engine.rulebook
            try:
                settings = config.load(no_autotune=self.no_autotune)
                book = config.load_book(settings)
            except RulebookError as err:
                raise Problem(422, err.records()) from None
            except UserError as err:
                raise _problem(422, err, str(config.config_dir() / config.CONFIG_FILE)) from None
            if _relevant(settings) == _relevant(old.settings):
                old.engine.reload(book)  # atomic; the settings that shape answers are the same
                self.gen = Generation(settings, old.engine, old.number + 1)
            else:
                from engine.session import Engine

                self.gen = Generation(settings, Engine(book, evaluator=self.evaluator), old.number + 1)
                old.engine.close()  # frees its evaluator once the calls still on it are done
            self.count("reloads")
            return envelope("reload", {"before": before.name, "after": book.name,
                                       "changed": book.digest != before.digest, "generation": self.gen.number,
                                       "autotune": settings.autotune.to_dict()})

    def status(self) -> dict[str, Any]:
        from facts.archetype import classify

        gen = self.gen
        book = gen.engine.rulebook
        with self._lock:
            counts = dict(self.counts)
        return envelope("serve-status", {
            "autotune": gen.settings.autotune.to_dict(), "settings": gen.settings.to_dict(),
            "rulebook": {"name": book.name, "digest": book.digest, "rules": len(book.rules), "files": len(book.files),
                         "roots": [str(r) for r in config.rulebook_roots(gen.settings)]},
            "engine": gen.engine.evaluator, "generation": gen.number, "archetype": classify(self.hardware).id,
            "hardware_source": self.hardware_source, "started_at": self.started,
            "uptime_s": round(time.time() - self.started, 3), "requests": counts, "limits": self.limits,
            "pid": os.getpid()})

    def archetype(self) -> dict[str, Any]:
        from facts.archetype import classify

        return envelope("archetype", {"archetype": classify(self.hardware).model_dump(mode="json"),
                                      "hardware_source": self.hardware_source})


def _facts_from_body(body: Any) -> ModelFacts:
    from facts.models import GIB, ModelFacts

    data = body.model_dump(exclude_none=True)
    size = data.pop("size_gib", None)
    if size is not None:
        data["file_bytes"] = int(round(size * GIB))
    if data.get("active_params_b") and data.get("params_b"):
        data["is_moe"] = data["active_params_b"] < data["params_b"]
    data.setdefault("provenance", {"*": "model-facts:request"})
    try:
        return ModelFacts(**data)
    except ValidationError as err:
        raise Problem(422, [{"code": e["type"], "message": e["msg"], "location": _path(("model", *e["loc"]))}
                            for e in err.errors()]) from None


def parse_body(raw: bytes) -> RecommendBody:
    """The request body as a RecommendBody; Problem (400/422 with JSON paths) when it is not one."""
    try:
        data = parse_json(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise Problem(400, [{"code": "invalid_json", "message": f"the body is not UTF-8: {err.reason} at byte "
                             f"{err.start}", "location": "$"}]) from None
    except JSONProblem as err:
        raise Problem(400, [{"code": "invalid_json", "message": f"the body is not acceptable JSON: {err.message}",
                             "location": err.where if err.where.startswith("$") else "$"}]) from None
    if not isinstance(data, dict):
        raise Problem(400, [{"code": "invalid_body", "message": "the body must be a JSON object", "location": "$"}])
    try:
        return RecommendBody.model_validate(data)
    except ValidationError as err:
        errors = err.errors()
        model = data.get("model")
        wrong_branch = "str" if isinstance(model, dict) else "ModelFactsBody" if isinstance(model, str) else None
        kept = [e for e in errors if not (e["loc"][:1] == ("model",) and wrong_branch in e["loc"][1:2])] or errors
        raise Problem(422, [{"code": e["type"], "message": e["msg"], "location": _path(e["loc"])}
                            for e in kept]) from None


def create_app(state: ServeState, *, allow_remote: bool = False, max_body: int = 1 << 20, rate: float = 2000.0,
               burst: float = 4000.0) -> Any:
    """The ASGI app: routes behind the loopback / size / rate guard."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from engine.serve.limits import Guard, is_loopback

    document = openapi()

    def problem_response(problem: Problem) -> JSONResponse:
        state.count(f"status_{problem.status}")
        return JSONResponse(envelope("error", {"status": problem.status}, problem.records), status_code=problem.status)

    async def recommend(request: Request) -> Response:
        state.count("recommend")
        raw = await request.body()
        loopback = is_loopback(request.client.host if request.client else None)
        key, hit = state.cached_answer(raw, loopback)
        if hit is not None:
            state.count("answer_cache_hits")
            return Response(hit, media_type="application/json")
        try:
            return Response(await run_in_threadpool(state.answer, raw, loopback, key), media_type="application/json")
        except Problem as problem:
            return problem_response(problem)

    async def reload(request: Request) -> JSONResponse:
        try:
            return JSONResponse(await run_in_threadpool(state.reload))
        except Problem as problem:
            return problem_response(problem)

    async def status(request: Request) -> JSONResponse:
        return JSONResponse(state.status())

    async def archetype(request: Request) -> JSONResponse:
        return JSONResponse(state.archetype())

    async def health(request: Request) -> JSONResponse:
        return JSONResponse(envelope("health", {"status": "ok"}))

    async def spec(request: Request) -> JSONResponse:
        return JSONResponse(document)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http")
        return problem_response(Problem(exc.status_code, [{"code": code, "message": str(exc.detail),
                                                           "location": request.url.path}]))

    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s", request.url.path)
        state.count("status_500")
        records = exc.records() if isinstance(exc, InternalError) else [
            {"code": "internal", "message": repr(exc), "location": None}]
        return JSONResponse(envelope("error", {"status": 500}, records), status_code=500)

    routes = [Route("/v1/recommend", recommend, methods=["POST"]), Route("/v1/reload", reload, methods=["POST"]),
              Route("/v1/status", status, methods=["GET"]), Route("/v1/archetype", archetype, methods=["GET"]),
              Route("/v1/health", health, methods=["GET"]), Route("/openapi.json", spec, methods=["GET"])]
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error, Exception: internal})
    return Guard(app, allow_remote=allow_remote, max_body=max_body, rate=rate, burst=burst)
