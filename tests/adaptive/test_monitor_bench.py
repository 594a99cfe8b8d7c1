"""engine monitor against Lemonade bench JSON files: compare-file changes, baselines, predictions, thresholds."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from engine.adaptive import measure, monitor
from tests.support.cli import run_engine

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "tests" / "fixtures" / "bench" / "lemonade"
COMPARE = BENCH / "rtx-4090_qwen3-8b_ctx-sweep_compare.json"
SWEEP = BENCH / "strix-halo-128gb_qwen3-coder-30b-a3b_args-sweep.json"
RTX = ROOT / "tests" / "fixtures" / "system-info" / "rtx-4090-desktop-linux.json"


engine = run_engine


@pytest.mark.parametrize(("change", "severity"), [(-4.9, "ok"), (-5.0, "warning"), (-14.9, "warning"),
                                                   (-15.0, "critical"), (3.0, "ok")])
def test_tokens_per_second_thresholds_are_lemonades_nightly_ci(change, severity):
    assert monitor.tps_severity(change) == severity


@pytest.mark.parametrize(("change", "severity"), [(9.9, "ok"), (10.0, "warning"), (-30.0, "ok")])
def test_ttft_threshold(change, severity):
    assert monitor.ttft_severity(change) == severity


def test_a_bench_file_reads_every_scenario_with_its_runs_and_spread():
    ms = measure.read_bench(SWEEP)
    assert len(ms) == 20 and {m.backend for m in ms} == {"rocm", "vulkan"}
    m = ms[0]
    assert (m.model, m.args, m.ctx_size, m.scenario) == ("Qwen3-Coder-30B-A3B-Instruct-GGUF", "-b 2048 -ub 512",
                                                         4096, "chat-short")
    assert m.tps == 69.256 and m.tps_min == 69.117 and m.tps_max == 69.513 and m.runs == 3 and m.input_tokens == 28
    assert m.source.endswith("$.models[0].results[0].scenarios[0]")


def test_a_malformed_bench_file_is_refused_with_where(tmp_path):
    bad = json.loads(SWEEP.read_text())
    bad["models"][0]["results"][1]["scenarios"][2]["tps"] = "fast"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    p = engine("monitor", "--bench", str(path), "--system-info", str(RTX))
    assert p.returncode == 2 and "$.models[0].results[1].scenarios[2].tps" in p.stderr
    path.write_text("{\n  nope")
    p = engine("monitor", "--bench", str(path), "--system-info", str(RTX))
    assert p.returncode == 2 and "bad.json:2:" in p.stderr


def test_a_compare_file_regression_is_flagged_critical_with_the_evidence(tmp_path):
    doc = json.loads(COMPARE.read_text())
    regressed = copy.deepcopy(doc)
    regressed["models"][0]["comparison"][0]["tps_pct_change"] = -22.0
    regressed["models"][0]["comparison"][1]["ttft_pct_change"] = 12.5
    path = tmp_path / "regressed.json"
    path.write_text(json.dumps(regressed))
    ok = engine("monitor", "--bench", str(COMPARE), "--system-info", str(RTX), "--json")
    body = json.loads(ok.stdout)
    flagged = [f for e in body["entries"] for f in e["findings"] if f["against"] == "compare file"
               and f["severity"] != "ok"]
    assert not flagged  # the fixture itself is an improvement everywhere
    p = engine("monitor", "--bench", str(path), "--system-info", str(RTX), "--json")
    assert p.returncode == 1, p.stderr
    found = [f for e in json.loads(p.stdout)["entries"] for f in e["findings"] if f["against"] == "compare file"]
    crit = [f for f in found if f["severity"] == "critical"]
    warn = [f for f in found if f["severity"] == "warning"]
    assert len(crit) == 1 and crit[0]["metric"] == "generation_tps" and crit[0]["change_pct"] == -22.0
    assert crit[0]["evidence"]["measured"]["source"].endswith("scenarios[0]") and "re-benchmark" in crit[0]["suggestion"]
    assert len(warn) == 1 and warn[0]["metric"] == "ttft_ms"


def test_against_a_baseline_a_slower_run_is_flagged_and_the_text_says_so(tmp_path):
    base = json.loads(SWEEP.read_text())
    for res in base["models"][0]["results"]:
        for sc in res["scenarios"]:
            sc["tps"]["p50"] *= 1.25  # the baseline was 25 % faster: today's file is a -20 % regression
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(base))
    p = engine("monitor", "--bench", str(SWEEP), "--baseline", str(path), "--system-info", str(RTX))
    assert p.returncode == 1
    assert "CRITICAL" in p.stdout and "vs baseline" in p.stdout and "-20.0 %" in p.stdout
    same = engine("monitor", "--bench", str(SWEEP), "--baseline", str(SWEEP), "--system-info", str(RTX), "--json")
    worst = [f["severity"] for e in json.loads(same.stdout)["entries"] for f in e["findings"]
             if f["against"] == "baseline"]
    assert worst and set(worst) == {"ok"}


def test_against_the_prediction_only_the_shortfall_beyond_the_interval_counts():
    from engine.adaptive.expect import Estimate, Performance

    gen = Estimate(100.0, 80.0, 125.0, "tokens/s", "evidence", 5, "n")
    pp = Estimate(2000.0, 1000.0, 4000.0, "tokens/s", "ratio", 9, "r")
    perf = Performance(gen, pp, None, 512, "assumed")
    m = measure.Measurement("m", "vulkan", "", 4096, "chat", 81.0, 400.0, 512, 3)
    g, t = monitor.against_prediction(m, perf, "rule-x")
    assert g.severity == "ok" and g.change_pct == pytest.approx(-19.0)  # inside 80..125
    slow = measure.Measurement("m", "vulkan", "", 4096, "chat", 64.0, 700.0, 512, 3)
    g, t = monitor.against_prediction(slow, perf, "rule-x")
    assert g.severity == "critical" and g.beyond_pct == pytest.approx(-20.0) and "rule rule-x" in g.suggestion
    assert t.severity == "warning" and t.high == pytest.approx(512.0) and t.beyond_pct > 10
