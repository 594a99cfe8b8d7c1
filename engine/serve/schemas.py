"""`engine serve`'s request bodies (pydantic: validation errors carry the JSON path) and its OpenAPI document."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine._version import __version__

MAX_SPEC = 4096


class ModelFactsBody(BaseModel):
    """A model described by its facts (the columns community benchmarks state). Strict numbers: a JSON `true`
    is not 1 GiB."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=256)
    recipe: str = Field("llamacpp", max_length=64)
    architecture: str | None = Field(None, max_length=64, description="GGUF general.architecture")
    params_b: float | None = Field(None, strict=True, gt=0, le=100000, description="total parameters, billions")
    active_params_b: float | None = Field(None, strict=True, gt=0, le=100000, description="MoE: parameters active per token")
    quant: str | None = Field(None, max_length=32, description="Q4_K_M, Q8_0, MXFP4, BF16, ...")
    size_gib: float | None = Field(None, strict=True, gt=0, le=100000, description="weight file size in GiB")
    trained_ctx: int | None = Field(None, strict=True, gt=0, le=1 << 24)
    embedding: bool = Field(False, strict=True)
    reranker: bool = Field(False, strict=True)


class RecommendBody(BaseModel):
    """POST /v1/recommend: what lemond knows at load time."""

    model_config = ConfigDict(extra="forbid")

    model: str | ModelFactsBody = Field(description="a Lemonade registry name, a .gguf path on this machine "
                                                    "(loopback clients only), or model facts")
    system_info: dict[str, Any] | None = Field(None, description="Lemonade GET /v1/system-info; default: the "
                                                                 "facts detected when the server started")
    scenario: str = Field("chat", max_length=64)
    overrides: dict[str, Any] | None = Field(None, description="user overrides, like `--set` (highest layer)")
    explain: Literal["decisions", "full"] = "decisions"


def _error_schema() -> dict[str, Any]:
    record = {"type": "object", "required": ["code", "message"],
              "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                             "location": {"type": ["string", "null"]}}}
    return {"type": "object", "required": ["kind", "errors"],
            "properties": {"schema_version": {"type": "integer"}, "kind": {"const": "error"},
                           "status": {"type": "integer"}, "errors": {"type": "array", "items": record}}}


def _envelope(kind: str, required: list[str]) -> dict[str, Any]:
    return {"type": "object", "required": ["schema_version", "kind", "engine_version", "errors", *required],
            "properties": {"schema_version": {"type": "integer"}, "kind": {"const": kind},
                           "engine_version": {"type": "string"}, "errors": {"type": "array"}}}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    texts = {400: "the body is not JSON or not an object", 404: "no such model", 413: "the body is too large",
             422: "the body does not validate, or names what cannot be served (the location is a JSON path)",
             429: "too many requests from this client"}
    return {str(c): {"description": texts[c], **_json({"$ref": "#/components/schemas/Error"})} for c in codes}


def openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 document served at /openapi.json."""
    body = RecommendBody.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = body.pop("$defs", {})
    schemas = {"RecommendBody": body, **defs, "Error": _error_schema(),
               "Recommendation": _envelope("recommendation", ["recipe_options", "decisions", "explanation",
                                                              "archetype", "rulebook", "autotune"]),
               "Archetype": _envelope("archetype", ["archetype", "hardware_source"]),
               "Status": _envelope("serve-status", ["autotune", "rulebook", "requests"]),
               "Health": _envelope("health", ["status"]),
               "Reload": _envelope("reload", ["before", "after", "changed"])}
    schemas["Recommendation"]["properties"].update(
        recipe_options={"type": "object", "description": "exactly Lemonade's recipe option keys"},
        decisions={"type": "object"}, explanation={"type": "array"}, expected={"type": ["object", "null"]},
        performance={"type": ["object", "null"],
                     "description": "expected generation_tps, prompt_tps, ttft_ms: {value, low, high, unit, basis, "
                                    "n, note} each, or null with `reason`"},
        fits={"enum": ["yes", "no", "estimated", "unknown", None],
              "description": "the memory verdict (details in `memory`): no = does not fit even at the smallest "
                             "context; the answer is then the configuration kept as asked, with `warnings`"},
        memory={"type": ["object", "null"]}, warnings={"type": "array", "items": {"type": "string"}})
    get = lambda summary, ref: {"summary": summary, "responses": {  # noqa: E731
        "200": {"description": "OK", **_json({"$ref": f"#/components/schemas/{ref}"})}, **_errors(429)}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "lemonade-autotune", "version": __version__,
                 "description": "Recommendations for Lemonade's recipe options (docs/integration.md)."},
        "paths": {
            "/v1/recommend": {"post": {
                "summary": "recipe options, decisions, explanation and expected speed for one model",
                "requestBody": {"required": True, **_json({"$ref": "#/components/schemas/RecommendBody"})},
                "responses": {"200": {"description": "the recommendation",
                                      **_json({"$ref": "#/components/schemas/Recommendation"})},
                              **_errors(400, 413, 422, 429)}}},
            "/v1/archetype": {"get": get("the archetype of the facts detected at start", "Archetype")},
            "/v1/status": {"get": get("auto-tune on/off, rulebook, counters", "Status")},
            "/v1/health": {"get": get("liveness", "Health")},
            "/v1/reload": {"post": {
                "summary": "load the rulebook and settings again and swap them in atomically",
                "responses": {"200": {"description": "reloaded", **_json({"$ref": "#/components/schemas/Reload"})},
                              **_errors(422, 429)}}},
        },
        "components": {"schemas": schemas},
    }
