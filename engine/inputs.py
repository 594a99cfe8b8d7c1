"""Input assembly: documents, model specs and `--set` strings -> HardwareFacts, ModelFacts, overrides.

Shared by the CLI verbs and by anything else that takes the same inputs (a server, the Python API).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import UsageError

if TYPE_CHECKING:
    from facts.models import HardwareFacts, ModelFacts

_INT = re.compile(r"-?[0-9]+")  # ASCII digits only (str.isdigit() also takes '²' and Arabic-Indic digits)
_DECIMAL = re.compile(r"-?[0-9]+\.[0-9]+")  # ASCII decimals: a memory fraction such as 0.85


def hardware(system_info: str | None = None, llama_devices: str | None = None) -> HardwareFacts:
    """Hardware facts from a Lemonade system-info document and/or a llama.cpp device report (file or
    `-`), merged; detected on this machine when neither is given."""
    from facts.documents import read_document

    if system_info == "-" and llama_devices == "-":
        raise UsageError("only one of --system-info / --llama-devices can read stdin ('-')")
    found = []
    if system_info:
        from facts.lemonade import from_system_info

        doc = read_document(system_info, "system-info")
        found.append(from_system_info(doc.text, source=f"system-info:{doc.label}"))
    if llama_devices:
        from facts.llamacpp import REPORT_LIMIT, from_llama_devices

        doc = read_document(llama_devices, "llama.cpp device report", limit=REPORT_LIMIT)
        found.append(from_llama_devices(doc.text, source=f"llama-devices:{doc.label}"))
    if not found:
        from facts.detect import detect

        return detect()
    if len(found) == 1:
        return found[0]
    from facts.merge import merge

    return merge(*found)


def model(spec: str, warn: Callable[[str], None] | None = None) -> ModelFacts:
    """Model facts for SPEC (a registry name, a .gguf, a model-facts JSON). A .gguf whose header cannot be
    read falls back to size-based facts, marked `estimated` (`warn` is told why)."""
    from facts.errors import ModelFactsError
    from facts.registry import fallback_model_facts, resolve_model_spec

    try:
        return resolve_model_spec(spec)
    except ModelFactsError as err:
        path = Path(spec)
        if path.suffix.lower() != ".gguf" or not path.is_file():
            raise
        if warn is not None:
            warn(f"{err}; falling back to size-based estimates")
        return fallback_model_facts(spec, path.stat().st_size or None)


def parse_value(raw: str) -> Any:
    """One `--set` value: an ASCII integer becomes an int, a decimal (0.85) a float, anything else a string."""
    if _INT.fullmatch(raw):
        return int(raw)
    return float(raw) if _DECIMAL.fullmatch(raw) else raw


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`PARAM=VALUE` strings -> values (ASCII integers as int, decimals as float; argument lists such as
    extra_args and vllm_extra_args split like a shell)."""
    from engine.params import PARAMS

    out: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        name, raw = name.strip(), raw.strip()
        if not sep or not name:
            raise UsageError(f"--set {item!r}: expected PARAM=VALUE, e.g. --set ctx_size=32768")
        if name in PARAMS and PARAMS[name].is_list:
            try:
                out[name] = shlex.split(raw)
            except ValueError as err:
                raise UsageError(f"--set {item!r}: {err}") from None
        else:
            out[name] = parse_value(raw)
    return out
