"""Evaluator speed: compile time and uncached match p50 for both engines, synthetic and shipped rulebooks.

Run: python bench/engine_speed.py [--sizes 1000,4000,10000] [--engines durable,python] [--json]
Targets (issue "Rule core"): match <= 10 ms at 4,000 rules, compile <= 300 ms at 4,000 rules, match
<= 1 ms on the shipped rulebook. Medians over many evaluations; compare ratios, not absolute values.
Other benches can import `synthetic_rulebook`, `sample_contexts`, `time_compile`, `time_match`.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import ir  # noqa: E402

FAMILIES = ("rdna2", "rdna3", "rdna3.5", "rdna4", "ampere", "ada", "blackwell", "apple-m2", "apple-m3", "xe2")
RECIPES = ("llamacpp", "vllm")
SCENARIOS = ("chat", "coding", "long-context")
QUANTS = ("Q4_0", "Q4_K_M", "Q5_K_M", "Q8_0", "F16", "BF16", "MXFP4")
SIZES = ("tiny", "small", "medium", "large", "xlarge", "huge")
THRESHOLDS = (1.0, 4.0, 8.0, 14.0, 24.0, 32.0, 70.0, 120.0)
BACKENDS = ("vulkan", "rocm", "cuda", "metal", "cpu")
PARAMS = {"ubatch": (256, 512, 1024, 2048), "batch": (512, 1024, 2048, 4096), "flash_attn": ("on", "off"),
          "cache_type_k": ("f16", "q8_0"), "threads": (4, 8, 16), "backend": BACKENDS}


def _archetypes(n: int) -> list[str]:
    return [f"{FAMILIES[i % len(FAMILIES)]}-{(i * 7) % 13}-{8 * (1 + i % 16)}gb-bw{i % 5}" for i in range(n)]


def synthetic_rulebook(n: int, seed: int = 7) -> ir.Rulebook:
    """`n` rules shaped like curated ones: a third recipe/family defaults, a third archetype x backend
    defaults, a third archetype x model-class overlays; ranges on params_b from a few thresholds."""
    rng = random.Random(seed)
    archetypes = _archetypes(max(8, n // 12))
    rules = []
    for i in range(n):
        kind = i % 3
        when: list[ir.Condition] = [ir.Condition("recipe", "eq", rng.choice(RECIPES))]
        if kind == 0:
            layer = "family"
            when.append(ir.Condition("family", "in", tuple(rng.sample(FAMILIES, 2))))
            when.append(ir.Condition("params_b", rng.choice(("ge", "lt")), rng.choice(THRESHOLDS)))
        elif kind == 1:
            layer = "archetype"
            when.append(ir.Condition("archetype", "eq", rng.choice(archetypes)))
            when.append(ir.Condition("backends", "contains", rng.choice(BACKENDS)))
        else:
            layer = "model-overlay"
            when.append(ir.Condition("archetype", "eq", rng.choice(archetypes)))
            when.append(ir.Condition("model_class", "eq", f"dense-{rng.choice(SIZES)}-quantized"))
            if rng.random() < 0.5:
                when.append(ir.Condition("scenario", "eq", rng.choice(SCENARIOS)))
            if rng.random() < 0.3:
                when.append(ir.Condition("quant", "ne", rng.choice(QUANTS)))
        param = rng.choice(sorted(PARAMS))
        rules.append(ir.Rule(id=f"r{i}", description="synthetic", layer=layer, priority=rng.choice((0, 10, 20)),
                             when=tuple(when), set={param: rng.choice(PARAMS[param])}, source=f"synthetic:{i}",
                             index=i))
    return ir.Rulebook(rules=tuple(rules), digest=f"{n:08x}{seed:056x}", root="synthetic")


def sample_contexts(book: ir.Rulebook, k: int = 200, seed: int = 11) -> list[dict[str, Any]]:
    """Typed contexts that hit the rulebook's archetypes (so rules fire), each distinct (no cache help)."""
    rng = random.Random(seed)
    archetypes = sorted({c.value for r in book.rules for c in r.when if c.attr == "archetype"}) or ["cpu"]
    out = []
    for i in range(k):
        exact = rng.choice(archetypes)
        out.append({
            "recipe": rng.choice(RECIPES), "family": rng.choice(FAMILIES),
            "archetype": frozenset({exact, exact.rsplit("-", 1)[0], "unified"}),
            "backends": frozenset(rng.sample(BACKENDS, 3)), "params_b": float(rng.choice(THRESHOLDS)) + i % 3,
            "model_class": f"dense-{rng.choice(SIZES)}-quantized", "scenario": rng.choice(SCENARIOS),
            "quant": rng.choice(QUANTS), "os": "linux", "mem_bucket_gb": 8 * (1 + i % 16), "unified": i % 2 == 0,
        })
    return out


