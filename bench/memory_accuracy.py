"""Accuracy harness: our llama.cpp memory model vs real llama.cpp (llama-cpp-python, CPU) on tiny GGUF models.

Writes tiny random-weight models (bench/accuracy/tiny_models.py), loads each in a subprocess per
configuration over a grid of ctx / ubatch / cache types / flash-attn / parallel / unified, parses the sizes
llama.cpp logs and compares them with facts.memory.estimate(). Needs the optional extra `accuracy`
(llama-cpp-python). Not run in CI.

    python bench/memory_accuracy.py [--out docs-table.md] [--json results.json] [--quick | --holdout]
        [--models NAME ...] [--models-dir DIR]
    python bench/memory_accuracy.py --rows results.json   # re-estimate a logged run, no llama.cpp needed
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from accuracy import tiny_models  # noqa: E402

PROBE = ROOT / "bench" / "accuracy" / "probe.py"
FIXTURES = ROOT / "tests" / "fixtures" / "gguf"
MIB = 1 << 20
_KV = re.compile(r"llama_kv_cache: size = +([\d.]+) MiB \( *(\d+) cells, +(\d+) layers.*K \((\w+)\): +([\d.]+) MiB, "
                 r"V \((\w+)\): +([\d.]+) MiB")
_RS = re.compile(r"llama_memory_recurrent: size = +([\d.]+) MiB")
_COMPUTE = re.compile(r"CPU compute buffer size = +([\d.]+) MiB")
_SWA = re.compile(r"creating +SWA KV cache")
_NONSWA = re.compile(r"creating non-SWA KV cache")


def parse_log(text: str) -> dict[str, Any]:
    """Sizes llama.cpp printed: KV (base and SWA caches), recurrent state, compute buffer (MiB)."""
    out: dict[str, Any] = {"kv_mib": 0.0, "swa_kv_mib": 0.0, "rs_mib": 0.0, "compute_mib": None,
                           "kv_cells": None, "swa_cells": None, "ok": "PROBE: context ok" in text}
    next_is_swa = False
    for line in text.splitlines():
        if _SWA.search(line):
            next_is_swa = True
        elif _NONSWA.search(line):
            next_is_swa = False
        m = _KV.search(line)
        if m:
            key = "swa_kv_mib" if next_is_swa else "kv_mib"
            out[key] += float(m.group(1))
            out["swa_cells" if next_is_swa else "kv_cells"] = int(m.group(2))
        m = _RS.search(line)
        if m:
            out["rs_mib"] += float(m.group(1))
        m = _COMPUTE.search(line)
        if m:
            out["compute_mib"] = float(m.group(1))
    errors = [ln for ln in text.splitlines() if "error" in ln.lower() or "requires" in ln]
    out["error"] = errors[-1].strip() if errors and not out["ok"] else None
    return out


def run_probe(model: Path, params: dict[str, Any]) -> dict[str, Any]:
    try:
        proc = subprocess.run([sys.executable, str(PROBE), str(model), json.dumps(params)],
                              capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:  # counted as a failed load, not a lost run
        return {**parse_log(""), "error": "probe timed out after 300 s"}
    return parse_log(proc.stderr)


def grid(quick: bool) -> list[dict[str, Any]]:
    # small contexts (512, 2048) are where the context-independent terms of the compute buffer dominate
    ctxs = [2048, 10000] if quick else [512, 2048, 4096, 10000, 32768]
    ubatches = [128, 512] if quick else [64, 512, 2048]
    caches = [("f16", "f16"), ("q8_0", "q8_0"), ("f32", "f32"), ("q4_0", "q5_1")]
    configs = []
    for ctx, ub, (tk, tv), fa, (par, uni) in itertools.product(
            ctxs, ubatches, caches, ["on", "off"], [(1, False), (4, True), (3, False)]):
        if fa == "off" and tv not in ("f16", "f32"):
            if ctx == ctxs[1] and ub == 512 and par == 1:  # llama.cpp must refuse it, and so must we
                configs.append({"ctx_size": ctx, "ubatch": ub, "batch": 2048, "cache_type_k": tk,
                                "cache_type_v": tv, "flash_attn": fa, "parallel": par, "kv_unified": uni})
            continue
        if quick and (par, uni) == (3, False) and ctx != 10000:
            continue
        configs.append({"ctx_size": ctx, "ubatch": ub, "batch": 2048, "cache_type_k": tk, "cache_type_v": tv,
                        "flash_attn": fa, "parallel": par, "kv_unified": uni})
    return configs


def holdout_grid() -> list[dict[str, Any]]:
    """Configurations the compute model was not tuned on: other contexts (up to 64k), ubatches (32, one
    above a smaller batch, 4096), a bf16 cache, 2 and 8 slots."""
    configs = []
    for ctx, (ub, batch), (tk, tv), fa, (par, uni) in itertools.product(
            [1000, 16384, 65536], [(32, 2048), (1024, 2048), (512, 256), (4096, 4096)],
            [("f16", "f16"), ("q8_0", "q8_0"), ("bf16", "bf16")], ["on", "off"],
            [(1, False), (2, False), (8, True)]):
        if fa == "off" and tv in QUANTISED_V:
            continue
        configs.append({"ctx_size": ctx, "ubatch": ub, "batch": batch, "cache_type_k": tk, "cache_type_v": tv,
                        "flash_attn": fa, "parallel": par, "kv_unified": uni})
    return configs


QUANTISED_V = ("q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "iq4_nl")
MAX_COMPUTE_MIB = 3072  # skip loads whose compute buffer (by our estimate) would not fit this machine


def ours(m: Any, params: dict[str, Any]) -> dict[str, Any]:
    """facts.memory.estimate() for model facts `m` under the probe's params."""
    from facts.memory import Config, estimate

    cfg = Config(ctx_size=params["ctx_size"], batch=params["batch"], ubatch=params["ubatch"],
                 cache_type_k=params["cache_type_k"], cache_type_v=params["cache_type_v"],
                 flash_attn=params["flash_attn"] == "on", parallel=params["parallel"],
                 kv_unified=params["kv_unified"])
    try:
        e = estimate(m, cfg)
    except ValueError as err:
        return {"error": str(err).splitlines()[-1].strip()}
    return {"kv_mib": e.kv_bytes / MIB, "swa_kv_mib": e.swa_kv_bytes / MIB, "rs_mib": e.recurrent_bytes / MIB,
            "compute_mib": e.compute_bytes / MIB, "kv_cells": e.kv_cells, "swa_cells": e.swa_cells or None}


