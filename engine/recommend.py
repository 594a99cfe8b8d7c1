"""`recommend(hardware, model)`: the API lemond calls — pure, cached and thread-safe."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from engine.errors import ResolutionError, UsageError
from engine.ir import Rule, Rulebook
from engine.resolve import Decision, resolve_backend, resolve_parameters
from engine.trace import TraceEvent, TraceRecorder

if TYPE_CHECKING:
    from engine.adaptive.expect import Performance
    from engine.evaluators import Evaluator
    from engine.session import Engine
    from engine.verdict import MemoryVerdict
    from facts.models import Archetype, HardwareFacts, ModelFacts

@dataclass(frozen=True)
class Expected:
    """Expected speed, from the evidence of the rule that chose the backend."""

    tokens_per_s: float
    metric: str | None
    n: int | None
    spread: float | None
    runner_up: Mapping[str, Any] | None
    sources: tuple[str, ...]
    rule_id: str
    source: str
    note: str | None = None
    # "model class": measured on models like this one; "all models": a median over every model measured on
    # this hardware (a rough guide only: a 4B and a 120B model differ by 10x)
    scope: str = "model class"
    dispersion: float | None = None  # MAD / median of the tests behind tokens_per_s (evidence.dispersion)

    def to_dict(self) -> dict[str, Any]:
        return {"tokens_per_s": self.tokens_per_s, "metric": self.metric, "n": self.n, "spread": self.spread,
                "runner_up": dict(self.runner_up) if self.runner_up else None, "sources": list(self.sources),
                "rule_id": self.rule_id, "source": self.source, "note": self.note, "scope": self.scope,
                "dispersion": self.dispersion}


@dataclass(frozen=True)
class Recommendation:
    """The answer: a decision per parameter, the trace, and where it came from."""

    archetype: Archetype
    recipe: str
    scenario: str
    decisions: Mapping[str, Decision]
    trace: tuple[TraceEvent, ...]
    evaluator: str
    rulebook: str  # rulebook@<digest12>
    rulebook_digest: str
    expected: Expected | None
    context: Mapping[str, Any]  # the phase-2 context (what the rules saw, with `backend`)
    matched: tuple[str, ...]  # ids of every matched rule, in firing order (phase 1, then new in phase 2)
    rules: tuple[Rule, ...] = field(default=(), compare=False, repr=False)  # for explain's why-not
    memory: MemoryVerdict | None = None  # whether it fits, with the numbers (recipes with a memory model)
    warnings: tuple[str, ...] = ()  # what --force kept although it conflicts
    # expected generation / prompt tokens/s and TTFT for the scenario, with intervals (engine.adaptive.expect)
    performance: Performance | None = field(default=None, compare=False)

    def values(self) -> dict[str, Any]:
        return {p: d.value for p, d in self.decisions.items()}

    def recipe_options(self) -> dict[str, Any]:
        """Lemonade recipe options, e.g. {"llamacpp_backend", "llamacpp_args", "ctx_size"}."""
        from engine.recipes import get

        return get(self.recipe).render(self.values())


# ---- the default Engine per (rulebook, evaluator) -------------------------------------------------

_LOCK = threading.Lock()
_ENGINES: dict[tuple[str | None, str | None], Engine] = {}


def engine_for(rulebook: Rulebook | None = None, evaluator: str | None = None) -> Engine:
    """The shared Engine for a rulebook (None = the bundled one) and evaluator name, made once."""
    key = (rulebook.digest if rulebook is not None else None, evaluator)
    eng = _ENGINES.get(key)
    if eng is None:
        with _LOCK:
            eng = _ENGINES.get(key)
            if eng is None:
                from engine.session import Engine

                eng = _ENGINES[key] = Engine(rulebook, evaluator=evaluator)
    return eng


def default_rulebook() -> Rulebook:
    """The bundled rulebook, loaded once."""
    return engine_for().rulebook


def clear_cache() -> None:
    """Forget the shared engines (their caches and evaluators); calls in flight finish on theirs."""
    with _LOCK:
        engines = list(_ENGINES.values())
        _ENGINES.clear()
    for eng in engines:
        eng.close()


# ---- overrides -------------------------------------------------------------------------------------

def validate_overrides(overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """User-layer values checked against the vocabulary; UsageError names every bad entry."""
    if not overrides:
        return {}
    from pydantic import ValidationError

    from engine.params import PARAMS, validate_params

    unknown = [k for k in overrides if k not in PARAMS]
    if unknown:
        raise UsageError(f"unknown parameter(s) {', '.join(map(repr, unknown))}; "
                         f"known: {', '.join(PARAMS)}")
    try:
        return validate_params(overrides)
    except ValidationError as err:
        lines = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors()]
        raise UsageError("invalid override(s): " + "; ".join(lines)) from None


# ---- the API ----------------------------------------------------------------------------------------

def recommend(facts: HardwareFacts, model: ModelFacts, *, scenario: str = "chat",
              rulebook: Rulebook | None = None, evaluator: str | None = None,
              overrides: Mapping[str, Any] | None = None, memory_fit: bool = True,
              force: bool = False) -> Recommendation:
    """Backend and parameters for `model` on `facts`, with provenance for every value.

    The convenience over a shared `engine.session.Engine` (one per rulebook and evaluator): pure, cached,
    thread-safe. A server that reloads its rulebook holds an Engine of its own.
    """
    return engine_for(rulebook, evaluator).recommend(facts, model, scenario=scenario, overrides=overrides,
                                                     memory_fit=memory_fit, force=force)


def resolve(hw: HardwareFacts, model: ModelFacts, scenario: str, book: Rulebook, ev: Evaluator,
            overrides: Mapping[str, Any], memory_fit: bool, force: bool = False) -> Recommendation:
    """One recommendation, uncached: context -> two-phase resolution -> the recipe's guards.

    A configuration that does not fit (or a user value llama.cpp would refuse) raises a UserError unless
    `force`, which keeps it and lists the conflict in `warnings`; expected speed is then not given."""
    from engine import recipes, scenarios
    from engine.context import build_context
    from engine.recipes.base import Guarded
    from facts.archetype import classify
    from facts.errors import FactsError

    scenarios.check(scenario)
    recipe = recipes.get(model.recipe)
    foreign = [p for p in overrides if p not in recipe.parameters]
    if foreign:
        raise UsageError(f"--set {', '.join(foreign)}: not a parameter of recipe {recipe.name} "
                         f"(its parameters: {', '.join(recipe.parameters)})")
    if "backend" in overrides and overrides["backend"] not in recipe.backends:
        raise UsageError(f"backend {overrides['backend']!r} does not exist for recipe {recipe.name!r} "
                         f"(one of {', '.join(recipe.backends)})")
    archetype = classify(hw)
    rec = TraceRecorder()
    fit_facts = None
    if memory_fit:  # without the memory model there are no fit facts and no memory guard
        try:
            fit_facts = recipe.fit_facts(hw, model)
        except FactsError as err:
            rec.emit("note", rule_id="memory-fit", message=f"no memory facts: {err}")
    context = build_context(hw, archetype, model, scenario=scenario, fit=fit_facts)
    seen: set[str] = set()
    try:
        backend, matched1 = resolve_backend(ev.match, context, overrides, rec, seen)
    except ResolutionError:
        if "backends" in context:  # backends exist, the rulebook proposes none of them: a rulebook gap
            raise
        raise recipe.unavailable(hw, model) from None
    context2 = {**context, "backend": backend.value}
    decisions, matched2 = resolve_parameters(ev.match, context2, recipe.parameters, overrides, rec, seen)
    decisions = {"backend": backend, **decisions}
    guarded = recipe.guard(decisions, hw, model, rec, memory_fit=memory_fit, scenario=scenario,
                           force=force) or Guarded()  # a guard with nothing to report may return None
    by_id = {r.id: r for r in (*matched1, *matched2)}
    # expected speed comes from benchmarks of fully offloaded runs: none for a configuration that does not fit
    # or that puts layers or experts on the CPU
    v = guarded.verdict
    fits = v is None or (v.ok and v.full_offload is not False)
    expected = _expected(backend.value, tuple(matched1), hw, model) if fits else None
    from engine.adaptive.expect import performance

    missing = None if fits else ("the configuration does not fit" if not v.ok else
                                 "layers or experts run on the CPU, and no benchmark covers that placement")
    return Recommendation(
        archetype=archetype, recipe=recipe.name, scenario=scenario,
        decisions=MappingProxyType({p: decisions[p] for p in recipe.parameters if p in decisions}),
        trace=rec.freeze(), evaluator=ev.name, rulebook=book.name, rulebook_digest=book.digest,
        expected=expected, context=MappingProxyType(context2),
        matched=tuple(by_id), rules=book.rules, memory=guarded.verdict, warnings=guarded.warnings,
        performance=performance(expected, backend.value, context2, scenario, missing=missing),
    )


def _predicted(rule: Rule, backend: str, hw: HardwareFacts, model: ModelFacts) -> Expected | None:
    """tokens/s = the roof of this GPU and model (facts.perf.roofline) x the efficiency the rule's basis carries."""
    from facts import perf
    from facts.memory import gpu_budget
    from facts.modelclass import precision

    ev = rule.evidence
    basis = ev.basis or {}
    eff = basis.get("efficiency") or {}
    budget = gpu_budget(hw)
    gpu = hw.gpus[budget.index] if budget is not None and budget.index is not None else None
    phase = str(basis.get("phase", "tg"))
    tokens = perf.bytes_per_token(model.params_b, model.active_params_b, model.quant, precision(model.quant),
                                  model.file_bytes)
    roof = perf.roofline(phase, gpu.bandwidth_gbs if gpu is not None else None, tokens,
                         model.active_params_b or model.params_b)
    if roof is None or backend not in eff:
        return None
    other = next((b for b in eff if b != backend), None)
    runner = {"value": other, "median_tps": round(roof * eff[other], 2)} if other else None
    return Expected(round(roof * eff[backend], 2), f"predicted {phase}", ev.n, basis.get("spread"), runner,
                    tuple(ev.sources), rule.id, rule.source, ev.note, "performance model")


