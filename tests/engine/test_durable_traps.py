"""Regression tests for each durable-rules trap in ../shared/research/rules-engine.md §1.4-1.5, §3.8."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from engine import ir
from engine.evaluators import make_evaluator
from engine.evaluators.python import PythonEvaluator

try:
    from engine.evaluators import durable
except ImportError:  # Python >= 3.13: only the fallback test below applies
    durable = None
needs_durable = pytest.mark.skipif(durable is None, reason="durable-rules imports only on Python <= 3.12")

REPO = Path(__file__).resolve().parents[2]


def _rule(i: int, when: tuple[ir.Condition, ...], layer: str = "archetype", priority: int = 0) -> ir.Rule:
    return ir.Rule(id=f"r{i}", description="d", layer=layer, priority=priority, when=when, set={"batch": 64},
                   source=f"t.yaml:{i + 1}", index=i)


def _book(rules) -> ir.Rulebook:
    return ir.Rulebook(rules=tuple(rules), digest=f"{len(rules):064x}")


def _run_py(code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


@needs_durable
def test_no_match_in_a_fresh_process_does_not_crash():
    """Trap 1: delete_state on a sid where no action ran segfaults; the end marker guards it."""
    proc = _run_py("""
        from engine import ir
        from engine.evaluators.durable import DurableEvaluator
        rule = ir.Rule(id="r", description="d", layer="family", priority=0,
                       when=(ir.Condition("recipe", "eq", "vllm"),), set={"batch": 64}, source="t:1")
        ev = DurableEvaluator(ir.Rulebook(rules=(rule,), digest="a" * 64))
        for _ in range(200):
            assert ev.match({"recipe": "llamacpp"}) == ()
        assert ev.match({}) == ()
        ev.close()  # delete_state on a sid where no rule but the end marker ever fired
        DurableEvaluator(ir.Rulebook(rules=(rule,), digest="d" * 64)).close()  # a sid never used
        print("done")
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "done"


@needs_durable
def test_missing_only_condition_terminates():
    """Trap 3: a `$nex`-only pattern loops forever; the {"t": "ctx"} guard prevents it."""
    proc = _run_py("""
        from engine import ir
        from engine.evaluators.durable import DurableEvaluator
        rule = ir.Rule(id="r", description="d", layer="family", priority=0,
                       when=(ir.Condition("family", "missing"),), set={"batch": 64}, source="t:1")
        ev = DurableEvaluator(ir.Rulebook(rules=(rule,), digest="b" * 64))
        print([r.id for r in ev.match({"recipe": "llamacpp"})], [r.id for r in ev.match({"family": "x"})])
    """, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['r'] []"


@needs_durable
def test_results_are_not_lost_to_threads():
    """Trap 2 / §1.6: the default Host's dispatcher thread steals actions; 8 threads must agree with python."""
    rules = [_rule(i, (ir.Condition("mem_bucket_gb", "eq", 8 * (i % 8)),), priority=i % 3) for i in range(64)]
    rules += [_rule(64 + i, (ir.Condition("params_b", "ge", float(i)),)) for i in range(20)]
    book = _book(rules)
    dev, pev = durable.DurableEvaluator(book), PythonEvaluator(book)
    contexts = [{"mem_bucket_gb": 8 * (k % 9), "params_b": float(k % 23)} for k in range(50)]
    want = [pev.match(c) for c in contexts]
    wrong: list[tuple[int, int]] = []
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)

    def worker(t: int) -> None:
        for n in range(300):
            k = (n + t) % len(contexts)
            if dev.match(contexts[k]) != want[k]:
                wrong.append((t, n))

    try:
        threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    finally:
        sys.setswitchinterval(old)
        dev.close()
    assert wrong == []


@needs_durable
def test_salience_outside_uint16_is_rejected():
    """pri is an unsigned 16-bit value: 70000 would wrap to 4464 and fire in the wrong place."""
    bad = _rule(0, ())
    object.__setattr__(bad, "salience", 70000)
    with pytest.raises(durable.CompileError, match="salience 70000 outside 0..65534"):
        durable.DurableEvaluator(_book([bad]))
    neg = _rule(1, ())
    object.__setattr__(neg, "salience", -1)
    with pytest.raises(durable.CompileError):
        durable.DurableEvaluator(_book([neg]))


