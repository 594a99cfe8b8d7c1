"""Model facts from a spec: a Lemonade registry name, a GGUF file or a model-facts JSON file."""

from __future__ import annotations

import difflib
import json
import math
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from facts.documents import JSONProblem, parse_json, read_document
from facts.errors import ModelFactsError
from facts.models import GIB, ModelFacts

__all__ = [
    "downloaded_gguf",
    "fallback_model_facts",
    "load_registry",
    "model_facts_from_json",
    "name_facts",
    "registry_model_facts",
    "resolve_model_spec",
    "smaller_variants",
    "variants",
]

REGISTRY_PATH = Path(__file__).resolve().parent / "data" / "server_models.json"
GB = 10**9  # Lemonade's registry `size` is in GB (decimal)

_QUANT = re.compile(
    r"(?:^|[-_.:/])((?:UD-)?(?:I?Q\d(?:_[0-9A-Z]+)*|TQ\d_\d|MXFP4(?:_MOE)?|NVFP4|BF16|F16|FP16|F32|FP32))"
    r"(?=$|[-_.:/])", re.IGNORECASE)
_PARAMS = re.compile(r"(?:^|[-_ /:])(\d+(?:\.\d+)?)([BbMm])(?=$|[-_ .:/])")
_ACTIVE = re.compile(r"(?:^|[-_ /:])A(\d+(?:\.\d+)?)B(?=$|[-_ .:/])")
_EFFECTIVE = re.compile(r"(?:^|[-_ /:])E(\d+(?:\.\d+)?)B(?=$|[-_ .:/])")
_EXPERTS = re.compile(r"(?:^|[-_ /:])(\d+)E(?=$|[-_ .:/])")
_MOE_WORD = re.compile(r"(?:^|[-_ /:])MoE(?=$|[-_ .:/])", re.IGNORECASE)

# model-facts JSON: the community-benchmark keys, plus every ModelFacts field
_JSON_KEYS = {"architecture", "params_b", "active_params_b", "quant", "size_gib"}


@lru_cache(maxsize=4)
def load_registry(path: str | None = None) -> dict[str, dict[str, Any]]:
    """Lemonade's server_models.json (bundled copy unless `path` is given)."""
    p = Path(path) if path else REGISTRY_PATH
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as err:
        raise ModelFactsError(str(p), f"cannot read the model registry: {err.strerror or err}") from err
    except json.JSONDecodeError as err:
        raise ModelFactsError(f"{p}:{err.lineno}:{err.colno}", f"invalid JSON: {err.msg}") from err
    if not isinstance(data, dict):
        raise ModelFactsError(str(p), "the model registry must be a JSON object keyed by model name")
    return data


def name_facts(text: str) -> dict[str, Any]:
    """Parameter count, active parameters, MoE flag and quant read from a checkpoint or file name.

    "unsloth/Qwen3-30B-A3B-GGUF:Q4_K_M" -> params_b 30, active_params_b 3, is_moe, quant Q4_K_M.
    """
    out: dict[str, Any] = {}
    repo, _, variant = text.partition(":")
    quants = _QUANT.findall(variant) or _QUANT.findall(repo)
    if quants:
        q = quants[-1].upper()
        out["quant"] = {"FP16": "F16", "FP32": "F32"}.get(q, q)
    stem = repo.split("/")[-1] + (" " + variant if variant else "")
    sizes = [float(n) * (1e-3 if unit in "mM" else 1.0) for n, unit in _PARAMS.findall(stem)]
    active = _ACTIVE.findall(stem)
    experts = _EXPERTS.findall(stem)
    effective = _EFFECTIVE.findall(stem)
    if sizes:
        out["params_b"] = max(sizes)
    elif effective:
        out["params_b"] = float(effective[0])
    if active:
        out["active_params_b"] = float(active[0])
        out["is_moe"] = True
    elif experts and sizes:  # Llama-4-Scout-17B-16E: 17B active, 16 experts, total unknown
        out["active_params_b"] = max(sizes)
        out["is_moe"] = True
        out.pop("params_b", None)
    elif _MOE_WORD.search(stem):
        out["is_moe"] = True
    return out


