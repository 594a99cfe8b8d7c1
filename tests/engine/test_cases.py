"""Table-driven cases (tests/cases/*.yaml: note, facts, model, want) on both evaluators.

A case: `rulebook` is `defaults` (the starter rulebook alone) or `bundled` (default); `facts` is a system-info fixture file name or inline HardwareFacts; `model` a registry name or
inline ModelFacts; optional `scenario`, `overrides`, `memory_fit` (default false); `want` holds
`recipe_options` (compared key by key) and `decisions` (param: value, or {value, layer, rule}).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from engine.evaluators import durable_available
from engine.recommend import recommend
from engine.rulebook import bundled_root, load_rulebook
from facts.lemonade import from_system_info
from facts.models import HardwareFacts, ModelFacts
from facts.registry import resolve_model_spec

TESTS = Path(__file__).resolve().parents[1]
CASE_KEYS = {"note", "facts", "model", "want", "scenario", "overrides", "memory_fit", "rulebook"}
# `rulebook: defaults` = the starter rulebook alone (Lemonade's behaviour); `bundled` (default) = all of it
BOOKS = {"defaults": load_rulebook(bundled_root() / "defaults"), "bundled": None}


def load_cases() -> list:
    params = []
    for path in sorted((TESTS / "cases").glob("*.yaml")):
        for i, case in enumerate(yaml.safe_load(path.read_text())):
            assert set(case) <= CASE_KEYS and {"note", "facts", "model", "want"} <= set(case), f"{path.name}[{i}]"
            params.append(pytest.param(case, id=f"{path.stem}: {case['note']}"))
    return params


CASES = load_cases()
EVALUATORS = [
    "python",
    pytest.param("durable", marks=pytest.mark.skipif(not durable_available(),
                                                     reason="durable-rules does not import here (Python >= 3.13)")),
]


def hardware(spec) -> HardwareFacts:
    if isinstance(spec, str):
        return from_system_info((TESTS / "fixtures" / "system-info" / spec).read_text(), source=spec)
    return HardwareFacts.model_validate({"source": "case", **spec})


def model(spec) -> ModelFacts:
    return resolve_model_spec(spec) if isinstance(spec, str) else ModelFacts.model_validate(spec)


def test_there_are_cases_in_every_file():
    assert len(CASES) >= 15
    assert {p.values[0]["note"] for p in CASES}.__len__() == len(CASES)  # ids unique


@pytest.mark.parametrize("evaluator", EVALUATORS)
@pytest.mark.parametrize("case", CASES)
def test_case(case, evaluator):
    rec = recommend(hardware(case["facts"]), model(case["model"]), scenario=case.get("scenario", "chat"),
                    evaluator=evaluator, overrides=case.get("overrides"),
                    rulebook=BOOKS[case.get("rulebook", "bundled")],
                    memory_fit=case.get("memory_fit", False))
    assert rec.evaluator == evaluator
    want = case["want"]
    opts = rec.recipe_options()
    for key, value in want.get("recipe_options", {}).items():
        assert key in opts and opts[key] == value, f"recipe option {key}: got {opts.get(key)!r}"
    for param, spec in want.get("decisions", {}).items():
        d = rec.decisions[param]
        spec = spec if isinstance(spec, dict) else {"value": spec}
        value = spec["value"]
        got = list(d.value) if isinstance(d.value, tuple) else d.value
        assert got == value, f"{param}: got {d.value!r} from {d.rule_id}"
        if "layer" in spec:
            assert d.layer == spec["layer"], param
        if "rule" in spec:
            assert d.rule_id == spec["rule"], param
