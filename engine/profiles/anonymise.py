"""Strip what identifies a person or a machine from a benchmark submission: fields outside an allowlist are
dropped; in every string kept, paths, UUIDs, serial numbers, MAC and IP addresses, e-mail addresses and this
machine's host and user names are replaced by placeholders (`<path>`, `<uuid>`, ...).

A path keeps only a model file's base name (`/home/ana/models/Qwen3-8B-Q4_K_M.gguf` -> `<path>/Qwen3-8B-Q4_K_M.gguf`),
and only when that name holds none of the identifiers. `Scrubber.counts` says how many of each were removed.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import re
import socket
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_UUID = re.compile(r"(?:GPU-|MIG-)?\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
_MAC = re.compile(r"\b[0-9A-Fa-f]{2}(?:[:-][0-9A-Fa-f]{2}){5}\b")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")
_SERIAL = re.compile(r"(?i)\b(?:s/?n|serial(?:[ _-]?(?:no|num|number))?)\b\s*[:=#]?\s*[A-Za-z0-9][A-Za-z0-9._-]{2,}")
# absolute POSIX (/a/b), home (~/a, ~user/a), relative (./a, ../a), Windows (C:\a, C:/a), UNC (\\host\share), file://
_PATH = re.compile(r"""(?:\\\\|(?<![A-Za-z])[A-Za-z]:[\\/]|~[\w.-]*[\\/]?|\.{1,2}[\\/]|(?<![\w.:/-])/)[^\s"'<>|,;]+""")
_URL = re.compile(r"""\b[A-Za-z][A-Za-z0-9+.-]*://[^\s"'<>]*""")
_MODEL_FILE = re.compile(r"[\w.+-]+\.(?:gguf|safetensors|bin|onnx|ggml)", re.IGNORECASE)
# fields whose very name says they identify (dropped wherever they are, even inside an allowlisted mapping)
IDENTIFYING_KEYS = re.compile(r"(?i)(host|user|serial|uuid|mac_?addr|machine_?id|\bip\b|email|path|dir|file|"
                              r"home|cwd|account|owner|login|hostname)")


def machine_identifiers() -> list[str]:
    """This machine's host name (full and short), user name and home directory."""
    out: list[str] = []
    for fn in (socket.gethostname, getpass.getuser):
        try:
            value = fn()
        except Exception:  # noqa: BLE001 - no user database, no network name: nothing to scrub
            continue
        out += [value, value.split(".")[0]]
    for var in ("USER", "USERNAME", "LOGNAME", "COMPUTERNAME", "HOSTNAME"):
        if os.environ.get(var):
            out.append(os.environ[var])
    with contextlib.suppress(RuntimeError):  # no home directory
        out.append(str(Path.home()))
    return out


class Scrubber:
    """Replaces identifying substrings in strings; `identifiers` are exact words (host, user names) to remove."""

    def __init__(self, identifiers: Iterable[str] = ()) -> None:
        words = sorted({w for w in identifiers if w and len(w.strip()) >= 3}, key=len, reverse=True)
        self.words = words
        self._word = (re.compile("|".join(f"(?<![A-Za-z0-9]){re.escape(w)}(?![A-Za-z0-9])" for w in words),
                                 re.IGNORECASE) if words else None)
        self.counts: Counter[str] = Counter()

    def _sub(self, kind: str, pattern: re.Pattern[str], text: str, repl: Any) -> str:
        def one(m: re.Match[str]) -> str:
            self.counts[kind] += 1
            return repl(m) if callable(repl) else repl

        return pattern.sub(one, text)

    def _path(self, m: re.Match[str]) -> str:
        tail = re.split(r"[\\/]", m.group(0).rstrip("\\/"))[-1]
        if _MODEL_FILE.fullmatch(tail) and not (self._word and self._word.search(tail)):
            return f"<path>/{tail}"
        return "<path>"

    def text(self, value: str) -> str:
        out = self._sub("uuid", _UUID, value, "<uuid>")
        out = self._sub("serial", _SERIAL, out, "<serial>")
        out = self._sub("email", _EMAIL, out, "<email>")
        out = self._sub("mac", _MAC, out, "<mac>")
        out = self._sub("ip", _IPV4, out, "<ip>")
        out = self._sub("url", _URL, out, "<url>")
        out = self._sub("path", _PATH, out, self._path)
        if self._word is not None:
            out = self._sub("identifier", self._word, out, "<redacted>")
        return out

    def drop(self) -> None:
        self.counts["field"] += 1

    def value(self, value: Any) -> Any:
        """Strings scrubbed, numbers and booleans kept, containers walked (keys scrubbed too)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v) for v in value]
        return value


# ---- the allowlist of Lemonade's bench JSON (lemonade.md section 4.3) --------------------------------------
_STATS = {k: "num" for k in ("mean", "min", "max", "p50", "p95")}
_SCENARIO = {"name": "str", "category": "str", "input_tokens": "num", "output_tokens": "num", "ttft_ms": _STATS,
             "duration_ms": _STATS, "tps": _STATS, "vram_peak_gb": "num", "memory_peak_gb": "num",
             "all_runs_failed": "bool", "failed_runs": "num"}
_RESULT = {"recipe": "str", "backend": "str", "ctx_size": "num", "backend_args": "str", "scenarios": [_SCENARIO]}
_MODEL = {"model": "str", "timestamp": "str", "results": [_RESULT],
          "config": {"warmup_runs": "num", "measurement_runs": "num", "memory_tracking": "bool"}}
_GPU = {"name": "str", "type": "str", "integrated": "bool", "vram_gb": "num"}
_HARDWARE = {"lemonade_version": "str", "os": "str", "cpu": "str", "ram_gb": "num", "gpu": [_GPU],
             "backends": ("map", "str")}
BENCH = {"timestamp": "str", "hardware": _HARDWARE, "models": [_MODEL]}
_LEAF = {"str": (str,), "num": (int, float), "bool": (bool,)}


def keep(spec: Any, value: Any, scrub: Scrubber) -> Any:
    """`value` reduced to what `spec` allows (other keys and wrongly typed leaves dropped), strings scrubbed."""
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            return None
        out = {}
        for k, v in value.items():
            if k not in spec or IDENTIFYING_KEYS.search(k):
                scrub.drop()
                continue
            kept = keep(spec[k], v, scrub)
            if kept is not None:
                out[k] = kept
        return out
    if isinstance(spec, list):
        return [x for x in (keep(spec[0], v, scrub) for v in value) if x is not None] if isinstance(value, list) \
            else None
    if isinstance(spec, tuple):  # ("map", leaf): free keys (scrubbed) to leaves
        return {scrub.text(str(k)): keep(spec[1], v, scrub) for k, v in value.items()
                if keep(spec[1], v, scrub) is not None} if isinstance(value, dict) else None
    types = _LEAF[spec]
    if isinstance(value, bool) and spec != "bool":
        return None
    if not isinstance(value, types):
        scrub.drop()
        return None
    return scrub.text(value) if isinstance(value, str) else value
