"""Salience resolution: winners, fallback chains, ties, backend rejection, guards (engine.resolve)."""

from __future__ import annotations

import random

import pytest
from hypothesis import assume, given, note, settings
from hypothesis import strategies as st

from engine import ir
from engine.resolve import (
    OVERRIDE_SALIENCE,
    BackendUnavailableError,
    ResolutionError,
    resolve_backend,
    resolve_parameters,
)
from engine.trace import TraceRecorder
from tests.strategies import RULE_ATTRS, RULE_PARAMS, ir_rules


def rule(rid: str, layer: str, priority: int, sets: dict, when: tuple = (), line: int = 1) -> ir.Rule:
    return ir.Rule(rid, "test", layer, priority, tuple(ir.Condition(*c) for c in when), sets, f"t.yaml:{line}")


def matcher(rules):
    """Reference matcher: ir.matches, ascending (salience, index) like every evaluator."""
    def match(ctx):
        return tuple(sorted((r for r in rules if ir.matches(r, ctx)), key=lambda r: (r.salience, r.index)))
    return match


def run_all(rules, ctx, params=("ubatch", "flash_attn", "threads", "mmap"), overrides=None):
    rec = TraceRecorder()
    seen: set[str] = set()
    backend, _ = resolve_backend(matcher(rules), ctx, overrides or {}, rec, seen)
    decisions, _ = resolve_parameters(matcher(rules), {**ctx, "backend": backend.value}, params,
                                      overrides or {}, rec, seen)
    return {"backend": backend, **decisions}, rec.freeze()


BASE = [rule("def-backend", "recipe-default", 0, {"backend": "cpu"}),
        *(rule(f"def-{p}", "recipe-default", 0, {p: "default"}) for p in RULE_PARAMS)]
CTX = {"recipe": "llamacpp", "backends": frozenset({"cpu", "vulkan", "rocm"}), "os": "linux",
       "precision": "quantized", "scenario": "chat"}


def test_highest_salience_wins_and_chain_lists_the_rest_best_first():
    rules = [*BASE, rule("fam", "family", 5, {"ubatch": 512}), rule("arch", "archetype", 1, {"ubatch": 1024}),
             rule("over", "model-overlay", 0, {"ubatch": 256}, when=(("os", "eq", "windows"),))]
    d, _ = run_all(rules, CTX)
    assert (d["ubatch"].value, d["ubatch"].rule_id, d["ubatch"].layer, d["ubatch"].salience) == (
        1024, "arch", "archetype", 3001)
    assert [c.rule_id for c in d["ubatch"].chain] == ["fam", "def-ubatch"]
    assert d["ubatch"].source == "t.yaml:1"


def test_equal_salience_tie_is_broken_by_rule_id_not_order():
    a = rule("b-rule", "archetype", 7, {"ubatch": 256})
    b = rule("a-rule", "archetype", 7, {"ubatch": 1024})
    for rules in ([*BASE, a, b], [*BASE, b, a]):
        d, _ = run_all(rules, CTX)
        assert d["ubatch"].rule_id == "a-rule"


def test_unavailable_backend_is_rejected_and_next_candidate_chosen():
    rules = [*BASE, rule("want-cuda", "archetype", 0, {"backend": "cuda"}),
             rule("want-rocm", "family", 0, {"backend": "rocm"})]
    d, trace = run_all(rules, CTX)
    assert d["backend"].value == "rocm"
    rejects = [e for e in trace if e.op == "reject"]
    assert [(e.rule_id, e.value) for e in rejects] == [("want-cuda", "cuda")]
    assert "not available" in rejects[0].message
    assert [c.rule_id for c in d["backend"].chain] == ["want-cuda", "def-backend"]  # salience order