@needs_durable
def test_more_rules_than_one_ruleset_holds_work_through_shards():
    """4,096 rules per ruleset is a hard cap: 5,000 rules must still match, across shards."""
    rules = [_rule(i, (ir.Condition("mem_bucket_gb", "eq", i % 50), ir.Condition("gpu_count", "eq", i % 97)),
                   priority=i % 7) for i in range(5000)]
    book = _book(rules)
    dev, pev = durable.DurableEvaluator(book), PythonEvaluator(book)
    try:
        assert dev.shard_count >= 5
        for ctx in ({"mem_bucket_gb": 3, "gpu_count": 3}, {"mem_bucket_gb": 49, "gpu_count": 96}, {}):
            got = dev.match(ctx)
            assert got == pev.match(ctx)
        assert len(dev.match({"mem_bucket_gb": 3, "gpu_count": 3})) > 0
    finally:
        dev.close()


@needs_durable
def test_many_simultaneously_true_range_tests_do_not_overflow_durable():
    """More than 64 true non-equality tests for one fact fail at assert time (error 303) unless sharded."""
    rules = [_rule(i, (ir.Condition("params_b", "ge", float(i)),)) for i in range(150)]
    rules += [_rule(150 + i, (ir.Condition(a, "exists"),)) for i, a in enumerate(
        ["recipe", "family", "arch", "vendor", "os", "scenario", "quant", "memclass"])]
    book = _book(rules)
    dev = durable.DurableEvaluator(book)
    try:
        ctx = {"params_b": 1000.0, "recipe": "llamacpp", "family": "f", "arch": "a", "vendor": "amd", "os": "linux",
               "scenario": "chat", "quant": "Q4_0", "memclass": "unified"}
        assert dev.match(ctx) == PythonEvaluator(book).match(ctx)
        assert len(dev.match(ctx)) == 158
    finally:
        dev.close()


@needs_durable
def test_registration_does_not_depend_on_reused_definitions():
    """Registration deletes `run` from each rule: two evaluators on one rulebook must both work."""
    book = _book([_rule(0, (ir.Condition("recipe", "eq", "llamacpp"),))])
    a, b = durable.DurableEvaluator(book), durable.DurableEvaluator(book)
    try:
        assert [r.id for r in a.match({"recipe": "llamacpp"})] == ["r0"]
        assert [r.id for r in b.match({"recipe": "llamacpp"})] == ["r0"]
    finally:
        a.close()
        b.close()


