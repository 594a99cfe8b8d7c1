"""`recommend(hardware, model)`: the API lemond calls — pure, cached and thread-safe."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from cachetools import LRUCache

from engine.errors import UsageError
from engine.ir import Rule, Rulebook
from engine.resolve import (
    Decision,
    consistency_guards,
    guard_change,
    memory_guard,
    resolve_backend,
    resolve_parameters,
)
from engine.trace import TraceEvent, TraceRecorder

if TYPE_CHECKING:
    from facts.models import Archetype, HardwareFacts, ModelFacts

# Lemonade's bench scenario names and categories (../shared/lemonade/bench_scenarios.json), plus ours.
SCENARIOS: frozenset[str] = frozenset({
    "chat", "coding", "long-context", "embed", "imagegen",
    "chat-short", "chat-long-output", "code-short", "code-explain", "code-debug",
    "context-32k", "context-64k", "context-128k", "context-multi-turn",
    "embed-small-string", "embed-small-array", "embed-long-string", "embed-long-array",
    "image-text0", "image-text1", "image-text2", "image-text3", "image-text4", "image-text5",
    "image-text6", "image-small-cartoon", "image-big-cartoon", "image-small-no-style",
    "image-big-no-style", "image-small-photo", "image-big-photo",
})


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

    def to_dict(self) -> dict[str, Any]:
        return {"tokens_per_s": self.tokens_per_s, "metric": self.metric, "n": self.n, "spread": self.spread,
                "runner_up": dict(self.runner_up) if self.runner_up else None, "sources": list(self.sources),
                "rule_id": self.rule_id, "source": self.source, "note": self.note, "scope": self.scope}


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

    def values(self) -> dict[str, Any]:
        return {p: d.value for p, d in self.decisions.items()}

    def recipe_options(self) -> dict[str, Any]:
        """Lemonade recipe options, e.g. {"llamacpp_backend", "llamacpp_args", "ctx_size"}."""
        from engine.render import recipe_options

        return recipe_options(self.recipe, self.values())


# ---- rulebooks and evaluators, loaded once -------------------------------------------------------

_LOCK = threading.Lock()
_DEFAULT_RULEBOOK: list[Rulebook] = []
_EVALUATORS: dict[tuple[str, str | None], Any] = {}
_CACHE: LRUCache = LRUCache(maxsize=4096)  # content key -> Recommendation
_BY_ID: LRUCache = LRUCache(maxsize=1024)  # identity key -> (facts, model, Recommendation)


def default_rulebook() -> Rulebook:
    """The bundled rulebook, loaded once (lazily, under a lock)."""
    if not _DEFAULT_RULEBOOK:
        with _LOCK:
            if not _DEFAULT_RULEBOOK:
                from engine.rulebook import load_rulebook

                _DEFAULT_RULEBOOK.append(load_rulebook())
    return _DEFAULT_RULEBOOK[0]


def _evaluator(rulebook: Rulebook, name: str | None) -> Any:
    key = (rulebook.digest, name)
    ev = _EVALUATORS.get(key)
    if ev is None:
        with _LOCK:
            ev = _EVALUATORS.get(key)
            if ev is None:
                from engine.evaluators import make_evaluator

                ev = _EVALUATORS[key] = make_evaluator(rulebook, engine=name)
    return ev


def clear_cache() -> None:
    """Forget cached recommendations and compiled evaluators (tests, rulebook reloads)."""
    with _LOCK:
        _CACHE.clear()
        _BY_ID.clear()
        for ev in _EVALUATORS.values():
            ev.close()  # frees durable-rules rulesets (a no-op for the Python evaluator)
        _EVALUATORS.clear()
        _DEFAULT_RULEBOOK.clear()


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


def _freeze(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


# ---- the API ----------------------------------------------------------------------------------------

def recommend(facts: HardwareFacts, model: ModelFacts, *, scenario: str = "chat",
              rulebook: Rulebook | None = None, evaluator: str | None = None,
              overrides: Mapping[str, Any] | None = None, memory_fit: bool = True) -> Recommendation:
    """Backend and llama.cpp parameters for `model` on `facts`, with provenance for every value."""
    if scenario not in SCENARIOS:
        raise UsageError(f"unknown scenario {scenario!r}; expected one of {', '.join(sorted(SCENARIOS))}")
    book = rulebook if rulebook is not None else default_rulebook()
    checked = validate_overrides(overrides)
    over = tuple(sorted((k, _freeze(v)) for k, v in checked.items()))
    id_key = (id(facts), id(model), scenario, book.digest, evaluator, over, memory_fit)
    with _LOCK:  # cachetools caches are not thread-safe (a hit reorders the LRU)
        hit = _BY_ID.get(id_key)
    if hit is not None and hit[0] is facts and hit[1] is model:
        return hit[2]
    key = (facts.model_dump_json(), model.model_dump_json(), scenario, book.digest, evaluator, over,
           memory_fit)
    with _LOCK:
        rec = _CACHE.get(key)
    if rec is None:
        rec = _recommend(facts, model, scenario, book, evaluator, checked, memory_fit)
        with _LOCK:
            rec = _CACHE.setdefault(key, rec)
    with _LOCK:
        _BY_ID[id_key] = (facts, model, rec)
    return rec


def _recommend(hw: HardwareFacts, model: ModelFacts, scenario: str, book: Rulebook,
               evaluator: str | None, overrides: dict[str, Any], memory_fit: bool) -> Recommendation:
    from engine.context import build_context
    from engine.params import PARAMETERS
    from facts.archetype import classify
    from facts.errors import FactsError
    from facts.memory import fit_context, guard

    if "backend" in overrides:
        from engine.params import RECIPE_BACKENDS, backend_allowed

        if not backend_allowed(model.recipe, overrides["backend"]):
            raise UsageError(f"backend {overrides['backend']!r} does not exist for recipe {model.recipe!r} "
                             f"(one of {', '.join(RECIPE_BACKENDS.get(model.recipe, ())) or 'none known'})")
    archetype = classify(hw)
    ev = _evaluator(book, evaluator)
    rec = TraceRecorder()
    fit_facts = None
    if memory_fit:  # without the memory model there are no fit facts and no memory guard
        try:
            fit_facts = fit_context(hw, model)
        except FactsError as err:
            rec.emit("note", rule_id="memory-fit", message=f"no memory facts: {err}")
    context = build_context(hw, archetype, model, scenario=scenario, fit=fit_facts)
    seen: set[str] = set()
    backend, matched1 = resolve_backend(ev.match, context, overrides, rec, seen)
    context2 = {**context, "backend": backend.value}
    decisions, matched2 = resolve_parameters(ev.match, context2, PARAMETERS, overrides, rec, seen)
    decisions = {"backend": backend, **decisions}
    consistency_guards(decisions, rec)
    if memory_fit:
        try:
            fit = guard(hw, model, {p: d.value for p, d in decisions.items()})
        except FactsError as err:  # too little is known to size memory: the rules' values stand
            rec.emit("note", rule_id="memory-fit", message=f"memory guard skipped: {err}")
        else:
            memory_guard(decisions, fit, rec)
    _resolve_threads(decisions, hw, rec)
    by_id = {r.id: r for r in (*matched1, *matched2)}
    return Recommendation(
        archetype=archetype, recipe=model.recipe, scenario=scenario,
        decisions=MappingProxyType({p: decisions[p] for p in PARAMETERS if p in decisions}),
        trace=rec.freeze(), evaluator=ev.name, rulebook=book.name, rulebook_digest=book.digest,
        expected=_expected(backend.value, tuple(matched1)), context=MappingProxyType(context2),
        matched=tuple(by_id),
        rules=book.rules,
    )


def _resolve_threads(decisions: dict[str, Decision], hw: HardwareFacts, rec: TraceRecorder) -> None:
    """`physical-cores` / `performance-cores` become a number (or `default` when unknown)."""
    d = decisions.get("threads")
    if d is None or d.value not in ("physical-cores", "performance-cores"):
        return
    cpu = hw.cpu
    n = cpu.performance_cores if d.value == "performance-cores" else None
    n = n or cpu.physical_cores
    if n:
        decisions["threads"] = guard_change(d, int(n), "threads-from-cores", "engine/recommend.py", rec,
                                            f"{d.value} = {n} on this CPU")
    else:
        decisions["threads"] = guard_change(d, "default", "threads-from-cores", "engine/recommend.py", rec,
                                            f"{d.value} unknown on this CPU; llama.cpp's default applies")


# context attributes that describe the model: evidence of a rule conditioned on one of them is model-specific
MODEL_ATTRIBUTES = frozenset({"architecture", "quant", "precision", "size_class", "model_class", "params_b",
                              "active_params_b", "file_gib", "moe", "embedding", "reranker", "trained_ctx"})


def _expected(backend: str, matched: tuple[Rule, ...]) -> Expected | None:
    """Expected speed: the evidence of the highest-salience matching rule that chose this backend, preferring
    rules conditioned on the model (their numbers were measured on models of this class)."""
    with_speed = [r for r in matched if r.set.get("backend") == backend and r.evidence is not None
                  and not r.evidence.none and r.evidence.median_tps is not None]
    if not with_speed:
        return None
    specific = [r for r in with_speed if any(c.attr in MODEL_ATTRIBUTES for c in r.when)]
    rule = max(specific or with_speed, key=lambda r: (r.salience, r.id))
    ev = rule.evidence
    return Expected(ev.median_tps, ev.metric, ev.n, ev.spread, ev.runner_up, tuple(ev.sources), rule.id,
                    rule.source, ev.note, "model class" if specific else "all models")
