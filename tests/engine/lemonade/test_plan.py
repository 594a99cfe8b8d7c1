"""plan_apply's do-no-harm checks on their own: backends this Lemonade can run, the memory fit, the recipe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine import config
from engine.lemonade.models import LemonadeModel
from engine.lemonade.plan import backend_problem, plan_apply
from engine.session import Engine
from facts.lemonade import from_system_info
from facts.models import HardwareFacts
from facts.registry import resolve_model_spec

ROOT = Path(__file__).resolve().parents[3]
DOC = json.loads((ROOT / "tests" / "fixtures" / "lemonade-api" / "system-info.json").read_text())
GGUF = ROOT / "tests" / "fixtures" / "gguf" / "llama-gqa.gguf"


@pytest.fixture(scope="module")
def engine():
    eng = Engine()
    yield eng
    eng.close()


def hardware(cpu_state: str) -> HardwareFacts:
    doc = json.loads(json.dumps(DOC))
    doc["recipes"]["llamacpp"]["backends"]["cpu"]["state"] = cpu_state
    return from_system_info(doc)


def model(spec: str, model_id: str = "extra.m") -> LemonadeModel:
    facts = resolve_model_spec(spec)
    return LemonadeModel(model_id, facts.recipe, spec, facts)


def test_backend_states():
    assert backend_problem(hardware("installed"), "llamacpp", "cpu") == (None, None)
    problem, note = backend_problem(hardware("installable"), "llamacpp", "cpu")
    assert problem is None and "lemond downloads it at the model's first load" in note
    problem, _ = backend_problem(hardware("unsupported"), "llamacpp", "cpu")
    assert "cannot run in this Lemonade (it can run: system)" in problem
    problem, _ = backend_problem(HardwareFacts(), "llamacpp", "cpu")
    assert "cannot tell" in problem


def test_an_installable_backend_is_written_with_a_note(engine):
    plan = plan_apply(engine, config.load(), hardware("installable"), model(str(GGUF)), {}, None, scenario="chat",
                      overrides={})
    assert plan.action == "applied" and plan.entry.after["llamacpp_backend"] == "cpu"
    assert any("not installed yet" in n for n in plan.notes)


def test_too_big_and_foreign_recipes_are_skipped(engine):
    hw = hardware("unsupported")
    big = plan_apply(engine, config.load(), hw, model("Qwen3.5-122B-A10B-GGUF", "builtin.Qwen3.5-122B-A10B-GGUF"), {},
                     None, scenario="chat", overrides={})
    assert big.action == "skipped" and "does not fit" in big.reason and big.entry is None
    npu = plan_apply(engine, config.load(), hw, model("Qwen2.5-0.5B-Instruct-CPU", "builtin.x"), {}, None,
                     scenario="chat", overrides={})
    assert npu.action == "skipped" and "ryzenai-llm needs" in npu.reason
    unread = plan_apply(engine, config.load(), hw, LemonadeModel("extra.bad", "llamacpp", None, None, "corrupt"), {},
                        None, scenario="chat", overrides={})
    assert unread.action == "skipped" and "corrupt" in unread.reason
