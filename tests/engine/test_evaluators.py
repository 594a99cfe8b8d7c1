"""Both evaluators agree (same ordered hits) on random rulebooks and contexts; contexts must be typed."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from engine import ir
from engine.evaluators import CompileError, ContextError, make_evaluator
from engine.evaluators.python import PythonEvaluator
from tests.strategies import ir_rulebooks, typed_contexts

try:
    from engine.evaluators import durable
except ImportError:  # Python >= 3.13: durable-rules does not import; the python evaluator is tested alone
    durable = None
needs_durable = pytest.mark.skipif(durable is None, reason="durable-rules imports only on Python <= 3.12")


def _reference(book: ir.Rulebook, ctx: dict) -> tuple[str, ...]:
    """ir.matches over every rule, sorted by (salience, index): the specification."""
    hits = [r for r in book.rules if ir.matches(r, ctx)]
    return tuple(r.id for r in sorted(hits, key=lambda r: (r.salience, r.index)))


def _ids(rules) -> tuple[str, ...]:
    return tuple(r.id for r in rules)


@needs_durable
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(book=ir_rulebooks(typed=False), contexts=st.lists(typed_contexts(), min_size=1, max_size=6))
def test_durable_and_python_give_identical_ordered_matches(book, contexts):
    dev = durable.DurableEvaluator(book)
    pev = PythonEvaluator(book)
    try:
        for ctx in contexts:
            note(f"context {ctx!r}")
            want = _reference(book, {k: (float(v) if k == "params_b" else v) for k, v in ctx.items()})
            assert _ids(pev.match(ctx)) == want
            assert _ids(dev.match(ctx)) == want
    finally:
        dev.close()


def _outcome(book: ir.Rulebook, contexts: list[dict], engine: str) -> object:
    """What one evaluator makes of a rulebook and contexts: a compile error, or per context its ordered hits or
    a context error."""
    try:
        ev = make_evaluator(book, engine)
    except CompileError:
        return "compile error"
    try:
        out = []
        for ctx in contexts:
            try:
                out.append(_ids(ev.match(ctx)))
            except ContextError:
                out.append("context error")
        return out
    finally:
        if hasattr(ev, "close"):
            ev.close()


@needs_durable
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(book=ir_rulebooks(max_rules=8, edge=True), contexts=st.lists(typed_contexts(edge=True), min_size=1, max_size=4))
def test_at_and_past_the_value_limits_both_evaluators_give_the_same_answer_or_the_same_error(book, contexts):
    """Long strings (over 4,096 bytes, sharing long prefixes), lone surrogates, numbers past +-2**53, inf and NaN:
    durable-rules compares none of them faithfully, so both evaluators refuse them alike; what they accept they
    answer exactly as the specification (ir.matches) does."""
    got = _outcome(book, contexts, "durable")
    assert got == _outcome(book, contexts, "python")
    if got != "compile error":
        for ctx, hits in zip(contexts, got, strict=True):
            if hits != "context error":
                assert hits == _reference(book, {k: (float(v) if k == "params_b" else v) for k, v in ctx.items()})


@needs_durable
def test_firing_order_is_salience_then_definition_index():
    rules = tuple(ir.Rule(id=f"r{i}", description="d", layer=layer, priority=prio, when=(), set={"batch": 64},
                          source="x.yaml:1", index=i)
                  for i, (layer, prio) in enumerate([("archetype", 5), ("recipe-default", 0), ("archetype", 5),
                                                     ("family", 999), ("archetype", 0)]))
    book = ir.Rulebook(rules=rules, digest="0" * 64)
    for ev in (PythonEvaluator(book), durable.DurableEvaluator(book)):
        assert _ids(ev.match({})) == ("r1", "r3", "r4", "r0", "r2")


@pytest.mark.parametrize("bad", [
    {"params_b": "24"},  # a string number: durable would compare it as a string
    {"recipe": None},  # None: durable treats it like a missing key for $neq, Python does not
    {"params_b": math.nan},
    {"params_b": math.inf},
    {"params_b": 10**400},  # an int too big for a float: a ContextError, not an OverflowError
    {"mem_bucket_gb": True},  # bool is not an int here
    {"mem_bucket_gb": 24.0},
    {"unified": 1},
    {"no_such_attribute": "x"},
    {"backends": [1, 2]},
])
@pytest.mark.parametrize("engine", ["python", pytest.param("durable", marks=needs_durable)])
def test_untyped_contexts_are_rejected_before_matching(bad, engine):
    rule = ir.Rule(id="r", description="d", layer="family", priority=0,
                   when=(ir.Condition("recipe", "ne", "vllm"),), set={"batch": 64}, source="x:1")
    ev = make_evaluator(ir.Rulebook(rules=(rule,), digest="1" * 64), engine)
    with pytest.raises(ContextError) as err:
        ev.match(bad)
    assert next(iter(bad)) in str(err.value)
    assert isinstance(err.value, ValueError)


@needs_durable
def test_set_attributes_accept_a_string_or_any_collection_of_strings():
    rule = ir.Rule(id="r", description="d", layer="archetype", priority=0,
                   when=(ir.Condition("archetype", "eq", "backoff-id"),), set={"batch": 64}, source="x:1")
    book = ir.Rulebook(rules=(rule,), digest="2" * 64)
    for ev in (PythonEvaluator(book), durable.DurableEvaluator(book)):
        assert _ids(ev.match({"archetype": "backoff-id"})) == ("r",)
        assert _ids(ev.match({"archetype": ("exact-id", "backoff-id")})) == ("r",)
        assert _ids(ev.match({"archetype": frozenset({"exact-id"})})) == ()


def test_python_index_does_not_lose_rules_without_equalities():
    rules = (
        ir.Rule(id="eq", description="d", layer="family", priority=0, when=(ir.Condition("recipe", "eq", "vllm"),),
                set={"batch": 64}, source="x:1", index=0),
        ir.Rule(id="range", description="d", layer="family", priority=0,
                when=(ir.Condition("params_b", "ge", 7.0),), set={"batch": 64}, source="x:2", index=1),
        ir.Rule(id="set-in", description="d", layer="family", priority=0,
                when=(ir.Condition("backends", "in", ("rocm", "cuda")),), set={"batch": 64}, source="x:3", index=2),
    )
    ev = PythonEvaluator(ir.Rulebook(rules=rules, digest="3" * 64))
    assert _ids(ev.match({"recipe": "vllm", "params_b": 8, "backends": {"cuda"}})) == ("eq", "range", "set-in")
    assert _ids(ev.match({"recipe": "llamacpp", "params_b": 6.5})) == ()


@needs_durable
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(book=ir_rulebooks(min_rules=5, typed=False), contexts=st.lists(typed_contexts(), min_size=1, max_size=4))
def test_durable_agrees_when_in_lists_expand_and_rules_spread_over_many_shards(book, contexts):
    """The other compile paths: `in` expanded into variants (no derived keys) and tiny shards."""
    from unittest import mock

    from engine.evaluators import _durable_plan as plan_mod

    with mock.patch.object(plan_mod, "MAX_IN_KEYS", 0), mock.patch.object(plan_mod, "MAX_STACK", 20), \
            mock.patch.object(plan_mod, "SHARD_RULES", 4):
        dev = durable.DurableEvaluator(book)
    try:
        compiled = sum(dev.pattern_counts)
        assert dev.shard_count >= compiled / 4
        for ctx in contexts:
            want = _reference(book, {k: (float(v) if k == "params_b" else v) for k, v in ctx.items()})
            assert _ids(dev.match(ctx)) == want
    finally:
        dev.close()


@settings(max_examples=100, deadline=None)
@given(book=ir_rulebooks(typed=False), contexts=st.lists(typed_contexts(), min_size=1, max_size=6))
def test_python_evaluator_index_equals_the_reference(book, contexts):
    """Runs on every Python (the 3.13+ path): the equality index never changes the result."""
    ev = PythonEvaluator(book)
    for ctx in contexts:
        assert _ids(ev.match(ctx)) == _reference(book, {k: (float(v) if k == "params_b" else v)
                                                        for k, v in ctx.items()})