def time_compile(factory: Callable[[ir.Rulebook], Any], book: ir.Rulebook, repeats: int = 3) -> tuple[float, Any]:
    """Median seconds to build an evaluator (each build fresh), and the last evaluator built."""
    times, ev = [], None
    for _ in range(repeats):
        if ev is not None and hasattr(ev, "close"):
            ev.close()
        t0 = time.perf_counter()
        ev = factory(book)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), ev


def time_match(ev: Any, contexts: Sequence[dict[str, Any]], rounds: int = 3) -> dict[str, float]:
    """p50 / p99 seconds per uncached match (evaluators keep no cache; contexts cycle)."""
    times = []
    for _ in range(rounds):
        for ctx in contexts:
            t0 = time.perf_counter()
            ev.match(ctx)
            times.append(time.perf_counter() - t0)
    times.sort()
    return {"p50": times[len(times) // 2], "p99": times[int(len(times) * 0.99)],
            "hits": statistics.mean(len(ev.match(c)) for c in contexts[:50])}


def _factories(engines: Sequence[str]) -> dict[str, Callable[[ir.Rulebook], Any]]:
    from engine.evaluators import durable_available
    from engine.evaluators.python import PythonEvaluator

    out: dict[str, Callable[[ir.Rulebook], Any]] = {}
    for name in engines:
        if name == "python":
            out[name] = PythonEvaluator
        elif name == "durable" and durable_available():
            from engine.evaluators.durable import DurableEvaluator

            out[name] = DurableEvaluator
        else:
            print(f"engine {name!r} unavailable here; skipped", file=sys.stderr)
    return out


def bench_synthetic(sizes: Sequence[int], engines: Sequence[str]) -> list[dict[str, Any]]:
    rows = []
    factories = _factories(engines)
    for n in sizes:
        book = synthetic_rulebook(n)
        contexts = sample_contexts(book)
        row: dict[str, Any] = {"rulebook": f"synthetic-{n}", "rules": n}
        for name, factory in factories.items():
            row[name] = _engine_row(factory, book, contexts, 3 if n <= 4000 else 1)
        rows.append(row)
    return rows


def _engine_row(factory: Callable[[ir.Rulebook], Any], book: ir.Rulebook, contexts: Sequence[dict[str, Any]],
                repeats: int = 3) -> dict[str, Any]:
    """One engine's numbers on one rulebook (the evaluator is closed afterwards)."""
    compile_s, ev = time_compile(factory, book, repeats=repeats)
    stats = time_match(ev, contexts, rounds=repeats)
    row = {"compile_ms": compile_s * 1e3, "match_p50_ms": stats["p50"] * 1e3, "match_p99_ms": stats["p99"] * 1e3,
           "mean_hits": stats["hits"], "shards": getattr(ev, "shard_count", None)}
    if hasattr(ev, "close"):
        ev.close()
    return row


def shipped_contexts() -> list[dict[str, Any]]:
    """Contexts like engine.context.build_context produces for a few machines and models."""
    base = {"recipe": "llamacpp", "os": "linux", "vendor": "amd", "memclass": "unified", "unified": True,
            "mem_bucket_gb": 128, "bw_tier": 2, "gpu_count": 1, "confidence": "high", "cpu_arch": "x86_64",
            "cpu_isa": "avx512", "cpu_physical_cores": 16, "cpu_threads": 32, "ram_gb": 124.5,
            "architecture": "qwen3", "quant": "Q4_K_M", "precision": "quantized", "size_class": "large",
            "model_class": "dense-large-quantized", "params_b": 32.8, "file_gib": 18.4, "moe": False,
            "embedding": False, "reranker": False, "trained_ctx": 40960, "scenario": "chat"}
    variants = [
        {"archetype": frozenset({"amd-rdna3.5-gfx1151-unified-128gb-bw2", "amd-rdna3.5-unified-128gb", "unified"}),
         "family": "rdna3.5", "arch": "gfx1151", "backends": frozenset({"vulkan", "rocm", "cpu"}),
         "installed": frozenset({"vulkan"}), "lemonade_default": "vulkan"},
        {"archetype": frozenset({"nvidia-ada-sm_89-discrete-24gb-bw5", "nvidia-ada-discrete-24gb", "discrete"}),
         "family": "ada", "arch": "sm_89", "vendor": "nvidia", "memclass": "discrete", "unified": False,
         "mem_bucket_gb": 24, "backends": frozenset({"cuda", "vulkan", "cpu"})},
        {"archetype": frozenset({"cpu-x86_64-avx512-64gb", "cpu"}), "vendor": "cpu", "memclass": "cpu",
         "unified": False, "mem_bucket_gb": 64, "gpu_count": 0},
    ]
    return [{**base, **v} for v in variants]


def bench_shipped(engines: Sequence[str]) -> dict[str, Any]:
    from engine.rulebook import load_rulebook

    t0 = time.perf_counter()
    book = load_rulebook()
    row: dict[str, Any] = {"rulebook": book.name, "rules": len(book.rules),
                           "load_ms": (time.perf_counter() - t0) * 1e3}
    contexts = shipped_contexts() * 100
    for name, factory in _factories(engines).items():
        row[name] = _engine_row(factory, book, contexts)
    return row


def _print(rows: list[dict[str, Any]], engines: Sequence[str]) -> None:
    head = f"{'rulebook':<24}{'rules':>7}"
    for e in engines:
        head += f" | {e + ' compile':>16}{'match p50':>11}{'p99':>9}{'hits':>6}"
    print(head)
    for row in rows:
        line = f"{row['rulebook']:<24}{row['rules']:>7}"
        for e in engines:
            s = row.get(e)
            line += " | " + (f"{s['compile_ms']:>13.1f} ms{s['match_p50_ms']:>8.3f} ms{s['match_p99_ms']:>6.2f}ms"
                             f"{s['mean_hits']:>6.1f}" if s else f"{'n/a':>48}")
        print(line)
    if all(e in rows[0] for e in ("durable", "python")):
        for row in rows:
            ratio = row["durable"]["match_p50_ms"] / row["python"]["match_p50_ms"]
            print(f"  {row['rulebook']}: durable/python match p50 = {ratio:.1f}x"
                  f" (durable shards: {row['durable']['shards']})")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1000,4000,10000")
    p.add_argument("--engines", default="durable,python")
    p.add_argument("--no-shipped", action="store_true", help="skip the bundled rulebook")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    engines = [e for e in args.engines.split(",") if e]
    rows = bench_synthetic([int(s) for s in args.sizes.split(",") if s], engines)
    if not args.no_shipped:
        rows.append(bench_shipped(engines))
    if args.json:
        print(json.dumps({"schema_version": 1, "kind": "bench-engine-speed", "python": sys.version.split()[0],
                          "rows": rows}, indent=2))
    else:
        print(f"Python {sys.version.split()[0]}; times are medians (p50) / p99 per uncached match")
        _print(rows, engines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
