"""Submissions: made from the real Lemonade bench examples they are valid Lemonade `--submit` bodies that
`engine curate` reads into the same records as the bench files themselves; anonymisation leaves no host name,
user name, path, serial number or UUID of the input (hypothesis)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from engine.cli import main
from engine.profiles import submission
from facts import from_system_info

FIX = Path(__file__).resolve().parents[2] / "fixtures"
BENCH = sorted((FIX / "bench" / "lemonade").glob("*.json"))
SYSINFO = {"rtx-4090": FIX / "system-info" / "rtx-4090-desktop-linux.json",
           "strix-halo": FIX / "system-info" / "strix-halo-128gb-linux.json"}


def system_info_for(bench: Path) -> Path:
    return next(v for k, v in SYSINFO.items() if bench.name.startswith(k))


def lemonade_accepts(body: dict) -> bool:
    """Lemonade's validate_benchmark_schema (src/cpp/cli/bench.cpp, PR #3284), written out again here."""
    b = body["benchmark"]
    assert isinstance(b, dict) and isinstance(b["timestamp"], str) and isinstance(b["hardware"], dict)
    assert isinstance(b["models"], list) and b["models"]
    for m in b["models"]:
        assert isinstance(m["model"], str) and isinstance(m["results"], list)
        for r in m["results"]:
            assert isinstance(r["recipe"], str) and isinstance(r["scenarios"], list)
            assert all(isinstance(s["name"], str) for s in r["scenarios"])
    return True


def records(paths: list[Path]) -> list[tuple]:
    from engine.curate.ingest import read_paths
    from engine.curate.records import BenchRecord

    items = list(read_paths(paths))
    assert all(isinstance(i, BenchRecord) for i in items), [i for i in items if not isinstance(i, BenchRecord)]
    return sorted((r.archetype, r.model, r.backend, r.scenario, r.test, r.ubatch, r.batch, round(r.tps, 6))
                  for r in items)


@pytest.mark.parametrize("bench", BENCH, ids=[p.stem for p in BENCH])
def test_a_submission_from_a_real_bench_file_is_curated_like_the_file(bench, tmp_path, capsys):
    out = tmp_path / "contribution.json"
    assert main(["submit", str(bench), "--system-info", str(system_info_for(bench)), "--out", str(out)]) == 0
    assert "pull request" in capsys.readouterr().err
    doc = json.loads(out.read_text())
    assert doc["schema"] == submission.SCHEMA and doc["schema_version"] == 1 and lemonade_accepts(doc)
    assert {"archetype", "facts", "models", "parameters", "results"} <= set(doc)
    raw = json.loads(bench.read_text())
    assert doc["benchmark"]["timestamp"] == raw["timestamp"]
    assert [m["model"] for m in doc["benchmark"]["models"]] == [m["model"] for m in raw["models"]]
    assert len(doc["results"]) == sum(len(r["scenarios"]) for m in raw["models"] for r in m["results"])
    assert records([out]) == records([bench])  # the same measurements, nothing lost
    assert main(["curate", str(out), "--out", str(tmp_path / "gen")]) == 0
    assert any((tmp_path / "gen").glob("*.yaml"))
    if "compare_file" in raw:  # a path to the baseline file: gone
        assert "compare_file" not in json.dumps(doc) and doc["anonymised"]["removed"]["field"] >= 1


def test_curate_reads_a_bare_lemonade_submit_body_and_refuses_a_newer_schema(tmp_path):
    from engine.curate.ingest import read_paths
    from engine.curate.records import IngestIssue

    bench = json.loads(BENCH[0].read_text())
    body = tmp_path / "body.json"
    body.write_text(json.dumps({"benchmark": bench}))
    assert records([body]) == records([BENCH[0]])
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({"schema": submission.SCHEMA, "schema_version": 99, "benchmark": bench}))
    issues = list(read_paths([newer]))
    assert len(issues) == 1 and isinstance(issues[0], IngestIssue) and "newer" in issues[0].message


def test_submit_refuses_what_is_not_a_bench_result(tmp_path, capsys):
    bad = tmp_path / "x.json"
    bad.write_text('{"hardware": {}, "models": []}')
    assert main(["submit", str(bad), "--system-info", str(SYSINFO["rtx-4090"]), "--out", str(tmp_path / "o")]) == 2
    assert "models" in capsys.readouterr().err and not (tmp_path / "o").exists()
    bad.write_text("{nope")
    assert main(["submit", str(bad)]) == 2