def compare(models: list[str] | None, quick: bool, jobs: int, models_dir: Path | None = None,
            holdout: bool = False) -> list[dict[str, Any]]:
    from facts.gguf import read_model_facts

    tmp = models_dir or Path(tempfile.mkdtemp(prefix="tiny-gguf-"))
    tmp.mkdir(parents=True, exist_ok=True)
    work = []
    models_to_run: list[tuple[str, str, Path]] = []
    for spec in tiny_models.specs():
        if models and spec.name not in models:
            continue
        path = tmp / f"{spec.name}.gguf"
        if not (models_dir and path.exists()):  # --models-dir keeps written models between runs
            tiny_models.write(spec, path)
        models_to_run.append((spec.name, spec.arch, path))
    for path in sorted(FIXTURES.glob("*.gguf")):  # the committed unit-test fixtures: n_embd 64, tiny vocabulary
        name = f"fixture-{path.stem}"
        if not models or name in models:
            models_to_run.append((name, path.stem.split("-")[0], path))
    for name, arch, path in models_to_run:
        facts = read_model_facts(path)  # once per model, not once per configuration
        for params in holdout_grid() if holdout else grid(quick):
            if arch == "deepseek2" and (params["cache_type_k"] != params["cache_type_v"]):
                continue
            if ours(facts, params).get("compute_mib", 0) > MAX_COMPUTE_MIB:
                continue
            work.append((name, path, facts, params))
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(lambda w: run_probe(w[1], w[3]), work))
    return [{"model": name, "params": params, "llama_cpp": real, "ours": ours(facts, params)}
            for (name, _, facts, params), real in zip(work, results, strict=True)]


def rerun_ours(rows: list[dict[str, Any]], models_dir: Path | None) -> list[dict[str, Any]]:
    """Recompute our side of logged rows (llama.cpp's side unchanged); the models are rewritten if needed."""
    from facts.gguf import read_model_facts

    tmp = models_dir or Path(tempfile.mkdtemp(prefix="tiny-gguf-"))
    tmp.mkdir(parents=True, exist_ok=True)
    facts = {f"fixture-{p.stem}": read_model_facts(p) for p in FIXTURES.glob("*.gguf")}
    for spec in tiny_models.specs():
        if any(r["model"] == spec.name for r in rows):
            path = tmp / f"{spec.name}.gguf"
            if not path.exists():
                tiny_models.write(spec, path)
            facts[spec.name] = read_model_facts(path)
    return [{**r, "ours": ours(facts[r["model"]], r["params"])} for r in rows if r["model"] in facts]


def _eq(a: float, b: float) -> bool:
    return abs(a - b) <= 0.0051 + 1e-9  # llama.cpp prints MiB with 2 decimals


