"""Expected performance in every Recommendation: generation / prompt tokens/s and TTFT, intervals and basis."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.adaptive import expect, ratios
from engine.recommend import recommend
from engine.render import explain_dict, recommendation_dict
from engine.render_text import explain_text
from facts.lemonade import from_system_info
from facts.models import ModelFacts

ROOT = Path(__file__).resolve().parents[2]
SYSINFO = ROOT / "tests" / "fixtures" / "system-info"
MODEL = ModelFacts(name="Qwen3-8B-GGUF", recipe="llamacpp", params_b=8.2, quant="Q4_K_M",
                   file_bytes=5 * 2**30, trained_ctx=40960, architecture="qwen3")


def hw(name: str):
    return from_system_info((SYSINFO / name).read_text(), source=name)


def test_a_measured_generation_figure_brings_prompt_speed_and_ttft_with_intervals():
    rec = recommend(hw("rtx-4090-desktop-linux.json"), MODEL, scenario="chat")
    perf = rec.performance
    assert rec.expected is not None and perf is not None and perf.reason is None
    gen, pp, ttft = perf.generation_tps, perf.prompt_tps, perf.ttft_ms
    assert gen.value == pytest.approx(rec.expected.tokens_per_s) and gen.basis == "evidence"
    assert gen.n == rec.expected.n and rec.expected.rule_id in gen.note
    for e in (gen, pp, ttft):
        assert e.low < e.value < e.high
    r = ratios.lookup(ratios.shipped(), "cuda", "nvidia", "ada", "quantized")
    assert pp.basis == "ratio" and pp.value == pytest.approx(gen.value * r.ratio, rel=1e-3) and pp.n == r.n
    assert ttft.unit == "ms" and ttft.value == pytest.approx(perf.prompt_tokens / pp.value * 1000, rel=1e-3)
    text = explain_text(rec)
    assert "expected performance" in text and "basis evidence, n=" in text and "basis ratio" in text
    assert explain_dict(rec)["performance"]["ttft_ms"]["value"] == ttft.value
    assert recommendation_dict(rec)["performance"]["generation_tps"]["basis"] == "evidence"


def test_a_prompt_speed_metric_is_the_prompt_figure_and_generation_is_derived():
    rec = recommend(hw("rtx-4090-desktop-linux.json"), MODEL, scenario="coding")
    perf = rec.performance
    assert rec.expected.metric.startswith("pp")
    assert perf.prompt_tps.basis == "evidence" and perf.prompt_tps.value == pytest.approx(rec.expected.tokens_per_s)
    assert perf.generation_tps.basis == "ratio" and perf.generation_tps.value < perf.prompt_tps.value
    assert perf.prompt_tokens == 2048 and "assumed" in perf.prompt_tokens_basis


def test_without_evidence_every_figure_is_missing_and_the_reason_is_said():
    rec = recommend(hw("cpu-only-linux.json"), MODEL)
    perf = rec.performance
    assert rec.expected is None and perf.generation_tps is None and perf.prompt_tps is None and perf.ttft_ms is None
    assert perf.reason and perf.reason in explain_text(rec)


def test_a_bench_scenario_prompt_is_sized_from_its_messages():
    tokens, basis = expect.prompt_tokens("chat-short")
    assert 10 <= tokens <= 40 and "messages" in basis  # Lemonade bench measures 28 input tokens for it


def test_the_shipped_ratio_table_is_what_the_project_data_calibrates():
    from engine.commands.curate import read_rows
    from engine.curate.model_rules import observations

    rows, protos, _ = read_rows([str(ROOT / "data" / "community-bench")])
    fresh = json.loads(json.dumps(ratios.calibrate(observations(rows, protos))))
    assert fresh == dict(ratios.shipped()), "re-run python -m engine.curate.ratio_table > engine/data/perf_ratios.json"


def _expected(dispersion, spread):
    from engine.recommend import Expected

    return Expected(50.0, "tg128", 34, spread, None, (), "r", "x.yaml:1", None, "model class", dispersion)


def test_the_interval_is_as_wide_as_the_tests_behind_the_median_differ_not_their_run_to_run_noise():
    """A class median over 34 tests whose runs repeat within 0.4 % but whose models differ by 15 %: the
    expectation for one model of the class spans the 15 %, else monitor flags every slower model of it."""
    ctx = {"vendor": "amd", "family": "rdna3.5", "precision": "quantized"}
    wide = expect.performance(_expected(0.15, 0.004), "vulkan", ctx, "chat").generation_tps
    assert (wide.low, wide.high) == (pytest.approx(50 / 1.15, abs=0.01), pytest.approx(50 * 1.15, abs=0.01))
    noisy = expect.performance(_expected(0.01, 0.08), "vulkan", ctx, "chat").generation_tps
    assert noisy.high == pytest.approx(50 * 1.08, abs=0.01)  # noise is the floor
    unknown = expect.performance(_expected(None, 0.004), "vulkan", ctx, "chat").generation_tps
    assert (unknown.low, unknown.high) == (pytest.approx(33.33, abs=0.01), pytest.approx(75.0))  # +-50 %


def test_every_curated_speed_rule_carries_the_dispersion_of_its_tests():
    from engine.rulebook import load_rulebook

    curated = [r for r in load_rulebook().rules if r.source.startswith("rulebook/generated/") and r.evidence
               and r.evidence.median_tps is not None and (r.evidence.n or 0) >= 3]
    assert curated
    with_dispersion = [r for r in curated if r.evidence.dispersion is not None]
    assert len(with_dispersion) >= 0.4 * len(curated)  # the rest rest on one test: the interval is +-50 %
    assert all(0 <= r.evidence.dispersion < 5 for r in with_dispersion)