# ---- anonymisation property ------------------------------------------------------------------------------
_word = st.from_regex(r"[a-z][a-z0-9]{2,9}", fullmatch=True)
_host = st.builds(lambda a, b: f"{a}-{b}", _word, _word)
_serial = st.from_regex(r"[A-Z][A-Z0-9]{7,13}", fullmatch=True)


@st.composite
def _path(draw, user: str) -> tuple[str, list[str]]:
    """A path (POSIX, home, Windows, UNC) and its directory parts; the file name sometimes holds the user name."""
    dirs = draw(st.lists(_word, min_size=1, max_size=3))
    name = draw(st.sampled_from(["Qwen3-8B-Q4_K_M.gguf", f"{user}-finetune.gguf", "notes.txt", f"{user}.log"]))
    style = draw(st.sampled_from(["home", "abs", "tilde", "win", "unc"]))
    joined = {"home": f"/home/{user}/" + "/".join(dirs), "abs": "/" + "/".join(dirs), "tilde": "~/" + "/".join(dirs),
              "win": f"C:\\Users\\{user}\\" + "\\".join(dirs), "unc": "\\\\" + "\\".join(dirs)}[style]
    sep = "\\" if style in ("win", "unc") else "/"
    return f"{joined}{sep}{name}", dirs


@st.composite
def secrets(draw) -> dict:
    user = draw(_word)
    path, dirs = draw(_path(user))
    return {"host": draw(_host), "user": user, "path": path, "dirs": dirs, "serial": draw(_serial),
            "uuid": str(draw(st.uuids())), "nvidia_uuid": "GPU-" + str(draw(st.uuids())),
            "where": draw(st.sets(st.integers(0, 9), min_size=1))}


def _inject(doc: dict, s: dict) -> dict:
    d = copy.deepcopy(doc)
    hw, model = d["hardware"], d["models"][0]
    result = model["results"][0]
    w = s["where"]
    hw["hostname"], hw["user"] = s["host"], s["user"]  # identifying keys anywhere
    hw["gpu"][0]["uuid"], hw["gpu"][0]["serial_number"] = s["nvidia_uuid"], s["serial"]
    d["machine"] = {"id": s["uuid"], "cwd": s["path"]}  # an unknown block
    if 0 in w:
        hw["cpu"] += f" on {s['host']}"
    if 1 in w:
        hw["gpu"][0]["name"] += f" S/N: {s['serial']}"
    if 2 in w:
        result["backend_args"] = (result.get("backend_args", "") + f" --lora {s['path']}").strip()
    if 3 in w:
        model["model"] = s["path"]
    if 4 in w:
        result["scenarios"][0]["name"] += f" ({s['user']}@{s['host']})"
    if 5 in w:
        hw["lemonade_version"] += f" build {s['uuid']}"
    if 6 in w:
        result["scenarios"][0]["category"] = f"serial={s['serial']}"
    if 7 in w:
        hw["backends"][f"llamacpp/{s['host']}"] = s["path"]
    if 8 in w:
        d["timestamp"] += f" {s['user']}"
    if 9 in w:
        hw["os"] = f"linux {s['host'].upper()} {s['nvidia_uuid'].lower()}"
    return d


BASE = json.loads(BENCH[-1].read_text())
HW = from_system_info(json.loads(SYSINFO["strix-halo"].read_text()))
BASELINE = json.dumps(submission.build(BASE, HW, facts_source="test", identifiers=[])[0]).lower()


@settings(max_examples=60)
@given(s=secrets())
def test_no_identifier_of_the_input_survives_anonymisation(s):
    tokens = [s["host"], s["user"], s["serial"], s["uuid"], s["nvidia_uuid"], *s["dirs"]]
    assume(not any(t.lower() in BASELINE for t in tokens))  # not a word the clean submission has anyway
    doc, _scrub = submission.build(_inject(BASE, s), HW, facts_source="test", identifiers=[s["host"], s["user"]])
    text = json.dumps(doc, ensure_ascii=False).lower()
    for t in [*tokens, s["path"]]:
        assert t.lower() not in text, t
    assert not re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", text)
    assert lemonade_accepts(doc)  # and what is left is still a valid submission
