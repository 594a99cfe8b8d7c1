"""Lemonade's recipe options for the fake: keys per recipe, "not set" sentinels, layer inheritance, custom-args
merging and the `POST /v1/models/{id}/options` value checks (recipe_options.cpp, custom_args.h,
recipe_arg_resolver.h, Router::resolve_effective_options, Server::handle_model_options_post)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_COMMON_TAIL = ("auto_evict", "evict_idle_timeout", "downsize_idle_timeout", "evict_weight_factor", "pinned")
# keys_for_recipe order: ctx_size (if the descriptor uses it), descriptor options, merge_args, the eviction kit
RECIPE_KEYS: dict[str, tuple[str, ...]] = {
    "llamacpp": ("ctx_size", "llamacpp_backend", "llamacpp_device", "llamacpp_args", "merge_args", *_COMMON_TAIL),
    "vllm": ("ctx_size", "vllm_backend", "vllm_args", "merge_args", *_COMMON_TAIL),
    "flm": ("ctx_size", "flm_args", "merge_args", *_COMMON_TAIL),
    "ryzenai-llm": ("ctx_size", "merge_args", *_COMMON_TAIL),
}
DEFAULTS: dict[str, Any] = {"ctx_size": -1, "merge_args": True, "auto_evict": None, "evict_idle_timeout": 300,
                            "downsize_idle_timeout": 60, "evict_weight_factor": 1.0, "pinned": False,
                            "llamacpp_backend": "", "llamacpp_device": "", "llamacpp_args": "",
                            "vllm_backend": "", "vllm_args": "", "flm_args": ""}
# Flags LlamaCppServer::load sets itself for a `-m` model and refuses inside llamacpp_args.
LLAMACPP_RESERVED = frozenset({"-m", "--model", "--ctx-size", "-c", "--device", "-dev", "--port", "--jinja",
                               "--no-jinja", "--metrics", "--mmproj", "-mm", "-mmu", "--mmproj-url", "--no-mmproj",
                               "--mmproj-auto", "--no-mmproj-auto", "--model-draft", "-md", "--spec-draft-model",
                               "--embeddings", "--embedding", "--reranking", "--rerank"})


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def keys_for(recipe: str) -> tuple[str, ...]:
    return RECIPE_KEYS.get(recipe, _COMMON_TAIL)


def is_sentinel(key: str, value: Any) -> bool:
    """The values RecipeOptions drops as "not set": null, -1, "" and "auto"; for ctx_size every non-number."""
    if key == "ctx_size":
        return not is_number(value)
    return value is None or (is_number(value) and value == -1) or value in ("", "auto")


class Options:
    """One layer of recipe options: the keys the recipe accepts, minus sentinels (`values`), plus what the
    layer named at all (`explicit`, which keeps a null tombstone)."""

    def __init__(self, recipe: str, raw: Mapping[str, Any] | None = None, default_backend: str = "") -> None:
        self.recipe = recipe
        self.default_backend = default_backend
        self.values: dict[str, Any] = {}
        self.explicit: dict[str, Any] = {}
        for key in keys_for(recipe):
            if raw is not None and key in raw:
                self.explicit[key] = raw[key]
                if not is_sentinel(key, raw[key]):
                    self.values[key] = raw[key]

    def inherit(self, lower: Options) -> Options:
        """Per key, this layer's value if it set one, else the lower layer's."""
        merged = dict(self.values)
        for key, value in lower.values.items():
            merged.setdefault(key, value)
        out = Options(self.recipe, merged, self.default_backend or lower.default_backend)
        out.explicit = dict(self.explicit)
        return out

    def get(self, key: str) -> Any:
        if key in self.values:
            return self.values[key]
        if key.endswith("_backend") and self.default_backend:
            return self.default_backend  # SystemInfo::get_supported_backends(recipe)[0]
        return DEFAULTS.get(key)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = value
        self.explicit[key] = value

    def resolved(self) -> dict[str, Any]:
        """Every accepted key with unset ones resolved to defaults (to_resolved_json)."""
        return {key: self.get(key) for key in keys_for(self.recipe)}


# --- custom args (llamacpp_args and friends) ---------------------------------------------------------
def parse_args(text: str, keep_quotes: bool = False) -> list[str]:
    """Split on spaces outside single/double quotes (quotes dropped unless keep_quotes)."""
    out: list[str] = []
    cur, quote = "", ""
    for ch in text:
        if not quote and ch in "\"'":
            quote = ch
        elif quote and ch == quote:
            if keep_quotes:
                cur = quote + cur + quote
            quote = ""
        elif not quote and ch == " ":
            if cur:
                out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur:
        out.append(cur)
    return out


_NEGATIVE_NUMBER = re.compile(r"-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _negative_number(token: str) -> bool:
    return _NEGATIVE_NUMBER.fullmatch(token) is not None


def _args_map(tokens: list[str]) -> dict[str, list[list[str]]]:
    result: dict[str, list[list[str]]] = {}
    last = ""
    for token in tokens:
        if token.startswith("-") and not _negative_number(token):
            flag, eq, value = token.partition("=")
            result.setdefault(flag, []).append([value] if eq else [])
            last = flag
        elif last:
            result[last][-1].append(token)
    return result


def _negate(flag: str) -> str:
    if flag.startswith("--no-"):
        return "--" + flag[5:]
    return "--no-" + flag[2:] if flag.startswith("--") else ""


def merge_args(high: str, low: str) -> str:
    """A flag in `high` wins over the same flag (or its --no- twin) in `low`; the result is sorted by flag, as
    lemond's std::map renders it. One side empty: the other verbatim."""
    if not high:
        return low
    if not low:
        return high
    merged = _args_map(parse_args(high, True))
    for flag, occurrences in _args_map(parse_args(low, True)).items():
        binary = all(not values for values in occurrences)
        if binary and _negate(flag) and _negate(flag) in merged:
            continue
        merged.setdefault(flag, occurrences)
    return " ".join(" ".join([flag, *values]) for flag in sorted(merged) for values in merged[flag])


