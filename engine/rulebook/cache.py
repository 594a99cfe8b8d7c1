"""The compiled-rulebook cache: a validated rulebook stored as JSON, keyed by its content and our code.

Loading the bundled rulebook means parsing ~0.7 MB of YAML and validating ~750 rules (about a second);
a cache hit reads one JSON file instead. The key is the sha256 of the rulebook's content digest and of the
code that turns YAML into rules, so a changed rulebook or a new version of lemonade-autotune never reads a
stale entry. An entry is one header line (format, key, the sha256 of the payload's bytes) and the payload's
JSON; it is checked on read (header, checksum, every field's type); a corrupt or stale entry is ignored and
rebuilt, so the cache can make loading faster but never change an
answer. Writes are atomic (a temporary file renamed into place); a cache directory that cannot be written
just means no cache.

Where: `$LEMONADE_AUTOTUNE_CACHE_DIR`, else the platform's user cache directory (platformdirs) +
`/rulebooks`. `LEMONADE_AUTOTUNE_CACHE=off` turns it off; `engine cache --clear` empties it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from functools import lru_cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from engine import ir
from engine._version import __version__

FORMAT = 3
KEEP = 16  # entries kept; older ones are removed when a new one is written
# the modules that decide what a rulebook file compiles to: their bytes are part of every key
_CODE = ("_version.py", "ir.py", "_attributes.py", "params.py", "rulebook/_schema.py", "rulebook/_yaml.py",
         "rulebook/cache.py", "recipes/__init__.py", "recipes/_spec.py", "recipes/base.py", "recipes/vllm.py",
         "recipes/flm.py", "recipes/ryzenai.py", "recipes/whispercpp.py", "recipes/sdcpp.py",
         "recipes/llamacpp/__init__.py", "recipes/llamacpp/flags.py", "evaluators/_durable_plan.py",
         "evaluators/durable.py")


def directory() -> Path | None:
    """The cache directory, or None when the cache is off."""
    if os.environ.get("LEMONADE_AUTOTUNE_CACHE", "").lower() in ("0", "off", "no", "false"):
        return None
    override = os.environ.get("LEMONADE_AUTOTUNE_CACHE_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_cache_dir("lemonade-autotune", appauthor=False)) / "rulebooks"


@lru_cache(maxsize=1)
def _code_fingerprint() -> str:
    h = hashlib.sha256(f"{FORMAT}:{__version__}".encode())
    pkg = resources.files("engine")
    for name in _CODE:
        h.update(name.encode() + b"\0" + pkg.joinpath(*name.split("/")).read_bytes())
    for name in ("backends.py",):  # facts knowledge the schema checks against (recipe -> backends)
        h.update(name.encode() + b"\0" + resources.files("facts").joinpath(name).read_bytes())
    return h.hexdigest()


def key(digest: str) -> str:
    return hashlib.sha256(f"{digest}:{_code_fingerprint()}".encode()).hexdigest()


# ---- encoding ------------------------------------------------------------------------------------------

def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return {"t": [_plain(v) for v in value]}  # a tuple, kept apart from scalars on the way back
    return value


_SCALARS = (str, int, bool)


def _unplain(value: Any) -> Any:
    if type(value) in _SCALARS:
        return value
    if isinstance(value, dict):
        if set(value) != {"t"} or not isinstance(value["t"], list):
            raise ValueError("bad tuple")
        return tuple(_unplain(v) for v in value["t"])
    if isinstance(value, list) or (isinstance(value, float) and value != value):
        raise ValueError("bad value")
    return value


def _evidence(ev: ir.Evidence | None) -> dict[str, Any] | None:
    if ev is None:
        return None
    return {"none": ev.none, "n": ev.n, "metric": ev.metric, "median_tps": ev.median_tps, "spread": ev.spread,
            "dispersion": ev.dispersion, "runner_up": dict(ev.runner_up) if ev.runner_up is not None else None, "sources": list(ev.sources),
            "builds": ev.builds, "dates": ev.dates, "note": ev.note, "kind": ev.kind,
            "basis": dict(ev.basis) if ev.basis is not None else None}


def encode(book: ir.Rulebook) -> dict[str, Any]:
    rules = [{"id": r.id, "description": r.description, "layer": r.layer, "priority": r.priority,
              "when": [[c.attr, c.op, _plain(c.value)] for c in r.when],
              "set": [[k, _plain(v)] for k, v in r.set.items()], "source": r.source, "index": r.index,
              "evidence": _evidence(r.evidence)} for r in book.rules]
    return {"digest": book.digest, "root": book.root, "files": list(book.files), "rules": rules}


def _read(path: Path, k: str) -> Any:
    """The payload of the entry at `path` for key `k`; ValueError when its header or checksum is wrong."""
    head, _, body = path.read_bytes().partition(b"\n")
    header = json.loads(head)
    if header != {"format": FORMAT, "key": k, "checksum": hashlib.sha256(body).hexdigest()}:
        raise ValueError("stale or corrupt entry")
    return json.loads(body)


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError("expected a string")
    return v


def _opt(v: Any, kinds: tuple[type, ...]) -> Any:
    """`v` when it is None or of `kinds` (a bool is never a number)."""
    if v is not None and (isinstance(v, bool) or not isinstance(v, kinds)):
        raise ValueError("bad optional field")
    return v


def _decode_evidence(d: Any) -> ir.Evidence | None:
    if d is None:
        return None
    runner = d["runner_up"]
    if runner is not None and not isinstance(runner, dict):
        raise ValueError("bad runner_up")
    return ir.Evidence(none=bool(d["none"]), n=_opt(d["n"], (int,)), metric=_opt(d["metric"], (str,)),
                       median_tps=_opt(d["median_tps"], (int, float)), spread=_opt(d["spread"], (int, float)),
                       dispersion=_opt(d["dispersion"], (int, float)), runner_up=MappingProxyType(runner) if runner is not None else None,
                       sources=tuple(_str(s) for s in d["sources"]), builds=_opt(d["builds"], (str,)),
                       dates=_opt(d["dates"], (str,)), note=_opt(d["note"], (str,)), kind=_str(d["kind"]),
                       basis=MappingProxyType(d["basis"]) if isinstance(d["basis"], dict) else None)


def decode(payload: dict[str, Any]) -> ir.Rulebook:
    """A Rulebook from an encoded payload; ValueError / KeyError / TypeError for anything malformed."""
    rules = []
    for i, r in enumerate(payload["rules"]):
        if r["layer"] not in ir.LAYERS or not isinstance(r["priority"], int) or r["index"] != i:
            raise ValueError(f"bad rule {i}")
        when = []
        for attr, op, value in r["when"]:
            if op not in ir.OPS:
                raise ValueError(f"bad operator {op!r}")
            when.append(ir.Condition(_str(attr), op, _unplain(value)))
        rules.append(ir.Rule(id=_str(r["id"]), description=_str(r["description"]), layer=r["layer"],
                             priority=r["priority"], when=tuple(when),
                             set={_str(k): _unplain(v) for k, v in r["set"]}, source=_str(r["source"]), index=i,
                             evidence=_decode_evidence(r["evidence"])))
    return ir.Rulebook(rules=tuple(rules), digest=_str(payload["digest"]), root=_str(payload["root"]),
                       files=tuple(_str(f) for f in payload["files"]), from_files=True)


# ---- the store -----------------------------------------------------------------------------------------

def get(digest: str) -> ir.Rulebook | None:
    """The compiled rulebook for `digest`, or None (no cache, no entry, or an entry that fails a check)."""
    where = directory()
    if where is None:
        return None
    k = key(digest)
    try:
        book = decode(_read(where / f"{k}.json", k))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None
    return book if book.digest == digest else None


def get_artifact(kind: str, digest: str) -> dict[str, Any] | None:
    """Another compiled form of rulebook `digest` (e.g. an evaluator's plan), or None; checked like get()."""
    where = directory()
    if where is None:
        return None
    k = key(digest)
    try:
        payload = _read(where / f"{k}.{kind}.json", k)
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None
    return payload if isinstance(payload, dict) else None


def put(book: ir.Rulebook) -> Path | None:
    """Store a compiled rulebook atomically; None when the cache is off or cannot be written."""
    return _store(f"{key(book.digest)}.json", key(book.digest), encode(book))


def put_artifact(kind: str, digest: str, payload: dict[str, Any]) -> Path | None:
    return _store(f"{key(digest)}.{kind}.json", key(digest), payload)


def _store(name: str, k: str, payload: dict[str, Any]) -> Path | None:
    where = directory()
    if where is None:
        return None
    body = json.dumps(payload, separators=(",", ":")).encode()
    header = json.dumps({"format": FORMAT, "key": k, "checksum": hashlib.sha256(body).hexdigest()}).encode()
    target = where / name
    tmp = None
    try:
        where.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=where)
        with os.fdopen(fd, "wb") as fh:
            fh.write(header + b"\n" + body)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        tmp = None
        _prune(where, keep=target)
    except OSError:
        return None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return target


def _prune(where: Path, keep: Path) -> None:
    entries = sorted((p for p in where.glob("*.json") if p != keep), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[2 * KEEP - 1:]:  # a rulebook and its evaluator plan per entry
        with contextlib.suppress(OSError):
            old.unlink()


def entries() -> list[Path]:
    where = directory()
    return sorted(where.glob("*.json")) if where is not None and where.is_dir() else []


def clear() -> int:
    """Remove every entry (and leftover temporary files); the number removed."""
    where = directory()
    if where is None or not where.is_dir():
        return 0
    n = 0
    for p in [*where.glob("*.json"), *where.glob(".tmp-*")]:
        with contextlib.suppress(OSError):
            p.unlink()
            n += 1
    return n
