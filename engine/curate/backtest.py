"""Leave-one-model-out backtest: regret of the curated rulebook vs Lemonade's static backend order."""

from __future__ import annotations

import tempfile
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.curate.curate import Proto, Row, canonical, curate_rows, scenario_of
from engine.curate.emit import ID_TAIL, write
from engine.curate.records import DEFAULT_BATCH, DEFAULT_KV, DEFAULT_UBATCH
from engine.curate.rows import config_medians
from engine.curate.stats import median

STATIC_ORDER = ("system", "metal", "cuda", "vulkan", "rocm", "cpu")  # Lemonade: first available wins
PARAMS = ("ubatch", "batch", "flash_attn", "cache_type_k", "cache_type_v")


@dataclass
class Policy:
    """Regret samples of one policy for one metric kind (tg = generation, pp = prompt processing)."""

    regrets: list[float] = field(default_factory=list)
    unmeasured: int = 0

    def summary(self) -> dict[str, Any]:
        r = sorted(self.regrets)
        p90 = r[min(len(r) - 1, int(0.9 * len(r)))] if r else None
        return {"cells": len(r), "mean": round(sum(r) / len(r), 4) if r else None,
                "p90": round(p90, 4) if p90 is not None else None, "unmeasured": self.unmeasured}


@dataclass
class BacktestResult:
    policies: dict[str, dict[str, Policy]]  # subset -> "curated:tg" ... -> Policy
    models: int
    cells: int
    examples: list[dict[str, Any]]

    def table(self) -> list[dict[str, Any]]:
        out = []
        for subset in sorted(self.policies):
            for key in sorted(self.policies[subset]):
                policy, metric = key.split(":")
                out.append({"subset": subset, "policy": policy, "metric": metric,
                            **self.policies[subset][key].summary()})
        return out


def _achieved(rows: Sequence[Row], choice: dict[str, Any]) -> float | None:
    """Median tokens/s of the rows measured with the chosen configuration (None if none were)."""
    ub = choice.get("ubatch")
    b = choice.get("batch")
    fa = choice.get("flash_attn")
    k, v = choice.get("cache_type_k"), choice.get("cache_type_v")
    want_ub = ub if isinstance(ub, int) else DEFAULT_UBATCH
    want_b = b if isinstance(b, int) else DEFAULT_BATCH
    want_k = k if isinstance(k, str) and k != "default" else DEFAULT_KV
    want_v = v if isinstance(v, str) and v != "default" else DEFAULT_KV
    hits = [r.tps for r in rows if r.cfg[0] == choice["backend"] and r.cfg[2] == want_ub and r.cfg[1] == want_b
            and r.cfg[4] == want_k and r.cfg[5] == want_v
            and (fa not in ("on", "off") or r.cfg[3] == fa)]
    return median(hits) if hits else None


def _achieved_backend(rows: Sequence[Row], choice: dict[str, Any]) -> float | None:
    """The best configuration of the chosen backend (median of its repeats); None if not measured."""
    return _best([r for r in rows if r.cfg[0] == choice["backend"]])


