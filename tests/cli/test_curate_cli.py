"""`engine curate` and `engine backtest` as real subprocesses: files, exit codes, JSON, stderr reports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "fixtures" / "bench"


def engine(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)


def test_curate_writes_yaml_and_report(tmp_path: Path):
    out = tmp_path / "gen"
    p = engine("curate", str(FIX / "community-sample.csv"), "--out", str(out), "--report",
               str(tmp_path / "report.html"), "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["schema_version"] == 2 and doc["kind"] == "curation"
    assert doc["records"] == 266 and doc["rejected"] == 0 and doc["decisions"] > 0
    files = sorted(out.glob("*.yaml"))
    assert [str(f) for f in files] == sorted(doc["files"])
    assert (tmp_path / "report.html").read_text().startswith("<!doctype html>")
    assert p.stderr == ""  # no progress bar when stderr is not a terminal
    first = {f.name: f.read_bytes() for f in files}
    again = engine("curate", str(FIX / "community-sample.csv"), "--out", str(out))
    assert again.returncode == 0 and {f.name: f.read_bytes() for f in out.glob("*.yaml")} == first
    assert "decisions" in again.stdout and "wrote " in again.stdout


def test_rejected_rows_are_listed_with_file_and_line_and_exit_1(tmp_path: Path):
    p = engine("curate", str(FIX / "bad-rows.csv"), str(FIX / "bad.jsonl"), str(FIX / "community-sample.csv"),
               "--out", str(tmp_path / "gen"))
    assert p.returncode == 1
    lines = p.stderr.splitlines()
    assert f"{FIX / 'bad-rows.csv'}:3: tokens_per_s: not a number: 'fast'" in lines
    assert any(line.startswith(f"{FIX / 'bad.jsonl'}:2: invalid JSON") for line in lines)
    assert "6 rejected" in p.stdout and list((tmp_path / "gen").glob("*.yaml"))


def test_usage_errors_exit_2(tmp_path: Path):
    p = engine("curate", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "gen"))
    assert p.returncode == 2 and "no such file" in p.stderr
    p = engine("curate", str(FIX / "readme-depth-no-device.md"), "--out", str(tmp_path / "gen"))
    assert p.returncode == 2 and "no valid benchmark record" in p.stderr
    assert "no hardware" in p.stderr


def test_backtest_prints_both_policies():
    p = engine("backtest", str(FIX / "community-sample.csv"), "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["kind"] == "backtest" and doc["models"] == 11  # 8 Strix Halo models + 3 LLaMA 3 variants on the 4090 and M3 Max
    assert {(t["policy"], t["metric"]) for t in doc["table"]} >= {("curated", "tg"), ("static", "tg"),
                                                                  ("curated", "pp"), ("static", "pp")}
    assert all("generated" not in r for r in doc["rulebook_roots"])
    assert doc["holdout"] == "model" and doc["known_failures"] is True
    assert {t["family"] for t in doc["table"]} >= {"all", "rdna3.5", "ada", "apple-m3"}
    text = engine("backtest", str(FIX / "community-sample.csv"))
    assert text.returncode == 0 and text.stdout.startswith("leave-one-model-out over 11 models")
    assert "| all | all | tg |" in text.stdout and "| all | all | pp |" in text.stdout
    assert "decision: curated | decision: static | config: curated | config: static" in text.stdout


def test_outliers_are_reported_in_json(tmp_path: Path):
    import csv

    with (FIX / "community-sample.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    first = rows[0]
    base = float(first["tokens_per_s"])
    # three more repeats of one real measurement (same build), then a 5x copy of it
    planted = [dict(first, tokens_per_s=f"{base * k:.2f}") for k in (1.001, 0.999, 1.0005, 5.0)]
    data = tmp_path / "planted.csv"
    with data.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(first))
        w.writeheader()
        w.writerows(rows + planted)
    p = engine("curate", str(data), "--out", str(tmp_path / "gen"), "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert [o["where"] for o in doc["outlier_rows"]] == [f"{data}:{len(rows) + 5}"]
    assert doc["outliers"] == 1
