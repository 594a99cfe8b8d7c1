"""Lemonade `bench --json` files: one record per model x backend run x scenario (tps and TTFT)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from engine.curate.fields import Item, flag, make, num
from engine.curate.normalise import build_of, iso_date
from engine.curate.records import IngestIssue
from facts.documents import JSONProblem, parse_json

_ARG = re.compile(r"(-ub|--ubatch-size|-b|--batch-size|-fa|--flash-attn|-ctk|--cache-type-k|-ctv|"
                  r"--cache-type-v|-t|--threads|-ngl|--n-gpu-layers)\s+(\S+)")


def _args(text: str) -> dict[str, str]:
    names = {"--ubatch-size": "-ub", "--batch-size": "-b", "--flash-attn": "-fa", "--cache-type-k": "-ctk",
             "--cache-type-v": "-ctv", "--threads": "-t", "--n-gpu-layers": "-ngl"}
    return {names.get(k, k): v for k, v in _ARG.findall(text or "")}


def _lemonade_model(name: str) -> tuple[str, str | None]:
    """Model string with the registry's checkpoint quant when Lemonade's registry knows the name."""
    from facts.registry import load_registry

    entry = load_registry().get(name) or {}
    ckpt = entry.get("checkpoint") or (entry.get("checkpoints") or {}).get("main") or ""
    quant = ckpt.partition(":")[2] or None
    return name, quant


def _list(value: object) -> list:
    return value if isinstance(value, list) else []


def _p50(scenario: dict, key: str) -> float | None:
    """The p50 of a stat block ({"mean", "min", "max", "p50", "p95"}); ValueError names a malformed one."""
    block = scenario.get(key)
    if block is None:
        return None
    if not isinstance(block, dict):
        raise ValueError(f"{key}: expected a stats object, got {block!r}")
    return num(block.get("p50"))


def read_lemonade(label: str, text: str) -> Iterator[Item]:
    try:
        doc = parse_json(text)
    except JSONProblem as err:
        yield IngestIssue(where=f"{label}:{err.line or 1}", message=err.message if err.line else
                          f"{err.where}: {err.message}")
        return
    if not isinstance(doc, dict) or not isinstance(doc.get("models"), list) or "hardware" not in doc:
        yield IngestIssue(where=f"{label}:1", message="not a Lemonade bench file: expected top-level "
                          "'hardware' and 'models' (lemonade bench --json --output FILE)")
        return
    hwd = doc["hardware"] if isinstance(doc["hardware"], dict) else {}
    gpus = [g for g in hwd.get("gpu") or [] if isinstance(g, dict)]
    gpu = gpus[0] if gpus else {}
    integrated = bool(gpu.get("integrated")) or gpu.get("type") == "metal"
    mem = hwd.get("ram_gb") if integrated else gpu.get("vram_gb")
    versions = hwd.get("backends") if isinstance(hwd.get("backends"), dict) else {}
    for mi, model in enumerate(doc["models"]):
        if not isinstance(model, dict):
            yield IngestIssue(where=f"{label}:$.models[{mi}]", message="expected an object")
            continue
        name, quant = _lemonade_model(str(model.get("model") or ""))
        date = iso_date(str(model.get("timestamp") or doc.get("timestamp") or ""))
        for ri, res in enumerate(_list(model.get("results"))):
            if not isinstance(res, dict):
                yield IngestIssue(where=f"{label}:$.models[{mi}].results[{ri}]", message="expected an object")
                continue
            args = _args(str(res.get("backend_args") or ""))
            backend = str(res.get("backend") or "")
            build, build_n = build_of(versions.get(f"{res.get('recipe', 'llamacpp')}/{backend}"))
            for si, sc in enumerate(_list(res.get("scenarios"))):
                where = f"{label}:$.models[{mi}].results[{ri}].scenarios[{si}]"
                if not isinstance(sc, dict):
                    yield IngestIssue(where=where, message="expected an object")
                    continue
                if sc.get("all_runs_failed"):
                    yield IngestIssue(where=where, message="all runs failed: no measurement")
                    continue
                try:
                    tps, ttft = _p50(sc, "tps"), _p50(sc, "ttft_ms")
                    n_in, n_out = num(sc.get("input_tokens"), int) or 0, num(sc.get("output_tokens"), int) or 0
                    base = {"hardware": str(gpu.get("name") or hwd.get("cpu") or ""),
                            "cpu_name": str(hwd.get("cpu") or ""), "mem_gb": num(mem),
                            "unified": integrated, "gpu_count": len(gpus) or 0, "model": name, "quant": quant,
                            "backend": backend, "variant": f"lemonade {hwd.get('lemonade_version', '')}".strip(),
                            "ngl": num(args.get("-ngl"), int), "batch": num(args.get("-b"), int),
                            "ubatch": num(args.get("-ub"), int), "threads": num(args.get("-t"), int),
                            "flash_attn": flag(args.get("-fa")), "type_k": args.get("-ctk"),
                            "type_v": args.get("-ctv"), "scenario": sc.get("name"), "build": build,
                            "build_number": build_n, "date": date, "source": label}
                except ValueError as err:
                    yield IngestIssue(where=where, message=str(err))
                    continue
                if tps:
                    yield make(where + ".tps", "lemonade-bench",
                               {**base, "test": "tg", "n_gen": n_out, "depth": n_in, "tps": tps})
                if ttft and n_in:  # prompt tokens/s over the time to first token (prompt processing)
                    yield make(where + ".ttft_ms", "lemonade-bench",
                               {**base, "test": "pp", "n_prompt": n_in, "tps": n_in / (ttft / 1000.0)})