def _spread(errors: list[float]) -> str:
    if not errors:
        return "-"
    return f"{statistics.median(errors) * 100:+.1f}% [{min(errors) * 100:+.1f}%, {max(errors) * 100:+.1f}%]"


def _stats(rows: list[dict[str, Any]]) -> dict[str, Any]:
    s: dict[str, Any] = {"n": 0, "failed": 0, "refusals_agree": 0, "kv_eq": 0, "swa_eq": 0, "rs_eq": 0,
                         "cells_eq": 0, "within10": 0, "errors": [], "worst": None}
    for r in rows:
        real, est = r["llama_cpp"], r["ours"]
        s["n"] += 1
        if not real["ok"] or "error" in est:
            s["failed"] += 1
            s["refusals_agree"] += not real["ok"] and "error" in est
            continue
        s["kv_eq"] += _eq(real["kv_mib"], est["kv_mib"])
        s["swa_eq"] += _eq(real["swa_kv_mib"], est["swa_kv_mib"])
        s["rs_eq"] += _eq(real["rs_mib"], est["rs_mib"])
        s["cells_eq"] += real["kv_cells"] in (None, est["kv_cells"]) and real["swa_cells"] in (None, est["swa_cells"])
        signed = (est["compute_mib"] - real["compute_mib"]) / real["compute_mib"] if real["compute_mib"] else 0.0
        s["errors"].append(signed)
        s["within10"] += abs(signed) <= 0.10
        if s["worst"] is None or abs(signed) > abs(s["worst"][0]):
            s["worst"] = (signed, r)
    return s


def _row(name: str, s: dict[str, Any]) -> str:
    ok = s["n"] - s["failed"]
    return (f"| {name} | {ok}/{s['n']} ({s['refusals_agree']}) | {s['kv_eq']}/{ok} | {s['swa_eq']}/{ok} | "
            f"{s['rs_eq']}/{ok} | {s['cells_eq']}/{ok} | {s['within10']}/{ok} | {_spread(s['errors'])} |")


def _config(r: dict[str, Any]) -> str:
    p = r["params"]
    return (f"{r['model']} -c {p['ctx_size']} -ub {p['ubatch']} -ctk {p['cache_type_k']} -ctv {p['cache_type_v']} "
            f"-fa {p['flash_attn']} -np {p['parallel']} {'-kvu' if p['kv_unified'] else '-no-kvu'}: "
            f"{r['ours']['compute_mib']:.2f} vs {r['llama_cpp']['compute_mib']:.2f} MiB")


def summarise(rows: list[dict[str, Any]]) -> str:
    """The per-model table (README / docs/memory.md), an overall row, and the worst compute cases."""
    names = list(dict.fromkeys(r["model"] for r in rows))
    lines = ["| model | loads (both refused) | KV = llama.cpp | SWA KV = | recurrent = | cells = | compute within 10% | "
             "compute error median [min, max] |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name in names:
        lines.append(_row(name, _stats([r for r in rows if r["model"] == name])))
    total = _stats(rows)
    lines.append(_row("**all**", total))
    ok = total["n"] - total["failed"]
    if ok:
        lines.append("")
        lines.append(f"compute within 10%: {total['within10']}/{ok} ({100 * total['within10'] / ok:.1f}%)")
        worst = sorted((_stats([r])["worst"] for r in rows if r["llama_cpp"]["ok"] and "error" not in r["ours"]),
                       key=lambda w: w[0])
        for e, r in worst[:3] + worst[-3:]:
            lines.append(f"  {e * 100:+.1f}%  {_config(r)}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", help="tiny model names (default: all)")
    ap.add_argument("--quick", action="store_true", help="a smaller grid")
    ap.add_argument("--holdout", action="store_true", help="the hold-out grid (configurations not tuned on)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--models-dir", type=Path, help="write the tiny models here once and reuse them (default: a temp dir)")
    ap.add_argument("--rows", type=Path, help="summarise rows a previous --json run wrote (no llama.cpp needed)")
    ap.add_argument("--json", type=Path, help="write every row (params, llama.cpp, ours) here")
    ap.add_argument("--out", type=Path, help="write the markdown table here")
    args = ap.parse_args()
    if args.rows:  # re-estimate the logged llama.cpp sizes with the current model
        rows = rerun_ours(json.loads(args.rows.read_text()), args.models_dir)
    else:
        try:
            import llama_cpp  # noqa: F401
        except ImportError:
            print("memory_accuracy: needs llama-cpp-python (pip install '.[accuracy]')", file=sys.stderr)
            return 2
        rows = compare(args.models, args.quick, args.jobs, args.models_dir, args.holdout)
    table = summarise(rows)
    print(table)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    if args.out:
        args.out.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