def test_user_override_beats_every_rule_and_unavailable_override_is_an_error():
    rules = [*BASE, rule("user-rule", "user", 999, {"ubatch": 256})]
    d, _ = run_all(rules, CTX, overrides={"ubatch": 2048})
    assert (d["ubatch"].value, d["ubatch"].rule_id, d["ubatch"].salience) == (2048, "user-override",
                                                                               OVERRIDE_SALIENCE)
    assert d["ubatch"].chain[0].rule_id == "user-rule"
    with pytest.raises(BackendUnavailableError, match="'cuda' is not available"):
        run_all(rules, CTX, overrides={"backend": "cuda"})


def test_a_parameter_no_rule_sets_is_an_engine_error_naming_it():
    with pytest.raises(ResolutionError, match="'mmap'") as err:
        run_all([r for r in BASE if r.id != "def-mmap"], CTX)
    assert err.value.parameter == "mmap"


def test_phase_two_rules_see_the_chosen_backend_and_losing_backend_rules_contribute_nothing():
    rules = [*BASE, rule("vk", "archetype", 0, {"backend": "vulkan", "ubatch": 1024}),
             rule("rocm-fa", "family", 0, {"flash_attn": "on"}, when=(("backend", "eq", "rocm"),)),
             rule("vk-fa", "family", 1, {"flash_attn": "off"}, when=(("backend", "eq", "vulkan"),))]
    d, _ = run_all(rules, CTX)
    assert (d["backend"].value, d["ubatch"].value, d["flash_attn"].value) == ("vulkan", 1024, "off")
    ctx = {**CTX, "backends": frozenset({"cpu", "rocm"})}
    rules.append(rule("rocm", "family", 0, {"backend": "rocm"}))
    d, trace = run_all(rules, ctx)
    assert (d["backend"].value, d["ubatch"].value, d["flash_attn"].value) == ("rocm", "default", "on")
    assert any(e.op == "skip" and e.rule_id == "vk" for e in trace)


def test_no_available_backend_names_the_available_set():
    with pytest.raises(ResolutionError, match="available: cpu"):
        run_all([*BASE, rule("def-backend", "recipe-default", 0, {"backend": "cuda"})][1:],
                {**CTX, "backends": frozenset({"cpu"})})


# ---- properties -----------------------------------------------------------------------------------

contexts = st.fixed_dictionaries({a: st.sampled_from(v) for a, v in RULE_ATTRS.items()}).map(
    lambda c: {**CTX, **c})


@settings(max_examples=150, deadline=None)
@given(ir_rules(), contexts, st.randoms())
def test_result_does_not_depend_on_rule_order(rules, ctx, rnd):
    a, _ = run_all([*BASE, *rules], ctx)
    shuffled = [*BASE, *rules]
    rnd.shuffle(shuffled)
    shuffled = [ir.Rule(r.id, r.description, r.layer, r.priority, r.when, r.set, r.source, index=i)
                for i, r in enumerate(shuffled)]
    b, trace = run_all(shuffled, ctx)
    note(str(trace))
    assert a == b


@settings(max_examples=150, deadline=None)
@given(ir_rules(), contexts, st.sampled_from(sorted(RULE_PARAMS)), st.data())
def test_a_matching_higher_salience_rule_changes_only_what_it_sets(rules, ctx, param, data):
    before, _ = run_all([*BASE, *rules], ctx)
    value = data.draw(st.sampled_from(RULE_PARAMS[param]))
    top = rule("top", "user", 999, {param: value},
               when=tuple((a, "eq", ctx[a]) for a in RULE_ATTRS if data.draw(st.booleans())))
    assume(all(r.salience < top.salience for r in rules))  # strictly higher than every other rule
    after, _ = run_all([*BASE, *rules, top], ctx)
    assert after[param].value == value and after[param].rule_id == "top"
    assert {p: d.value for p, d in after.items() if p != param} == \
        {p: d.value for p, d in before.items() if p != param}


def test_shuffle_helper_really_reorders():  # guards the property above against a no-op shuffle
    rnd = random.Random(1)
    items = list(range(10))
    rnd.shuffle(items)
    assert items != sorted(items)
