"""Lint checks: each finding on a purpose-built rulebook, and the region logic behind them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import ir
from engine._regions import implies, overlap, reachable
from engine.lint import lint
from engine.rulebook import RulebookReadError
from tests.strategies import ir_conditions, ir_rulebooks, typed_contexts

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "rulebooks"


def _by_code(result) -> dict[str, list]:
    out: dict[str, list] = {}
    for f in result.findings:
        out.setdefault(f.code, []).append(f)
    return out


def test_each_finding_on_the_lint_fixture():
    result = lint(FIX / "lint")
    found = _by_code(result)
    assert sorted(found) == ["conflict", "shadowed", "unreachable"]
    (conflict,) = found["conflict"]
    assert conflict.rule == "rdna3-big-ubatch" and "rdna-small-ubatch" in conflict.message
    assert "ubatch=1024 vs 256" in conflict.message and conflict.severity == "error"
    assert str(conflict).startswith("tests/fixtures/rulebooks/lint/findings.yaml:3: error conflict: ")
    (shadowed,) = found["shadowed"]
    assert shadowed.rule == "small-ctx-shadowed" and shadowed.severity == "warning"
    assert "big-ctx-for-rdna" in shadowed.message and shadowed.line == 27
    (unreachable,) = found["unreachable"]
    assert unreachable.rule == "never-matches" and unreachable.severity == "warning"
    assert (result.errors, result.warnings) == (1, 2)


def test_durable_capacity_is_checked_even_for_the_python_engine(monkeypatch):
    monkeypatch.setenv("LEMONADE_AUTOTUNE_ENGINE", "python")
    (capacity,) = lint(FIX / "capacity").findings
    assert (capacity.code, capacity.severity, capacity.rule) == ("durable-capacity", "error", "too-many-variants")
    assert "75 patterns" in capacity.message and capacity.line == 324


def test_a_clean_rulebook_has_no_findings():
    result = lint(FIX / "good")
    assert result.findings == () and result.rulebook is not None


def test_missing_recipe_defaults_are_errors(tmp_path):
    shutil.copytree(FIX / "good", tmp_path / "rb")
    path = tmp_path / "rb" / "defaults.yaml"
    path.write_text(path.read_text().replace("      mmap: default\n", "").replace("      threads: default\n", ""))
    found = _by_code(lint(tmp_path / "rb"))
    assert sorted(f.message.split("'")[1] for f in found["no-default"]) == ["mmap", "threads"]
    assert all(f.severity == "error" for f in found["no-default"])


def test_a_conditional_recipe_default_does_not_count(tmp_path):
    shutil.copytree(FIX / "good", tmp_path / "rb")
    path = tmp_path / "rb" / "defaults.yaml"
    path.write_text(path.read_text().replace("when: {recipe: llamacpp}\n    set: {backend: cpu}",
                                             "when: {recipe: llamacpp, os: linux}\n    set: {backend: cpu}"))
    (finding,) = _by_code(lint(tmp_path / "rb"))["no-default"]
    assert "'backend'" in finding.message and "only sets it conditionally" in finding.message
    assert (finding.rule, finding.line) == ("default-backend-cpu", 3)


def test_load_errors_become_schema_findings():
    result = lint(FIX / "bad")
    codes = {f.code for f in result.findings}
    assert codes == {"schema", "duplicate-id"} and result.rulebook is None
    assert result.errors == len(result.findings) == 22


def test_unreadable_input_raises():
    with pytest.raises(RulebookReadError):
        lint(FIX / "does-not-exist")


def _rule(*conds: ir.Condition, salience_layer: str = "family") -> ir.Rule:
    return ir.Rule(id="r", description="d", layer=salience_layer, priority=0, when=tuple(conds), set={"batch": 64},
                   source="x:1")


@pytest.mark.parametrize("a, b, want", [
    ([ir.Condition("params_b", "ge", 7.0)], [ir.Condition("params_b", "lt", 7.0)], False),
    ([ir.Condition("params_b", "ge", 7.0)], [ir.Condition("params_b", "le", 7.0)], True),
    ([ir.Condition("mem_bucket_gb", "gt", 7)], [ir.Condition("mem_bucket_gb", "lt", 8)], False),
    ([ir.Condition("mem_bucket_gb", "gt", 7)], [ir.Condition("mem_bucket_gb", "lt", 9)], True),
    ([ir.Condition("mem_bucket_gb", "in", (8, 16))], [ir.Condition("mem_bucket_gb", "not_in", (8, 16))], False),
    ([ir.Condition("backends", "contains", "rocm")], [ir.Condition("backends", "contains", "vulkan")], True),
    ([ir.Condition("backends", "contains", "rocm")], [ir.Condition("backends", "ne", "rocm")], False),
    ([ir.Condition("family", "missing")], [ir.Condition("family", "ne", "x")], False),
    ([ir.Condition("unified", "ne", True)], [ir.Condition("unified", "ne", False)], False),
    ([ir.Condition("family", "eq", "a")], [ir.Condition("recipe", "eq", "vllm")], True),
])
def test_overlap(a, b, want):
    assert overlap(_rule(*a), _rule(*b)) is want


def test_implies():
    wide = _rule(ir.Condition("family", "in", ("rdna3", "rdna3.5")), ir.Condition("params_b", "ge", 7.0))
    narrow = _rule(ir.Condition("family", "eq", "rdna3"), ir.Condition("params_b", "gt", 8.0),
                   ir.Condition("os", "eq", "linux"))
    assert implies(narrow, wide) and not implies(wide, narrow)
    assert implies(_rule(ir.Condition("family", "ne", "x")), _rule(ir.Condition("family", "exists")))
    assert not implies(_rule(), _rule(ir.Condition("family", "exists")))
    assert not reachable(_rule(ir.Condition("params_b", "ge", 80.0), ir.Condition("params_b", "lt", 20.0)))


@settings(max_examples=300, deadline=None)
@given(a=st.lists(ir_conditions(), max_size=3), b=st.lists(ir_conditions(), max_size=3),
       contexts=st.lists(typed_contexts(), min_size=1, max_size=8))
def test_region_logic_is_sound_on_sampled_contexts(a, b, contexts):
    ra, rb = _rule(*a), _rule(*b)
    for ctx in contexts:
        ctx = {k: (float(v) if k == "params_b" else v) for k, v in ctx.items()}
        if ir.matches(ra, ctx):
            assert reachable(ra)
            if ir.matches(rb, ctx):
                assert overlap(ra, rb)
            if implies(ra, rb):
                assert ir.matches(rb, ctx)


def _shadowed_reference(book: ir.Rulebook, dead: set[str]) -> dict[str, str]:
    """Every rule against every higher-salience rule: what the indexed check must find, pair for pair."""
    order = sorted(book.rules, key=lambda r: -r.salience)
    out = {}
    for r in book.rules:
        if not r.set or r.id in dead:
            continue
        for s in order:
            if s.salience <= r.salience:
                break
            if set(r.set) <= set(s.set) and implies(r, s):
                out[r.id] = s.id
                break
    return out


@settings(max_examples=300, deadline=None)
@given(book=ir_rulebooks(max_rules=30))
def test_the_indexed_shadow_check_finds_exactly_what_comparing_every_pair_finds(book):
    from engine.lint import _Locator, check_shadowed

    dead = {r.id for r in book.rules if not reachable(r)}
    found = {f.rule: f.message.split(": ", 1)[1].split(" ", 1)[0]
             for f in check_shadowed(book, _Locator([Path("gen")]), dead)}
    assert found == _shadowed_reference(book, dead)