def _r2(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def _best(rows: Sequence[Row]) -> float | None:
    """Tokens/s of the best measured configuration (median of its repeats); None without rows."""
    return max(config_medians(rows).values(), default=None)


def static_choice(available: Sequence[str]) -> dict[str, Any]:
    backend = next(b for b in STATIC_ORDER if b in available)
    return {"backend": backend}


def context_of(proto: Proto, scenario: str, available: Sequence[str]) -> dict[str, Any]:
    """What engine.context would put in the context for this hardware x model, as far as the data tells."""
    ctx: dict[str, Any] = {"recipe": "llamacpp", "scenario": scenario, "vendor": proto.vendor,
                           "memclass": proto.memclass, "backends": frozenset(available),
                           "moe": proto.moe, "gpu_count": proto.gpu_count,
                           "unified": proto.memclass == "unified"}
    if proto.archetype:
        ctx["archetype"] = frozenset(proto.backoff or (proto.archetype,))
        tail = ID_TAIL.search(proto.archetype)
        if tail:  # what engine.context takes from the Archetype
            ctx["mem_bucket_gb"], ctx["bw_tier"] = int(tail.group(1)), int(tail.group(2))
    if proto.memclass == "cpu":
        ctx["gpu_count"] = 0
    for key in ("family", "arch", "model_class", "precision", "size_class"):
        val = getattr(proto, key)
        if val:
            ctx[key] = val
    return ctx


def make_chooser(rulebook_roots: Sequence[str | Path]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Resolution as engine.recommend does it (engine.resolve: phase 1 the backend among the available
    ones, phase 2 the rest), with the real loader and evaluator. Where no rule proposes an available
    backend, Lemonade's static order decides; a parameter no rule sets is left out (llama.cpp's default)."""
    from engine.evaluators import make_evaluator
    from engine.resolve import ResolutionError, resolve_backend, resolve_parameters
    from engine.rulebook import load_rulebook
    from engine.trace import TraceRecorder

    ev = make_evaluator(load_rulebook(*rulebook_roots), "python")
    cache: dict[tuple, dict[str, Any]] = {}

    def choose(ctx: dict[str, Any]) -> dict[str, Any]:
        key = tuple(sorted((k, tuple(sorted(v)) if isinstance(v, frozenset) else v) for k, v in ctx.items()))
        if key in cache:
            return cache[key]
        rec, seen = TraceRecorder(), set()  # the trace is not kept
        try:
            backend = resolve_backend(ev.match, ctx, {}, rec, seen)[0].value
        except ResolutionError:
            backend = static_choice(sorted(ctx["backends"]))["backend"]
        ctx2 = {**ctx, "backend": backend}
        phase2 = ev.match(ctx2)
        out: dict[str, Any] = {"backend": backend}
        for p in PARAMS:
            try:
                decided, _ = resolve_parameters(lambda _ctx: phase2, ctx2, (p,), {}, rec, seen)
            except ResolutionError:
                continue
            out[p] = decided[p].value
        cache[key] = out
        return out

    return choose


def backtest(rows: Sequence[Row], protos: dict[tuple[str, str], Proto], fixed_roots: Sequence[str | Path], *,
             progress: Callable[[], None] | None = None) -> BacktestResult:
    """Leave each model out: curate the rest, recommend for the model's cells, compare with the best measured."""
    rows = canonical(rows)
    by_cell: dict[tuple, list[Row]] = defaultdict(list)
    available: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        by_cell[r.cell].append(r)
        available[r.cell[0]].add(r.cfg[0])
    models = sorted({c[1] for c in by_cell})
    policies: dict[str, dict[str, Policy]] = defaultdict(lambda: defaultdict(Policy))
    examples: list[dict[str, Any]] = []
    n_cells = 0
    with tempfile.TemporaryDirectory(prefix="backtest-") as tmp:
        for model in models:
            if progress:
                progress()
            train = [r for r in rows if r.cell[1] != model]
            out = Path(tmp) / "generated"
            write(curate_rows(train, protos), out)
            choose = make_chooser([*fixed_roots, out])
            for cell in sorted(c for c in by_cell if c[1] == model):
                scen = scenario_of(cell)
                if scen is None:
                    continue
                n_cells += 1
                cell_rows = by_cell[cell]
                avail = sorted(available[cell[0]])
                metric = cell[2]
                best = _best(cell_rows)
                contested = len({r.cfg[0] for r in cell_rows}) > 1
                subsets = ["all"] + (["contested"] if contested else [])
                cur = choose(context_of(protos[(cell[0], cell[1])], scen, avail))
                sta = static_choice(avail)
                # strict: the exact recommended configuration must have been measured. backend-only:
                # each policy's backend at that backend's best measured parameters, isolating the
                # backend decision from parameter coverage (same footing for both policies)
                for name, choice, how in (("curated", cur, _achieved), ("static", sta, _achieved),
                                          ("curated-backend-only", cur, _achieved_backend),
                                          ("static-backend-only", sta, _achieved_backend)):
                    got = how(cell_rows, choice)
                    for sub in subsets:
                        pol = policies[sub][f"{name}:{metric}"]
                        if got is None:
                            pol.unmeasured += 1
                        else:
                            pol.regrets.append(max(0.0, 1.0 - got / best))
                if contested and len(examples) < 400:
                    examples.append({"cell": list(cell), "scenario": scen, "curated": cur, "static": sta,
                                     "best": round(best, 2), "curated_tps": _r2(_achieved(cell_rows, cur)),
                                     "static_tps": _r2(_achieved(cell_rows, sta))})
    return BacktestResult(policies={k: dict(v) for k, v in policies.items()}, models=len(models),
                          cells=n_cells, examples=examples)