# context attributes that describe the model: evidence of a rule conditioned on one of them is model-specific
MODEL_ATTRIBUTES = frozenset({"architecture", "quant", "precision", "size_class", "model_class", "params_b",
                              "active_params_b", "file_gib", "moe", "embedding", "reranker", "trained_ctx"})


def _expected(backend: str, matched: tuple[Rule, ...], hw: HardwareFacts | None = None,
              model: ModelFacts | None = None) -> Expected | None:
    """Expected speed: the evidence of the highest-salience matching rule that chose this backend, preferring
    rules conditioned on the model (their numbers were measured on models of this class); else the performance
    model's prediction for this GPU and model from a rule derived from it (evidence kind `model`)."""
    with_speed = [r for r in matched if r.set.get("backend") == backend and r.evidence is not None
                  and not r.evidence.none and r.evidence.median_tps is not None]
    if not with_speed:
        derived = [r for r in matched if r.set.get("backend") == backend and r.evidence is not None
                   and r.evidence.kind == "model" and r.evidence.basis]
        if derived and hw is not None and model is not None:
            return _predicted(max(derived, key=lambda r: (r.salience, r.id)), backend, hw, model)
        return None
    specific = [r for r in with_speed if any(c.attr in MODEL_ATTRIBUTES for c in r.when)]
    rule = max(specific or with_speed, key=lambda r: (r.salience, r.id))
    ev = rule.evidence
    return Expected(ev.median_tps, ev.metric, ev.n, ev.spread, ev.runner_up, tuple(ev.sources), rule.id,
                    rule.source, ev.note, "model class" if specific else "all models", ev.dispersion)
