"""A benchmark contribution: a Lemonade `bench --json` result + this machine's facts -> one schema-versioned file.

The file is a superset of the body Lemonade's draft `lemonade bench --submit` posts (`{"benchmark": <bench JSON>}`,
lemonade-sdk/lemonade PR #3284), so it can be sent as it is; around `benchmark` it adds what curation needs: the
archetype, the hardware facts (the fields that classify a machine, nothing live or identifying), per model its
facts, the parameters each run used and a results summary. Everything goes through engine.profiles.anonymise.
"""

from __future__ import annotations

import json
import re
from typing import Any

from engine.errors import InternalError, UsageError
from engine.profiles.anonymise import BENCH, Scrubber, keep

SCHEMA = "lemonade-autotune/submission"
SCHEMA_VERSION = 1
_GIB = 2**30


def lemonade_body_problems(body: Any) -> list[str]:
    """What Lemonade's `validate_benchmark_schema` (bench.cpp, PR #3284) would refuse in `{"benchmark": ...}`."""
    b = body.get("benchmark") if isinstance(body, dict) else None
    if not isinstance(b, dict):
        return ["benchmark must be a JSON object"]
    out = []
    if not isinstance(b.get("timestamp"), str):
        out.append("missing 'timestamp' (string)")
    if not isinstance(b.get("hardware"), dict):
        out.append("missing 'hardware' (object)")
    models = b.get("models")
    if not isinstance(models, list) or not models:
        return [*out, "missing 'models' (non-empty array)"]
    for i, m in enumerate(models):
        if not isinstance(m, dict) or not isinstance(m.get("model"), str):
            out.append(f"models[{i}]: each model must have a string 'model' field")
            continue
        if not isinstance(m.get("results"), list):
            out.append(f"models[{i}] missing 'results' (array)")
            continue
        for j, r in enumerate(m["results"]):
            if not isinstance(r, dict) or not isinstance(r.get("recipe"), str):
                out.append(f"models[{i}].results[{j}]: each result must have a string 'recipe' field")
            elif not isinstance(r.get("scenarios"), list):
                out.append(f"models[{i}].results[{j}] missing 'scenarios' (array)")
            elif any(not isinstance(s, dict) or not isinstance(s.get("name"), str) for s in r["scenarios"]):
                out.append(f"models[{i}].results[{j}]: each scenario must have a string 'name' field")
    return out


def _hardware_facts(hw: Any) -> dict[str, Any]:
    """The facts that classify a machine (no UUIDs, no provenance paths, no live free memory)."""
    def gib(b: int | None) -> float | None:
        return None if b is None else round(b / _GIB, 2)

    gpus = [{"vendor": g.vendor, "name": g.name, "marketing_name": g.marketing_name, "arch": g.arch,
             "family": g.family, "device_class": g.device_class, "dedicated_gib": gib(g.dedicated_bytes),
             "shared_gib": gib(g.shared_bytes), "bandwidth_gbs": g.bandwidth_gbs, "unified": g.unified,
             "integrated": g.integrated, "compute_units": g.compute_units, "pci_id": g.pci_id,
             "llama_devices": list(g.llama_devices)} for g in hw.gpus]
    npu = None if hw.npu is None else {"name": hw.npu.name, "family": hw.npu.family, "available": hw.npu.available}
    return {"os": {"name": hw.os.name, "version": hw.os.version},
            "cpu": {"name": hw.cpu.name, "arch": hw.cpu.arch, "physical_cores": hw.cpu.physical_cores,
                    "threads": hw.cpu.threads, "performance_cores": hw.cpu.performance_cores,
                    "efficiency_cores": hw.cpu.efficiency_cores, "isa": list(hw.cpu.isa)},
            "memory": {"total_gib": gib(hw.memory.total_bytes), "nominal_gb": hw.memory.nominal_gb},
            "gpus": gpus, "npu": npu, "backends": list(hw.backends), "installed_backends": list(hw.installed_backends)}


_LONG = {"--batch-size": "-b", "--ubatch-size": "-ub", "--threads": "-t", "--flash-attn": "-fa",
         "--cache-type-k": "-ctk", "--cache-type-v": "-ctv", "--n-gpu-layers": "-ngl", "--parallel": "-np",
         "--gpu-layers": "-ngl"}