def test_make_evaluator_falls_back_to_python_when_durable_cannot_import():
    """On Python >= 3.13 durable-rules does not import: the default engine must become python."""
    proc = _run_py("""
        import sys
        sys.modules["durable_rules_engine"] = None  # the import now raises ImportError, as on 3.13
        from engine import ir
        from engine.evaluators import EngineUnavailable, make_evaluator
        book = ir.Rulebook(rules=(), digest="c" * 64)
        print(make_evaluator(book).name)
        try:
            make_evaluator(book, "durable")
        except EngineUnavailable as err:
            print("unavailable")
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["python", "unavailable"]


@needs_durable
def test_engine_selection_from_the_environment(monkeypatch):
    book = _book([])
    monkeypatch.setenv("LEMONADE_AUTOTUNE_ENGINE", "python")
    assert make_evaluator(book).name == "python"
    monkeypatch.setenv("LEMONADE_AUTOTUNE_ENGINE", "durable")
    assert make_evaluator(book).name == "durable"
    monkeypatch.delenv("LEMONADE_AUTOTUNE_ENGINE")
    assert make_evaluator(book).name == "durable"  # importable here (Python <= 3.12)
    from engine.errors import UsageError

    with pytest.raises(UsageError, match="unknown rule engine 'drools'"):
        make_evaluator(book, "drools")


@needs_durable
def test_working_memory_is_empty_between_evaluations():
    """One long-lived sid per shard: every evaluation retracts what it asserted."""
    import json

    import durable_rules_engine

    book = _book([_rule(i, (ir.Condition("mem_bucket_gb", "eq", i),)) for i in range(30)])
    dev = durable.DurableEvaluator(book)
    try:
        for i in range(40):
            assert [r.id for r in dev.match({"mem_bucket_gb": i})] == ([f"r{i}"] if i < 30 else [])
        for k, handle in enumerate(dev._handles):
            assert json.loads(durable_rules_engine.get_facts(handle, dev._sids[k])) == []
    finally:
        dev.close()


@needs_durable
def test_a_failed_evaluation_does_not_poison_the_next(monkeypatch):
    book = _book([_rule(0, (ir.Condition("recipe", "eq", "llamacpp"),))])
    dev = durable.DurableEvaluator(book)
    try:
        assert [r.id for r in dev.match({"recipe": "llamacpp"})] == ["r0"]
        real = durable._dre.start_action_for_state

        def broken(*args):
            raise RuntimeError("injected")

        monkeypatch.setattr(durable._dre, "start_action_for_state", broken)
        with pytest.raises(RuntimeError, match="injected"):
            dev.match({"recipe": "llamacpp"})
        monkeypatch.setattr(durable._dre, "start_action_for_state", real)
        for _ in range(3):
            assert [r.id for r in dev.match({"recipe": "llamacpp"})] == ["r0"]
            assert dev.match({"recipe": "vllm"}) == ()
    finally:
        dev.close()
    from engine.errors import EngineError

    with pytest.raises(EngineError, match="closed"):
        dev.match({})


@needs_durable
def test_numbers_durable_cannot_parse_as_python_writes_them():
    """durable's JSON parser rejects `1e-05` / `1e+20` (error 204): numbers are written with a dot."""
    values = [1e-300, 1e-05, 1.5e-05, 0.1, 1e15, 2.0**53, -(2.0**53), -0.0, 7.0]
    rules = [_rule(i, (ir.Condition("params_b", op, v),)) for i, (op, v) in
             enumerate((op, v) for op in ("eq", "lt", "ge") for v in values)]
    book = _book(rules)
    dev, pev = durable.DurableEvaluator(book), PythonEvaluator(book)
    try:
        for v in [*values, 3e-7, 123456.789]:
            assert dev.match({"params_b": v}) == pev.match({"params_b": v})
    finally:
        dev.close()
    for bad in (float("inf"), 2**60):
        with pytest.raises(durable.CompileError, match="beyond what the rule engines compare exactly"):
            durable.DurableEvaluator(_book([_rule(0, (ir.Condition("params_b", "lt", bad),))]))


@needs_durable
def test_many_archetype_rules_share_one_shard_and_many_true_members_fall_back_exactly():
    """350 archetype-specific rules: one fact matches at most MAX_TRUE_KEYS member keys under a node, so one
    ruleset holds them (not 7 shards of 56); a context with more true members takes the reference path."""
    from engine.evaluators._durable_plan import MAX_TRUE_KEYS

    rules = [_rule(i, (ir.Condition("recipe", "eq", "llamacpp"), ir.Condition("archetype", "eq", f"a{i}")),
                   priority=i % 5) for i in range(350)]
    book = _book(rules)
    dev, pev = durable.DurableEvaluator(book), PythonEvaluator(book)
    try:
        assert dev.shard_count == 1
        for members in (3, MAX_TRUE_KEYS, MAX_TRUE_KEYS + 1, 40):
            ctx = {"recipe": "llamacpp", "archetype": frozenset(f"a{7 * k}" for k in range(members))}
            got = dev.match(ctx)
            assert got == pev.match(ctx) and len(got) == members
    finally:
        dev.close()


@needs_durable
def test_durable_cannot_compare_strings_over_4096_bytes_so_both_evaluators_refuse_them(monkeypatch):
    """The trap (measured): in durable-rules, a rule `eq` on a string over 4,096 bytes never matches, not even
    the identical string (`ne` always does); Python compares whole strings. Unguarded, durable says no where
    Python says yes; guarded, both refuse the rule and the context alike, so they can never disagree."""
    import engine.evaluators as evaluators
    import engine.evaluators.python as python_evaluator

    long = "x" * 4097
    book = _book([_rule(0, (ir.Condition("architecture", "eq", long),))])
    ctx = {"architecture": long}
    with monkeypatch.context() as m:  # the durable network as it is, without our value checks
        m.setattr(evaluators, "check_rule_values", lambda rulebook: None)
        m.setattr(durable, "validate_context", lambda context, attributes=None: dict(context))
        m.setattr(python_evaluator, "check_rule_values", lambda rulebook: None)
        m.setattr(python_evaluator, "validate_context", lambda context, attributes=None: dict(context))
        raw = durable.DurableEvaluator(book)
        try:
            assert raw.match(ctx) == ()  # a wrong answer: the strings are equal
        finally:
            raw.close()
        assert [r.id for r in PythonEvaluator(book).match(ctx)] == ["r0"]
    for engine in ("durable", "python"):
        with pytest.raises(evaluators.CompileError, match="over 4,096 bytes"):
            make_evaluator(book, engine)
    short = _book([_rule(0, (ir.Condition("architecture", "eq", "qwen3"),))])
    for engine in ("durable", "python"):
        ev = make_evaluator(short, engine)
        for bad in (ctx, {"architecture": long + "-other"}, {"architecture": "qwen3\ud800"}, {"family": "é" * 2049}):
            with pytest.raises(evaluators.ContextError, match="architecture|family"):
                ev.match(bad)
        assert ev.match({"architecture": "é" * 2048}) == ()  # 4,096 bytes: at the limit, accepted
        close = getattr(ev, "close", None)
        if close:
            close()
