"""Shipped GGUF header facts for Lemonade's llama.cpp registry models, read through facts.gguf's own logic."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

from facts.errors import ModelFactsError
from facts.gguf import GGUFHeader, model_facts_from_header

__all__ = ["SOURCE", "gguf_metadata", "load_table", "registry_gguf_facts", "unknown_reason"]

SOURCE = "facts/data/registry_gguf.json"
SCHEMA_VERSION = 1
# row keys that are not GGUF keys: provenance, the files of the registry's chosen quant
ROW_META = frozenset({"architecture", "base_model", "gguf", "files", "sources", "checked", "checked_keys", "note"})
FILE_KINDS = ("weights", "mmproj", "draft")
# ModelFacts fields this table never sets (the registry entry owns them)
_NOT_OURS = frozenset({"name", "checkpoint", "recipe", "labels", "quant"})
# the memory layout facts.gguf derives from the per-layer KV heads: a row without attention.head_count_kv does
# not describe that layout (facts.gguf would read its absence as "every head is a KV head", and hybrids would
# turn all-recurrent), so these are left out and the memory estimate stays size-based for them
LAYOUT_FIELDS = frozenset({
    "head_count_kv", "key_length", "value_length", "key_length_swa", "value_length_swa", "swa_layers",
    "sliding_window", "recurrent_layers", "recurrent_r_size", "recurrent_s_size", "kv_layers", "mla",
    "kv_lora_rank", "rope_dim"})


@lru_cache(maxsize=1)
def load_table() -> dict[str, Any]:
    """The shipped table (package data next to this module), checked for shape once per process."""
    text = resources.files("facts").joinpath("data", "registry_gguf.json").read_text(encoding="utf-8")
    try:
        table = json.loads(text)
    except json.JSONDecodeError as err:
        raise ModelFactsError(f"{SOURCE}:{err.lineno}:{err.colno}", f"invalid JSON: {err.msg}") from err
    if not isinstance(table, dict) or table.get("schema_version") != SCHEMA_VERSION:
        raise ModelFactsError(SOURCE, f"expected an object with schema_version {SCHEMA_VERSION}")
    models, unknown = table.get("models"), table.get("unknown")
    if not isinstance(models, dict) or not isinstance(unknown, dict):
        raise ModelFactsError(SOURCE, "expected 'models' and 'unknown' objects")
    for name, row in models.items():
        _check_row(name, row)
    both = sorted(set(models) & set(unknown))
    if both:
        raise ModelFactsError(SOURCE, f"{both[0]!r} is both a row and unknown")
    return table


def _check_row(name: str, row: Any) -> None:
    where = f"{SOURCE}:models.{name}"
    if not isinstance(row, dict):
        raise ModelFactsError(where, "a row must be an object")
    extra = sorted(set(row) - ROW_META)
    if extra:
        raise ModelFactsError(where, f"unknown key {extra[0]!r} (GGUF keys go under 'gguf')")
    if not isinstance(row.get("architecture"), str) or not isinstance(row.get("gguf"), dict):
        raise ModelFactsError(where, "a row needs an 'architecture' string and a 'gguf' object")
    sources = row.get("sources")
    if not isinstance(sources, list) or not sources or not all(
            isinstance(s, str) and s.startswith("https://") for s in sources):
        raise ModelFactsError(where, "'sources' must list at least one https URL")
    if not isinstance(row.get("checked"), bool):
        raise ModelFactsError(where, "'checked' must be true or false")
    for key, value in row["gguf"].items():
        if "." in key and key.split(".", 1)[0] in ("general", "tokenizer"):
            raise ModelFactsError(f"{where}.gguf.{key}", "only architecture keys belong here")
        if isinstance(value, bool) or not isinstance(value, (int, list)):
            raise ModelFactsError(f"{where}.gguf.{key}", "must be an integer or a per-layer list")
    files = row.get("files", {})
    if not isinstance(files, dict) or set(files) - set(FILE_KINDS):
        raise ModelFactsError(f"{where}.files", f"keys must be among {', '.join(FILE_KINDS)}")
    for kind, parts in files.items():
        if not isinstance(parts, list) or not parts or not all(
                isinstance(p, dict) and isinstance(p.get("file"), str)
                and isinstance(p.get("bytes"), int) and p["bytes"] > 0 for p in parts):
            raise ModelFactsError(f"{where}.files.{kind}", "a list of {file, bytes > 0} objects")


def unknown_reason(name: str) -> str | None:
    """Why the table has no facts for a registry name it lists as unknown (None when not listed)."""
    return load_table()["unknown"].get(name)


def gguf_metadata(name: str) -> dict[str, Any] | None:
    """The GGUF header metadata a row stands for ({arch}.{key} -> value, per-layer arrays as tuples)."""
    row = load_table()["models"].get(name)
    if row is None:
        return None
    arch = row["architecture"]
    md: dict[str, Any] = {"general.architecture": arch}
    for key, value in row["gguf"].items():
        md[f"{arch}.{key}"] = tuple(value) if isinstance(value, list) else value
    return md


def _bytes(row: dict[str, Any], kind: str) -> int | None:
    parts = row.get("files", {}).get(kind)
    return sum(p["bytes"] for p in parts) if parts else None


def registry_gguf_facts(name: str) -> dict[str, Any] | None:
    """ModelFacts field values for a registry name, exactly as facts.gguf derives them from that model's
    GGUF header (per-layer KV heads, SWA / recurrent / MTP layout, MLA, recurrent state sizes); None when
    the table has no row. Without tensor infos there are no per-layer weight bytes: file sizes come from
    the row when known, and the registry's `size` stays the estimate otherwise."""
    md = gguf_metadata(name)
    if md is None:
        return None
    row = load_table()["models"][name]
    header = GGUFHeader(path=f"{SOURCE}:{name}", version=3, file_size=_bytes(row, "weights"), metadata=md)
    try:
        facts = model_facts_from_header(header, name=name)
    except ModelFactsError as err:
        raise ModelFactsError(f"{SOURCE}:models.{name}", err.message) from err
    out = {k: v for k, v in facts.model_dump(exclude_unset=True).items() if k not in _NOT_OURS}
    if "attention.head_count_kv" not in row["gguf"]:
        out = {k: v for k, v in out.items() if k not in LAYOUT_FIELDS}
    if "expert_count" not in row["gguf"]:  # the row does not say whether the model has experts
        out.pop("is_moe", None)
    for flag in ("embedding", "reranker"):  # the registry's labels say so too; only a header's "yes" is news
        if not out.get(flag):
            out.pop(flag, None)
    for kind in ("mmproj", "draft"):
        size = _bytes(row, kind)
        if size is not None:
            out[f"{kind}_bytes"] = size
    checked = "checked" if row["checked"] else "partly checked" if row.get("checked_keys") else "unchecked"
    out["provenance"] = {"*": f"registry-gguf:{name} ({checked}; {row['sources'][0]})"}
    return out