def _estimated(facts: dict[str, Any], keys: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(k for k in keys if k in facts)


def registry_model_facts(name: str, entry: dict[str, Any]) -> ModelFacts:
    """ModelFacts from one server_models.json entry. A llama.cpp model's architecture facts (layers, KV heads,
    experts, SWA / recurrent layout, trained context) come from the shipped table of its real GGUF header;
    what still comes from the name or Lemonade's rounded `size` is listed in `estimated`."""
    src = f"server_models.json:{name}"
    checkpoints = entry.get("checkpoints") if isinstance(entry.get("checkpoints"), dict) else {}
    checkpoint = entry.get("checkpoint") or checkpoints.get("main")
    labels = tuple(str(x) for x in entry.get("labels", ()) if isinstance(x, str))
    facts: dict[str, Any] = {"name": name, "recipe": str(entry.get("recipe") or "llamacpp"), "labels": labels}
    if isinstance(checkpoint, str):
        facts["checkpoint"] = checkpoint
        facts.update(name_facts(checkpoint))
    facts.update({k: v for k, v in name_facts(name).items() if k not in facts})
    size = entry.get("size")
    if isinstance(size, (int, float)) and not isinstance(size, bool) and size > 0 and math.isfinite(size):
        facts["file_bytes"] = int(round(size * GB))
    facts["embedding"] = "embeddings" in labels
    facts["reranker"] = "reranking" in labels
    provenance = {"*": src}
    mmproj = entry.get("mmproj") or checkpoints.get("mmproj")
    if mmproj:
        provenance["mmproj"] = str(mmproj)
    if checkpoints.get("draft"):
        provenance["draft"] = str(checkpoints["draft"])
    guessed = ["params_b", "active_params_b", "is_moe", "file_bytes"]  # the quant is the checkpoint's own tag
    if facts["recipe"] == "llamacpp":
        from facts._registry_gguf import registry_gguf_facts

        table = registry_gguf_facts(name)  # the model's real GGUF facts, shipped (facts/data/registry_gguf.json)
        if table:
            provenance["gguf"] = table.pop("provenance")["*"]
            for flag in ("embedding", "reranker"):  # the registry's labels say which (Lemonade loads it so)
                table.pop(flag, None)
            if "block_count" in table and "is_moe" not in table:
                table["is_moe"] = False  # a row that gives the layers and no experts describes a dense model
            facts.update(table)
            guessed = [k for k in guessed if k not in table]
            if facts.get("is_moe") is False:
                facts.pop("active_params_b", None)
    facts["provenance"] = provenance
    facts["estimated"] = _estimated(facts, tuple(guessed))
    try:
        return ModelFacts(**facts)
    except ValueError as err:
        raise ModelFactsError(src, f"registry entry does not give valid model facts: {err}") from err


def downloaded_gguf(checkpoint: str, *, component: bool = False) -> Path | None:
    """The GGUF file of `checkpoint` ("owner/repo:VARIANT") in the Hugging Face cache Lemonade downloads to, if
    there (a projector or draft with `component`)."""
    from facts._hf_cache import downloaded_gguf as find

    return find(checkpoint, component=component)


def _with_download(facts: ModelFacts) -> ModelFacts:
    """Registry facts, replaced by the GGUF header's when Lemonade has already downloaded the model (the
    Hugging Face cache): exact layers, KV heads and tensor sizes instead of size-based estimates; the sizes
    of a downloaded projector (mmproj) and draft model are filled in either way."""
    from facts._hf_cache import downloaded_gguf
    from facts.gguf import read_model_facts

    if not facts.checkpoint:
        return facts
    sizes = {}  # projector and draft files that are there: their sizes count in the memory estimate
    for field, ref in (("mmproj_bytes", facts.provenance.get("mmproj")), ("draft_bytes", facts.provenance.get("draft"))):
        if ref:
            owner_repo = facts.checkpoint.partition(":")[0]
            found = downloaded_gguf(ref if ":" in ref else f"{owner_repo}:{ref}", component=True)
            if found is not None:
                sizes[field] = found.stat().st_size
    path = downloaded_gguf(facts.checkpoint)
    try:
        header = read_model_facts(path) if path is not None else None
    except ModelFactsError:  # a damaged download: the registry's estimates stand
        header = None
    if header is None:
        return facts.model_copy(update=sizes) if sizes else facts
    keep = {"name": facts.name, "checkpoint": facts.checkpoint, "recipe": facts.recipe, "labels": facts.labels,
            "embedding": facts.embedding or header.embedding, "reranker": facts.reranker or header.reranker,
            "provenance": {**facts.provenance, **header.provenance, "*": f"{facts.provenance.get('*')} + gguf:{path}"},
            **sizes}
    return header.model_copy(update=keep)




MAX_SIZE_GIB = 1 << 20  # 1 PiB: beyond any model file


def model_facts_from_json(path: str | os.PathLike[str]) -> ModelFacts:
    """A model-facts JSON file: community-benchmark keys (architecture, params_b, active_params_b, quant,
    size_gib) and optionally any ModelFacts field. Unknown keys are an error naming the key."""
    src = os.fspath(path)
    try:
        data = parse_json(read_document(src, "model-facts").text)
    except OSError as err:
        raise ModelFactsError(src, f"cannot read: {err.strerror or err}") from err
    except JSONProblem as err:
        raise ModelFactsError(err.location(src), err.message) from None
    if not isinstance(data, dict):
        raise ModelFactsError(src, "a model-facts file must hold one JSON object")
    allowed = _JSON_KEYS | set(ModelFacts.model_fields)
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ModelFactsError(src, f"unknown key {unknown[0]!r} (allowed: {', '.join(sorted(_JSON_KEYS))} "
                                   "and the ModelFacts fields)")
    facts = dict(data)
    size = facts.pop("size_gib", None)
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, (int, float)) or not 0 < size <= MAX_SIZE_GIB:
            raise ModelFactsError(src, f"size_gib: must be a positive number of GiB up to {MAX_SIZE_GIB:,}, "
                                       f"got {json.dumps(size)[:40]}")
        facts.setdefault("file_bytes", int(round(size * GIB)))
    active, total = facts.get("active_params_b"), facts.get("params_b")
    if "is_moe" not in facts and all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
                                     for v in (active, total)):
        facts["is_moe"] = active < total  # else ModelFacts says what is wrong with them
    facts.setdefault("name", Path(src).stem)
    facts.setdefault("provenance", {"*": f"model-facts:{src}"})
    try:
        return ModelFacts(**facts)
    except ValueError as err:
        lines = []
        for e in getattr(err, "errors", lambda: [])():
            loc = ".".join(str(x) for x in e.get("loc", ()))
            lines.append(f"{loc}: {e.get('msg')}")
        raise ModelFactsError(src, "; ".join(lines) or str(err)) from err


