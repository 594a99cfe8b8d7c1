"""Backtests (leave one model out, or one GPU architecture out): regret of the curated rulebook vs Lemonade's static
backend order, per phase and GPU family, for the backend decision and for the whole configuration."""

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
    policies: dict[str, dict[str, Policy]]  # "subset|family" -> "curated:tg" ... -> Policy
    models: int
    cells: int
    examples: list[dict[str, Any]]
    holdout: str = "model"
    units: int = 0  # held-out units (models, or GPU architectures)

    def table(self) -> list[dict[str, Any]]:
        out = []
        for key in sorted(self.policies):
            subset, _, family = key.partition("|")
            for pkey in sorted(self.policies[key]):
                policy, metric = pkey.split(":")
                out.append({"subset": subset, "family": family or "all", "policy": policy, "metric": metric,
                            **self.policies[key][pkey].summary()})
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


def unit_of(holdout: str, cell: tuple, proto: Proto) -> str:
    """What one fold holds out: the model, or the GPU (its architecture: every machine and card count with it)."""
    if holdout == "model":
        return cell[1]
    return proto.arch or (f"cpu:{proto.vendor}" if proto.memclass == "cpu" else cell[0])


def family_of(proto: Proto) -> str:
    return proto.family or ("cpu" if proto.memclass == "cpu" else proto.vendor)


def _excluder(fixed_roots: Sequence[str | Path]) -> Callable[[dict[str, Any]], frozenset[str]]:
    """Backends a known-failure rule (rulebook/models/known-failures.yaml) moves away from in a context: their
    speed is not a valid option (wrong output or a load that never finishes), for either policy."""
    from engine.ir import holds
    from engine.rulebook import load_rulebook

    roots = [Path(r) for r in fixed_roots if (Path(r) / "known-failures.yaml").is_file() or Path(r).name == "models"]
    rules = [r for r in (load_rulebook(*roots).rules if roots else ())
             if r.id.startswith("known-failure-") and "backend" in r.set]

    def excluded(ctx: dict[str, Any]) -> frozenset[str]:
        out = set()
        for r in rules:
            failing = r.id.split("-")[2]
            if failing != r.set["backend"] and all(holds(c, ctx) for c in r.when):
                out.add(failing)
        return frozenset(out)

    return excluded


LEMONADE_BACKENDS = frozenset(STATIC_ORDER)  # sycl / opencl rows (other builds) are not options in Lemonade


def backtest(rows: Sequence[Row], protos: dict[tuple[str, str], Proto], fixed_roots: Sequence[str | Path], *,
             holdout: str = "model", known_failures: bool = True,
             progress: Callable[[], None] | None = None) -> BacktestResult:
    """Hold each unit out (a model, or a GPU architecture), curate the rest, recommend for the held-out cells and
    compare with the best measured configuration of a backend no known failure excludes there.

    `known_failures=False` measures speed alone: the known-failure rules (rulebook/models/) are left out of the
    rulebook and of the best, so a backend that gives wrong output competes on its speed."""
    if holdout not in ("model", "hardware"):
        raise ValueError(f"holdout: 'model' or 'hardware', got {holdout!r}")
    if not known_failures:
        fixed_roots = [r for r in fixed_roots if not (Path(r) / "known-failures.yaml").is_file()]
    rows = canonical([r for r in rows if r.cfg[0] in LEMONADE_BACKENDS])
    by_cell: dict[tuple, list[Row]] = defaultdict(list)
    available: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        by_cell[r.cell].append(r)
        available[r.cell[0]].add(r.cfg[0])
    unit = {c: unit_of(holdout, c, protos[(c[0], c[1])]) for c in by_cell}
    units = sorted(set(unit.values()))
    excluded = _excluder(fixed_roots)
    policies: dict[str, dict[str, Policy]] = defaultdict(lambda: defaultdict(Policy))
    examples: list[dict[str, Any]] = []
    n_cells = 0
    with tempfile.TemporaryDirectory(prefix="backtest-") as tmp:
        for u in units:
            if progress:
                progress()
            held = {c for c in by_cell if unit[c] == u}
            train = [r for r in rows if r.cell not in held]
            if not train:
                continue
            out = Path(tmp) / "generated"
            write(curate_rows(train, protos), out)
            choose = make_chooser([*fixed_roots, out])
            for cell in sorted(held):
                scen = scenario_of(cell)
                if scen is None:
                    continue
                proto = protos[(cell[0], cell[1])]
                avail = sorted(available[cell[0]])
                ctx = context_of(proto, scen, avail)
                bad = excluded(ctx)
                cell_rows = [r for r in by_cell[cell] if r.cfg[0] not in bad]
                if not cell_rows:
                    continue
                n_cells += 1
                metric = cell[2]
                best = _best(cell_rows)
                contested = len({r.cfg[0] for r in cell_rows}) > 1
                cur = choose(ctx)
                sta = static_choice(avail)
                fam = family_of(proto)
                keys = ["all|", f"all|{fam}"] + (["contested|", f"contested|{fam}"] if contested else [])
                # strict: the exact recommended configuration must have been measured. backend-only: each policy's
                # backend at that backend's best measured parameters (the backend decision alone)
                for name, choice, how in (("curated", cur, _achieved), ("static", sta, _achieved),
                                          ("curated-backend-only", cur, _achieved_backend),
                                          ("static-backend-only", sta, _achieved_backend)):
                    got = None if choice["backend"] in bad else how(cell_rows, choice)
                    for key in keys:
                        pol = policies[key][f"{name}:{metric}"]
                        if got is None and choice["backend"] in bad:
                            pol.regrets.append(1.0)  # a backend that gives wrong output achieves nothing
                        elif got is None:
                            pol.unmeasured += 1
                        else:
                            pol.regrets.append(max(0.0, 1.0 - got / best))
                if contested and len(examples) < 400:
                    examples.append({"cell": list(cell), "scenario": scen, "curated": cur, "static": sta,
                                     "best": round(best, 2), "curated_tps": _r2(_achieved(cell_rows, cur)),
                                     "static_tps": _r2(_achieved(cell_rows, sta)), "excluded": sorted(bad)})
    models = len({c[1] for c in by_cell})
    return BacktestResult(policies={k: dict(v) for k, v in policies.items()}, models=models, cells=n_cells,
                          examples=examples, holdout=holdout, units=len(units))
