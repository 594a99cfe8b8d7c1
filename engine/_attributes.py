"""Context attributes rules may condition on: name -> type and known values (docs/architecture.md)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from engine.errors import ContextError
from engine.params import BACKENDS, RECIPE_NAMES

Kind = Literal["str", "int", "float", "bool", "set"]
MAX_NUMBER = 2**53  # exact in JSON doubles (durable-rules parses numbers in C)
# durable-rules (2.0.28, measured) cannot compare strings over 4,096 bytes of UTF-8: a rule `eq` on such a
# string never matches, not even the identical string, and `ne` always does; lone surrogates make it fail.
# No real fact or rule value is longer than a few dozen bytes. Both evaluators see only strings within this
# limit (rules: check_rule_values; contexts: validate_context), so they always agree.
MAX_STRING_BYTES = 4096


def string_problem(value: str) -> str | None:
    """Why `value` cannot be a rule or context string (None when fine): over MAX_STRING_BYTES of UTF-8, or
    not valid Unicode (a lone surrogate, e.g. from a JSON "\\ud800" escape)."""
    if value.isascii():
        n = len(value)
    else:
        try:
            n = len(value.encode("utf-8"))
        except UnicodeEncodeError as err:
            return f"is not valid Unicode (a lone surrogate at character {err.start})"
    if n > MAX_STRING_BYTES:
        return f"is {n:,} bytes long; strings are limited to {MAX_STRING_BYTES:,} bytes"
    return None


@dataclass(frozen=True)
class Attribute:
    """One context key: its type (`set` = set of strings) and, when closed, its allowed values."""

    name: str
    kind: Kind
    values: tuple[str, ...] = ()  # closed vocabulary of a str / set attribute (empty = open)

    def accepts(self, value: Any) -> bool:
        """Is `value` of this attribute's type (a set attribute: one member string)? Numbers must be
        finite and within +-2**53; bools are never numbers."""
        if self.kind in ("str", "set"):
            return isinstance(value, str) and string_problem(value) is None
        if self.kind == "bool":
            return isinstance(value, bool)
        if isinstance(value, bool) or not isinstance(value, int if self.kind == "int" else (int, float)):
            return False
        return abs(value) <= MAX_NUMBER  # False for NaN and inf too (and never overflows on a huge int)

    def comparable(self, value: Any) -> bool:
        """Can a condition value be compared with this attribute under ir.holds? Like `accepts`, except that
        numeric attributes compare with any finite number (an int attribute against 2.5 is a valid IR test,
        even though the rulebook loader asks for integers)."""
        if self.kind == "int":
            return not isinstance(value, bool) and isinstance(value, (int, float)) and abs(value) <= MAX_NUMBER
        return self.accepts(value)

    def check_value(self, value: Any) -> str | None:
        """Why `value` cannot be compared with this attribute (None when fine)."""
        if self.accepts(value):
            if self.values and value not in self.values:
                return f"{_short(value)} is not a known {self.name} (one of {', '.join(self.values)})"
            return None
        if self.kind in ("str", "set"):
            if isinstance(value, str):
                return f"{self.name}: the string {string_problem(value)}"
            return f"{self.name} takes strings, got {_tname(value)} {_short(value)}"
        if self.kind == "bool":
            return f"{self.name} takes true/false, got {_short(value)}"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{self.name} takes numbers, got {_tname(value)} {_short(value)}"
        if self.kind == "int" and not isinstance(value, int):
            return f"{self.name} takes integers, got {_short(value)}"
        return f"{self.name} takes finite numbers within +-2**53, got {_short(value)}"


def _short(value: Any) -> str:
    """repr(value), cut to a readable length (a bad value may be megabytes long)."""
    import reprlib

    short = reprlib.Repr()
    short.maxstring = short.maxother = 80
    return short.repr(value)


def _tname(value: Any) -> str:
    return {str: "string", bool: "boolean", int: "integer", float: "number",
            type(None): "null", list: "list", dict: "mapping"}.get(type(value), type(value).__name__)


_A = Attribute
CONTEXT_ATTRIBUTES: Mapping[str, Attribute] = MappingProxyType({a.name: a for a in (
    _A("os", "str", ("linux", "windows", "macos")),
    _A("archetype", "set"),
    _A("vendor", "str", ("amd", "nvidia", "apple", "intel", "qualcomm", "cpu", "unknown")),
    _A("family", "str"),
    _A("arch", "str"),
    _A("memclass", "str", ("discrete", "unified", "cpu")),
    _A("unified", "bool"),
    _A("mem_bucket_gb", "int"),
    _A("bw_tier", "int"),
    _A("gpu_count", "int"),
    _A("confidence", "str", ("high", "medium", "low")),
    _A("cpu_arch", "str", ("x86_64", "arm64")),
    _A("cpu_isa", "str", ("avx512", "avx2", "avx", "neon", "none")),
    _A("cpu_physical_cores", "int"),
    _A("cpu_performance_cores", "int"),
    _A("cpu_threads", "int"),
    _A("ram_gb", "float"),
    _A("backends", "set", BACKENDS),
    _A("installed", "set", BACKENDS),  # subset of `backends` already installed
    _A("lemonade_default", "str", BACKENDS),  # Lemonade's default_backend for the recipe
    _A("recipe", "str", RECIPE_NAMES),
    _A("architecture", "str"),
    _A("quant", "str"),
    _A("precision", "str", ("16bit", "quantized")),
    _A("size_class", "str", ("tiny", "small", "medium", "large", "xlarge", "huge")),
    _A("model_class", "str"),
    _A("params_b", "float"),
    _A("active_params_b", "float"),
    _A("file_gib", "float"),
    _A("moe", "bool"),
    _A("embedding", "bool"),
    _A("reranker", "bool"),
    _A("trained_ctx", "int"),
    _A("weights_exceed_carveout", "bool"),  # a unified AMD GPU whose BIOS carve-out is smaller than the weights
    _A("fit_full_offload", "bool"),
    _A("fit_max_ctx", "int"),
    _A("fit_max_gpu_layers", "int"),
    _A("gpu_budget_gib", "float"),
    _A("fit_devices", "int"),  # GPUs the memory fit places the model on (several: a layer split over them)
    _A("scenario", "str"),
    _A("backend", "str", BACKENDS),
)})

# Operators each attribute kind supports (ordering compares numbers only; `contains` needs a set).
KIND_OPS: Mapping[str, frozenset[str]] = MappingProxyType({
    "str": frozenset({"eq", "ne", "in", "not_in", "exists", "missing"}),
    "bool": frozenset({"eq", "ne", "in", "not_in", "exists", "missing"}),
    "int": frozenset({"eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "exists", "missing"}),
    "float": frozenset({"eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "exists", "missing"}),
    "set": frozenset({"eq", "ne", "in", "not_in", "contains", "exists", "missing"}),
})


def validate_context(context: Mapping[str, Any],
                     attributes: Mapping[str, Attribute] | None = None) -> dict[str, Any]:
    """Check and normalise one flat, typed context: no None, no NaN/inf, no string numbers.

    Float attributes become float, set attributes become a frozenset of strings (a plain string is
    the one-element set). Unknown keys and wrong types raise ContextError naming every bad key.
    """
    schema = CONTEXT_ATTRIBUTES if attributes is None else attributes
    out: dict[str, Any] = {}
    problems: list[str] = []
    for key, value in context.items():
        attr = schema.get(key)
        if attr is None:
            problems.append(f"{key}: unknown context attribute")
            continue
        kind = attr.kind
        if kind == "str" and type(value) is str and value.isascii() and len(value) <= MAX_STRING_BYTES:
            out[key] = value  # the common case first (hot path of every match)
        elif value is None:
            problems.append(f"{key}: None is not allowed (omit unknown facts)")
        elif kind == "set":
            items = (value,) if isinstance(value, str) else value
            if isinstance(items, (list, tuple, set, frozenset)) and all(attr.accepts(v) for v in items):
                out[key] = frozenset(items)
            else:
                problems.append(f"{key}: expected a set of strings within the string limit, got {_short(value)}")
        elif attr.accepts(value):
            out[key] = float(value) if kind == "float" else value
        else:
            problems.append(attr.check_value(value) or f"{key}: expected {kind}")
    if problems:
        raise ContextError("invalid context: " + "; ".join(problems))
    return out