def fallback_model_facts(path_or_name: str, size_bytes: int | None) -> ModelFacts:
    """Size- and name-based facts for a model whose GGUF header could not be read (all marked estimated)."""
    stem = Path(path_or_name).name
    facts: dict[str, Any] = {"name": Path(stem).stem if stem.endswith(".gguf") else stem}
    facts.update(name_facts(stem))
    if size_bytes and size_bytes > 0:
        facts["file_bytes"] = int(size_bytes)
    facts["estimated"] = _estimated(facts, ("params_b", "active_params_b", "is_moe", "quant", "file_bytes"))
    facts["provenance"] = {"*": f"fallback:{path_or_name}"}
    return ModelFacts(**facts)


# name tokens that say how a model is packaged (format, runtime, precision), not which model it is
_PACKAGING = frozenset({"gguf", "hybrid", "cpu", "npu", "flm", "vllm", "fp16", "fp8", "bf16", "lowconc", "highconc",
                        "onnx", "awq", "oga", "ryzenai", "mxfp", "mxfp4"})


def base_name(name: str) -> str:
    """A registry name without its packaging tokens: "Phi-4-mini-instruct-Hybrid" -> "phi4miniinstruct"."""
    tokens = [t for t in re.split(r"[-_ ]+", name.casefold()) if t and t not in _PACKAGING]
    return re.sub(r"[^0-9a-z]", "", "".join(tokens))


_QUANT_TOKEN = re.compile(r"^(?:ud|iq?\d.*|q\d.*|mxfp\d*|nvfp\d*|bf16|f16|fp16|fp8|int[48]|awq|\d+bit)$")


def smaller_variants(name: str) -> list[tuple[str, float]]:
    """(registry name, size GB) of smaller builds of the same model and recipe (another quant), smallest last."""
    reg = load_registry()
    entry = reg.get(name) or {}
    size = entry.get("size")
    if not isinstance(size, (int, float)):
        return []

    def stem(n: str) -> str:
        tokens = [t for t in re.split(r"[-_ ]+", n.casefold()) if t and t not in _PACKAGING
                  and not _QUANT_TOKEN.match(t)]
        return re.sub(r"[^0-9a-z]", "", "".join(tokens))

    want = stem(name)
    found = [(k, float(v["size"])) for k, v in reg.items() if k != name and v.get("recipe") == entry.get("recipe")
             and isinstance(v.get("size"), (int, float)) and v["size"] < size and stem(k) == want]
    return sorted(found, key=lambda kv: -kv[1])


def variants(name: str) -> list[str]:
    """Other registry entries of the same model in another packaging (llamacpp builds first)."""
    reg = load_registry()
    want = base_name(name)
    found = [k for k in reg if k != name and base_name(k) == want]
    return sorted(found, key=lambda k: (reg[k].get("recipe") != "llamacpp", k))


def resolve_model_spec(spec: str) -> ModelFacts:
    """Model facts for SPEC: a registry name (exact, then case-insensitive), a .gguf file, or a JSON file."""
    if not isinstance(spec, str) or not spec.strip():
        raise ModelFactsError(repr(spec), "empty model spec")
    path = Path(spec)
    looks_like_path = spec.endswith((".gguf", ".json")) or os.sep in spec or "/" in spec
    if path.is_file():
        if spec.lower().endswith(".json"):
            return model_facts_from_json(path)
        from facts.gguf import read_model_facts

        return read_model_facts(path)
    if path.is_dir():
        raise ModelFactsError(spec, "is a directory; give a .gguf file, a model-facts .json or a model name")
    reg = load_registry()
    folded = {k.casefold(): k for k in reg}
    key = spec if spec in reg else folded.get(spec.casefold())
    if key is not None:
        return _with_download(registry_model_facts(key, reg[key]))
    if looks_like_path and not path.exists():
        raise ModelFactsError(spec, "no such file (and not a model name in Lemonade's registry)")
    close = difflib.get_close_matches(spec.casefold(), list(folded), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(folded[c]) for c in close)}?" if close else ""
    raise ModelFactsError(spec, f"not a file and not a model name in Lemonade's registry{hint}")
