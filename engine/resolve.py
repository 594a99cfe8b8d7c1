"""Salience resolution: backend first, then every parameter; decisions carry their fallback chain."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from engine.errors import EngineError
from engine.ir import LAYER_BAND, PRIORITY_MAX, Rule
from engine.trace import TraceRecorder
from facts.memory import CACHE_TYPES as KV_LAYOUT
from facts.memory import QUANTISED

USER_OVERRIDE_ID = "user-override"
# a user override beats every rule, including a user-layer rule at priority 999
OVERRIDE_SALIENCE = LAYER_BAND["user"] + PRIORITY_MAX + 1
GUARD_LAYER = "guard"


class ResolutionError(EngineError, LookupError):
    """The rulebook leaves a parameter without any value (a rulebook bug; lint reports it first)."""

    def __init__(self, parameter: str, message: str):
        self.parameter = parameter
        super().__init__(f"parameter {parameter!r}: {message}")


class BackendUnavailableError(EngineError, ValueError):
    """A user override asks for a backend that is not available for the recipe here (exit 2, like any
    EngineError)."""

    def __init__(self, backend: str, recipe: str, available: Iterable[str]):
        self.backend, self.recipe, self.available = backend, recipe, tuple(sorted(available))
        super().__init__(f"backend {backend!r} is not available for recipe {recipe!r} on this machine "
                         f"(available: {', '.join(self.available) or 'none'})")


@dataclass(frozen=True)
class Candidate:
    """A value some rule (or the user, or a guard) proposed for one parameter."""

    rule_id: str
    layer: str
    salience: int
    value: Any
    source: str


@dataclass(frozen=True)
class Decision:
    """The value a parameter resolved to, who set it, and the candidates it overrode (best first)."""

    parameter: str
    value: Any
    rule_id: str
    layer: str
    salience: int
    source: str
    chain: tuple[Candidate, ...] = ()

    def winner(self) -> Candidate:
        return Candidate(self.rule_id, self.layer, self.salience, self.value, self.source)


def _order(c: Candidate) -> tuple[int, str]:
    # highest salience first; equal salience broken by rule id, never by rule or file order
    return (-c.salience, c.rule_id)


def candidates_for(parameter: str, rules: Iterable[Rule],
                   overrides: Mapping[str, Any]) -> list[Candidate]:
    """All candidates for one parameter, best first."""
    out = [Candidate(r.id, r.layer, r.salience, r.set[parameter], r.source)
           for r in rules if parameter in r.set]
    if parameter in overrides:
        out.append(Candidate(USER_OVERRIDE_ID, "user", OVERRIDE_SALIENCE, overrides[parameter], "--set"))
    out.sort(key=_order)
    return out


def _emit_matches(rec: TraceRecorder, rules: Iterable[Rule], phase: int, seen: set[str]) -> None:
    for r in rules:
        if r.id not in seen:
            seen.add(r.id)
            rec.emit("match", rule_id=r.id, salience=r.salience, source=r.source,
                     message=f"phase {phase}: all {len(r.when)} condition(s) hold")


def _propose(rec: TraceRecorder, parameter: str, cands: list[Candidate]) -> None:
    for c in cands:
        rec.emit("propose", rule_id=c.rule_id, parameter=parameter, salience=c.salience, value=c.value,
                 source=c.source, message=c.layer)


def _decide(rec: TraceRecorder, parameter: str, win: Candidate, rest: list[Candidate]) -> Decision:
    rec.emit("choose", rule_id=win.rule_id, parameter=parameter, salience=win.salience, value=win.value,
             source=win.source, message=f"{win.layer}; overrides {len(rest)} candidate(s)")
    return Decision(parameter, win.value, win.rule_id, win.layer, win.salience, win.source, tuple(rest))


def resolve_backend(match: Callable[[Mapping[str, Any]], tuple[Rule, ...]], context: Mapping[str, Any],
                    overrides: Mapping[str, Any], rec: TraceRecorder,
                    seen: set[str]) -> tuple[Decision, tuple[Rule, ...]]:
    """Phase 1: the highest-salience available backend; unavailable candidates are rejected."""
    matched = match(context)
    _emit_matches(rec, matched, 1, seen)
    cands = candidates_for("backend", matched, overrides)
    _propose(rec, "backend", cands)
    available = context.get("backends")
    recipe = context.get("recipe", "?")
    if available is None:
        rec.emit("note", parameter="backend",
                 message=f"available backends for {recipe} unknown: candidates are not filtered")
    kept: list[Candidate] = []
    for c in cands:
        if available is not None and c.value not in available:
            if c.rule_id == USER_OVERRIDE_ID:
                raise BackendUnavailableError(c.value, recipe, available)
            rec.emit("reject", rule_id=c.rule_id, parameter="backend", salience=c.salience, value=c.value,
                     source=c.source, message=f"{c.value} is not available for {recipe} here "
                     f"(available: {', '.join(sorted(available))})")
        else:
            kept.append(c)
    if not kept:
        raise ResolutionError("backend", f"no rule proposes an available backend for recipe {recipe!r} "
                              f"(available: {', '.join(sorted(available or ())) or 'unknown'})")
    return _decide(rec, "backend", kept[0], [c for c in cands if c is not kept[0]]), matched


def resolve_parameters(match: Callable[[Mapping[str, Any]], tuple[Rule, ...]], context: Mapping[str, Any],
                       parameters: Iterable[str], overrides: Mapping[str, Any], rec: TraceRecorder,
                       seen: set[str]) -> tuple[dict[str, Decision], tuple[Rule, ...]]:
    """Phase 2: every other parameter, with `backend` in the context.

    A matched rule that also sets `backend` to a backend that was not chosen contributes nothing:
    its other settings were written for that backend.
    """
    chosen = context["backend"]
    matched = match(context)
    _emit_matches(rec, matched, 2, seen)
    usable: list[Rule] = []
    for r in matched:
        if "backend" in r.set and r.set["backend"] != chosen:
            rec.emit("skip", rule_id=r.id, salience=r.salience, source=r.source,
                     message=f"sets backend {r.set['backend']}, but {chosen} was chosen")
        else:
            usable.append(r)
    decisions: dict[str, Decision] = {}
    for parameter in parameters:
        if parameter == "backend":
            continue
        cands = candidates_for(parameter, usable, overrides)
        if not cands:
            raise ResolutionError(parameter, "no matching rule sets it; every parameter needs a "
                                  "recipe-default rule (run `engine lint`)")
        _propose(rec, parameter, cands)
        decisions[parameter] = _decide(rec, parameter, cands[0], cands[1:])
    return decisions, matched


def guard_change(decision: Decision, value: Any, rule_id: str, source: str, rec: TraceRecorder,
                 message: str) -> Decision:
    """A guard replaces a decided value; the replaced winner moves to the head of the chain."""
    rec.emit("choose", rule_id=rule_id, parameter=decision.parameter, salience=0, value=value,
             source=source, message=f"{GUARD_LAYER}: {message}")
    return Decision(decision.parameter, value, rule_id, GUARD_LAYER, 0, source,
                    (decision.winner(), *decision.chain))


# ---- guards that keep a resolved set of values runnable -------------------------------------------

# bits per cached element, from the memory model's (block, bytes per block) table
_KV_BITS = {t: 8 * size / block for t, (block, size) in KV_LAYOUT.items()}
LLAMA_DEFAULT_BATCH = 2048  # llama.cpp's -b default
_SELF = "engine/resolve.py"


def consistency_guards(decisions: dict[str, Decision], rec: TraceRecorder) -> None:
    """Flash-attention / KV-cache / batch consistency, in place (memory is guarded separately)."""
    fa, ctv, ctk = decisions.get("flash_attn"), decisions.get("cache_type_v"), decisions.get("cache_type_k")
    if ctv is not None and fa is not None and ctv.value in QUANTISED and fa.value != "on":
        if ctv.rule_id == USER_OVERRIDE_ID and fa.rule_id != USER_OVERRIDE_ID:
            decisions["flash_attn"] = guard_change(
                fa, "on", "kv-quant-needs-fa", _SELF, rec,
                f"the requested quantised V cache ({ctv.value}) needs flash attention on")
        else:
            decisions["cache_type_v"] = ctv = guard_change(
                ctv, "f16", "kv-quant-needs-fa", _SELF, rec,
                f"a quantised V cache ({ctv.value}) needs flash attention on (flash_attn={fa.value}); "
                "falling back to f16")
    backend = decisions.get("backend")
    if (backend is not None and backend.value == "vulkan" and ctk is not None and ctv is not None
            and ctk.value != ctv.value and ctk.value in _KV_BITS and ctv.value in _KV_BITS):
        # Vulkan's flash attention needs matching K/V types; keep the more precise of the two
        lower, higher = (ctk, ctv) if _KV_BITS[ctk.value] < _KV_BITS[ctv.value] else (ctv, ctk)
        decisions[lower.parameter] = guard_change(
            lower, higher.value, "vulkan-kv-match", _SELF, rec,
            f"vulkan needs matching K/V cache types ({ctk.value} vs {ctv.value}); using {higher.value}")
    extra_args_guard(decisions, rec)
    batch, ubatch = decisions.get("batch"), decisions.get("ubatch")
    if batch is not None and ubatch is not None and isinstance(ubatch.value, int):
        limit = batch.value if isinstance(batch.value, int) else LLAMA_DEFAULT_BATCH
        if ubatch.value > limit:
            decisions["ubatch"] = guard_change(ubatch, limit, "ubatch-le-batch", _SELF, rec,
                                               f"ubatch {ubatch.value} > batch {limit}; ubatch = batch")


def extra_args_guard(decisions: dict[str, Decision], rec: TraceRecorder) -> None:
    """Drop extra arguments the chosen backend does not allow (e.g. a GPU-only flag on cpu)."""
    from engine.params import EXTRA_ARGS, extra_args_problems

    d, backend = decisions.get("extra_args"), decisions.get("backend")
    if d is None or backend is None or not d.value:
        return
    args, kept, dropped, i = tuple(d.value), [], [], 0
    while i < len(args):
        kind = EXTRA_ARGS.get(args[i], (None, None))[0]
        chunk = args[i:i + (1 if kind is None else 2)]
        (dropped if extra_args_problems(chunk, backend.value) else kept).extend(chunk)
        i += len(chunk)
    if dropped:
        decisions["extra_args"] = guard_change(
            d, tuple(kept), "extra-args-allowlist", "engine/params.py", rec,
            f"dropped {' '.join(dropped)}: not allowed with backend {backend.value}")


MEMORY_PARAMS = ("ctx_size", "n_gpu_layers", "n_cpu_moe")
# cache types the memory guard corrects when llama.cpp would refuse them (e.g. quantised V, MLA K != V)
CACHE_PARAMS = ("cache_type_k", "cache_type_v")


def memory_guard(decisions: dict[str, Decision], fit: Any, rec: TraceRecorder) -> None:
    """Apply facts.memory.guard's result (`fit`): concrete, fitting ctx_size / n_gpu_layers / n_cpu_moe,
    and the cache-type corrections llama.cpp needs.

    A user override is kept as asked, with a note when the memory fit disagrees.
    """
    for line in fit.notes:  # an estimated model's note comes with them
        rec.emit("note", rule_id="memory-fit", message=line)
    for parameter in (*MEMORY_PARAMS, *CACHE_PARAMS):
        d = decisions.get(parameter)
        if d is None or parameter not in fit.changed:  # only what the guard changed, with its reason
            continue
        _, value, reason = fit.changed[parameter]
        if d.rule_id == USER_OVERRIDE_ID:
            rec.emit("note", rule_id="memory-fit", parameter=parameter, value=value,
                     message=f"kept the user's {parameter}={d.value}; the memory fit suggests {value} ({reason})")
            continue
        decisions[parameter] = guard_change(d, value, "memory-fit", "facts/memory.py", rec, str(reason))