def resolve_scoped_args(*, backend: str, arch: str, model_defaults: str, model: str, request_state: str,
                        request: str, merge: bool) -> str:
    """recipe_arg_resolver.h: request value > (saved model args, or registry defaults on a null tombstone)
    merged over architecture defaults, all merged over the config.json backend args."""
    if not merge:
        return request if request_state == "value" else ""
    if request_state == "value":
        return merge_args(request, backend)
    model_args = model_defaults if request_state == "tombstone" else model
    return merge_args(merge_args(model_args, arch), backend)


def reserved_flag_error(args: str) -> str:
    """validate_custom_args for llama-server: the message lemond throws, or "" when args are usable."""
    for token in parse_args(args):
        flag = token.split("=", 1)[0]
        if flag.startswith("-") and flag in LLAMACPP_RESERVED:
            return (f"Argument '{flag}' is managed by Lemonade and cannot be overridden.\n"
                    f"Reserved arguments: {', '.join(sorted(LLAMACPP_RESERVED))}")
    return ""


# --- POST /v1/models/{id}/options value checks -------------------------------------------------------
def validate_changes(recipe: str, body: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """Body (minus dry_run) -> ({key: value or None to clear}, "") or (None, lemond's 400 message)."""
    allowed = set(keys_for(recipe))
    unset = Options(recipe, {}, default_backend="x")  # any string: a *_backend default is a string
    changes: dict[str, Any] = {}
    for key, value in body.items():
        if key == "model_name":
            continue
        if key not in allowed:
            return None, f"Unknown option '{key}' for recipe '{recipe}'"
        if key == "pinned":
            return None, "'pinned' applies to a running model; use /v1/load or /internal/pin"
        if value is None or (key != "ctx_size" and is_sentinel(key, value)):
            changes[key] = None
            continue
        expected = unset.get(key)
        if is_number(expected):
            type_ok = is_number(value)
        elif isinstance(expected, str):
            type_ok = isinstance(value, str)
        else:
            type_ok = isinstance(value, bool)
        if not type_ok:
            return None, f"Invalid type for option '{key}'"
        if key == "ctx_size":
            if not isinstance(value, int) or value < -1 or value == 0 or value > 2**63 - 1:
                return None, "'ctx_size' must be a positive whole number, or -1 to size it automatically"
        elif isinstance(expected, int) and not isinstance(expected, bool) and not isinstance(value, int):
            return None, f"'{key}' must be a whole number"
        changes[key] = value
    return changes, ""


def config_layer(config: Mapping[str, Any], recipe: str, backend: str) -> dict[str, Any]:
    """RuntimeConfig::recipe_options(backend): config.json's nested section as flat option keys."""
    section = config.get(recipe)
    out: dict[str, Any] = {}
    if isinstance(section, dict):
        for key in keys_for(recipe):
            if key.endswith("_backend") and "backend" in section:
                out[key] = "" if section["backend"] == "auto" else section["backend"]
            elif key.endswith("_args") and key != "merge_args":
                if section.get(f"{backend}_args", "") != "":
                    out[key] = section[f"{backend}_args"]
                elif "args" in section:
                    out[key] = section["args"]
            elif key.endswith("_device") and "device" in section:
                out[key] = section["device"]
    if "ctx_size" in config:
        out["ctx_size"] = config["ctx_size"]
    return out


def resolve_effective(recipe: str, *, config: Mapping[str, Any], arch_defaults: Mapping[str, Any],
                      registry: Mapping[str, Any] | None, saved: Mapping[str, Any], request: Options,
                      default_backend: str) -> Options:
    """Router::resolve_effective_options: request > model (registry < saved) > architecture > config.json,
    then every *_args key recomputed by resolve_scoped_args."""
    model_defaults = Options(recipe, registry or {}, default_backend)
    model = Options(recipe, {**(registry or {}), **saved}, default_backend)
    tentative = request.inherit(model.inherit(Options(recipe, config_layer(config, recipe, ""), default_backend)))
    backend = tentative.get(f"{recipe}_backend")
    backend = backend if isinstance(backend, str) else ""
    global_layer = Options(recipe, config_layer(config, recipe, backend), default_backend)
    arch = Options(recipe, arch_defaults, default_backend)
    effective = request.inherit(model.inherit(arch.inherit(global_layer)))
    merge = effective.get("merge_args")
    merge = merge if isinstance(merge, bool) else True

    def text(layer: Options, key: str) -> str:
        value = layer.values.get(key)
        return value if isinstance(value, str) else ""

    for key in keys_for(recipe):
        if not key.endswith("_args") or key == "merge_args":
            continue
        state, req = "omitted", ""
        if key in request.explicit:
            raw = request.explicit[key]
            if raw is None:
                state = "tombstone"
            elif isinstance(raw, str):
                state, req = "value", raw
            else:
                raise ValueError(f"'{key}' must be a string or null")
        effective.set(key, resolve_scoped_args(backend=text(global_layer, key), arch=text(arch, key),
                                               model_defaults=text(model_defaults, key), model=text(model, key),
                                               request_state=state, request=req, merge=merge))
    return effective