def parameters_of(args: str) -> dict[str, Any]:
    """llama.cpp `backend_args` as our parameter names where the vocabulary has them; the rest as extra args."""
    from engine.recipes.llamacpp.flags import SPECS

    by_flag = {s.flag: s.name for s in SPECS if s.flag and s.name not in ("mmap", "kv_unified")}
    tokens, out, extra = args.split(), {}, []
    i = 0
    while i < len(tokens):
        flag = _LONG.get(tokens[i], tokens[i])
        if flag in by_flag and i + 1 < len(tokens):
            value = tokens[i + 1]
            out[by_flag[flag]] = int(value) if re.fullmatch(r"\d+", value) else value
            i += 2
            continue
        extra.append(tokens[i])
        i += 1
    if extra:
        out["extra_args"] = extra
    return out


def _model_facts(name: str) -> dict[str, Any] | None:
    from facts.errors import FactsError
    from facts.registry import resolve_model_spec

    try:
        m = resolve_model_spec(name)
    except (FactsError, ValueError, OSError):
        return None
    return {"architecture": m.architecture, "params_b": m.params_b, "active_params_b": m.active_params_b,
            "is_moe": m.is_moe, "quant": m.quant, "file_gib": None if m.file_bytes is None else
            round(m.file_bytes / _GIB, 2), "estimated": list(m.estimated)}


def build(bench: Any, hw: Any, *, facts_source: str, identifiers: list[str]) -> tuple[dict[str, Any], Scrubber]:
    """The contribution for `bench` (a parsed Lemonade bench JSON) measured on `hw`; UsageError when `bench` is
    not one. The second value says what was removed."""
    from engine._version import __version__
    from facts.archetype import classify

    if not isinstance(bench, dict) or not isinstance(bench.get("models"), list) or "hardware" not in bench:
        raise UsageError("not a Lemonade bench result: expected top-level 'hardware' and 'models' "
                         "(lemonade bench MODEL --json --output FILE)")
    scrub = Scrubber(identifiers)
    body = keep(BENCH, bench, scrub)
    problems = lemonade_body_problems({"benchmark": body})
    if problems:
        raise UsageError("the bench result lacks what Lemonade's --submit requires: " + "; ".join(problems))
    arche = classify(hw)
    models, params, results = [], [], []
    for m in body["models"]:
        models.append({"model": m["model"], "facts": _model_facts(m["model"])})
        for r in m.get("results", []):
            run = {"model": m["model"], "recipe": r["recipe"], "backend": r.get("backend"),
                   "ctx_size": r.get("ctx_size"), "backend_args": r.get("backend_args", "")}
            params.append({**run, "parameters": parameters_of(run["backend_args"] or "")})
            for sc in r["scenarios"]:
                results.append({**run, "scenario": sc["name"], "category": sc.get("category"),
                                "tps_p50": (sc.get("tps") or {}).get("p50"),
                                "ttft_ms_p50": (sc.get("ttft_ms") or {}).get("p50"),
                                "failed_runs": sc.get("failed_runs"), "all_runs_failed": bool(sc.get("all_runs_failed"))})
    doc = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "engine_version": __version__,
           "archetype": scrub.value({"id": arche.id, "backoff": list(arche.backoff), "confidence": arche.confidence}),
           "facts_source": facts_source, "facts": scrub.value(_hardware_facts(hw)), "models": scrub.value(models),
           "parameters": params, "results": results, "benchmark": body}
    doc["anonymised"] = {"removed": dict(sorted(scrub.counts.items())),
                         "rules": "fields outside Lemonade's bench schema dropped; paths, UUIDs, serial numbers, "
                                  "MAC/IP/e-mail addresses, URLs and this machine's host and user names replaced"}
    check(doc, scrub)
    return doc, scrub


def check(doc: dict[str, Any], scrub: Scrubber) -> None:
    """The finished file: schema fields, Lemonade's --submit body, and no identifier left (InternalError if one is:
    that is a bug in the anonymiser, never written)."""
    for key, want in (("schema", str), ("schema_version", int), ("archetype", dict), ("facts", dict),
                      ("models", list), ("parameters", list), ("results", list), ("benchmark", dict)):
        if not isinstance(doc.get(key), want):
            raise InternalError(f"submission field {key!r} is not a {want.__name__}")
    problems = lemonade_body_problems(doc)
    if problems:
        raise InternalError("submission is not a Lemonade --submit body: " + "; ".join(problems))
    text = json.dumps(doc, ensure_ascii=False)
    leaked = [w for w in scrub.words if re.search(f"(?<![A-Za-z0-9]){re.escape(w)}(?![A-Za-z0-9])", text, re.I)]
    if leaked:
        raise InternalError(f"anonymisation left {len(leaked)} identifier(s) in the submission")
