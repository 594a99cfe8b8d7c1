"""Zero crashes on hostile input: every input path, mutated (tests/fuzz/harness.py), ends accepted or as a project
error (exit 2 with where and what), never as a traceback (exit 3). bench/fuzz.py runs the same targets for
10,000 examples each; here each gets a CI-sized budget, and every crash class found so far is a named example."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz import harness
from tests.support.cli import run_engine

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "fixtures"
RTX = FIX / "system-info" / "rtx-4090-desktop-linux.json"
BUDGET = {"system-info": 60, "llama-devices": 60, "model-facts": 80, "gguf": 40, "rulebook": 30, "curate": 30,
          "lemonade-bench": 80}


@pytest.mark.parametrize("target", sorted(harness.TARGETS))
def test_mutated_inputs_are_accepted_or_refused_never_a_crash(target):
    @settings(max_examples=BUDGET[target], deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(seed=st.integers(0, 2**32))
    def run(seed):
        assert harness.run(target, seed).status in ("ok", "rejected")  # a crash raises out of run()

    run()


def test_the_mutations_reach_past_the_first_gate():
    """The fuzzing is worth something only when mutated inputs are also accepted, not all refused at parse time."""
    for target in ("system-info", "llama-devices", "model-facts", "curate", "lemonade-bench"):
        outcomes = [harness.run(target, seed).status for seed in range(40)]
        assert "ok" in outcomes and "rejected" in outcomes, target


engine = run_engine


def _system_info(tmp_path: Path, edit) -> Path:
    doc = json.loads(RTX.read_text(encoding="utf-8"))
    text = edit(doc)
    path = tmp_path / "system-info.json"
    path.write_text(text if isinstance(text, str) else json.dumps(doc), encoding="utf-8")
    return path


def _recommend_with_system_info(path: Path) -> subprocess.CompletedProcess:
    return engine("recommend", "--model", "Qwen3-8B-GGUF", "--system-info", str(path), "--json")


def _refused(p: subprocess.CompletedProcess, *needles: str) -> None:
    assert p.returncode == 2, (p.returncode, p.stderr[-2000:])
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr
    for needle in needles:
        assert needle in p.stderr, (needle, p.stderr[-1000:])


# ---- named regressions: one per crash class the outside fuzz campaign found (each exited 3 before) -----------

def test_deep_nesting_in_a_system_info_document(tmp_path):
    path = _system_info(tmp_path, lambda d: json.dumps(d)[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    _refused(_recommend_with_system_info(path), "nested more than 64 levels deep")


def test_a_number_of_thousands_of_digits_in_a_system_info_document(tmp_path):
    path = _system_info(tmp_path, lambda d: json.dumps(d).replace('"Physical Memory"', '"n": ' + "9" * 5000 +
                                                                   ', "Physical Memory"', 1))
    _refused(_recommend_with_system_info(path), "$.n", "out of range")


def test_a_lone_surrogate_in_a_gpu_name(tmp_path):
    def edit(doc):
        doc["devices"]["nvidia_gpu"][0]["name"] = "NVIDIA GeForce RTX 4090 \udc80"
        return json.dumps(doc)

    _refused(_recommend_with_system_info(_system_info(tmp_path, edit)), "$.devices.nvidia_gpu[0].name",
             "lone surrogate")


@pytest.mark.parametrize(("body", "needle"), [
    ('{"architecture": "qwen3\\ud800", "params_b": 4}', "lone surrogate"),
    ('{"architecture": "qwen3", "params_b": [30.5]}', "params_b"),
    ('{"architecture": "qwen3", "params_b": 30.5, "active_params_b": "three"}', "active_params_b"),  # fuzz seed 3674
    ('{"architecture": "qwen3", "params_b": 4, "size_gib": Infinity}', "out of range"),
    ('{"architecture": "qwen3", "params_b": 4, "size_gib": 1e300}', "size_gib"),
    ('{"architecture": "qwen3", "params_b": ' + "9" * 5000 + "}", "out of range"),
    ('{"architecture": "' + "x" * 5000 + '", "params_b": 4}', "4,096 bytes"),
    ('{"architecture": "qwen3", "params_b": 4, "head_count_kv": ["16", {}]}', "head_count_kv"),
    ("[" * 50_000 + "]" * 50_000, "nested more than 64 levels deep"),
])
def test_hostile_model_facts_json(tmp_path, body, needle):
    path = tmp_path / "model.json"
    path.write_text(body, encoding="utf-8")
    _refused(engine("recommend", "--model", str(path), "--system-info", str(RTX)), needle)


@pytest.mark.parametrize(("report", "needle"), [
    ("Available devices:\n  MTL" + "1" * 1900 + ": Apple M3 Max (110100 MiB, 110100 MiB free)\n",
     "line 2: a device index of 1,900 digits"),
    ("Available devices:\n  Vulkan0: NVIDIA GeForce RTX 4090 (99999999999999999 MiB, 1000 MiB free)\n",
     "line 2: a memory size of 1e+17 MiB"),
    ("ggml_metal_init: found device: Apple M2 Pro\nggml_metal_init: recommendedMaxWorkingSetSize  = "
     + "9" * 400 + ".00 MB\n", "line 2"),
    ("ggml_cuda_init: found 999999 CUDA devices:\n", "a count of 1e+06"),
])
def test_hostile_llama_device_reports(tmp_path, report, needle):
    path = tmp_path / "devices.txt"
    path.write_text(report, encoding="utf-8")
    _refused(engine("recommend", "--model", "Qwen3-8B-GGUF", "--llama-devices", str(path)), needle)


def test_a_device_report_over_4_mib_is_refused_before_parsing(tmp_path):
    path = tmp_path / "devices.txt"
    path.write_text(("x" * 5000 + "\n") * 1000, encoding="utf-8")
    _refused(engine("facts", "--llama-devices", str(path)), "larger than 4 MiB")


@pytest.mark.parametrize(("edit", "needle"), [
    (lambda d: d["models"][0].__setitem__("config", {"measurement_runs": "3"}), "$.models[0].config.measurement_runs"),
    (lambda d: d["models"][0]["results"][0].__setitem__("backend", ["rocm"]), "$.models[0].results[0].backend"),
    (lambda d: d["models"][0]["results"][0]["scenarios"][0].__setitem__("failed_runs", 1e300), "failed_runs"),
    (lambda d: d["models"][0].__setitem__("results", {"a": 1}), "$.models[0].results"),
])
def test_hostile_lemonade_bench_files(tmp_path, edit, needle):
    doc = json.loads((FIX / "bench" / "lemonade" / "strix-halo-128gb_qwen3-coder-30b-a3b_args-sweep.json")
                     .read_text(encoding="utf-8"))
    edit(doc)
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    _refused(engine("monitor", "--bench", str(path), "--system-info", str(RTX)), needle)


def test_hostile_llama_bench_json_lines_become_issues_not_crashes(tmp_path):
    from engine.commands.curate import read_rows

    good = (FIX / "bench" / "llama-bench-rtx4080.jsonl").read_text(encoding="utf-8").splitlines()
    path = tmp_path / "bench.jsonl"
    path.write_text("\n".join([good[0], "[" * 100_000 + "]" * 100_000, good[0].replace("}", ', "x": '
                                                                                       + "9" * 5000 + "}", 1),
                               good[0].replace("}", ', "y": "\\ud800"}', 1), *good[1:]]), encoding="utf-8")
    rows, _, issues = read_rows([str(path)])
    assert len(rows) == len(good)  # every good line still read
    assert [i.where for i in issues] == [f"{path}:2", f"{path}:3", f"{path}:4"]
    assert {m for i in issues for m in ("nested", "out of range", "surrogate") if m in i.message} == {
        "nested", "out of range", "surrogate"}


def test_curate_refuses_impossible_gpu_counts_and_memory_and_unreadable_csv_rows(tmp_path):
    """A GPU count of 10^9 used to build 10^9 GPU objects (minutes, then MemoryError); a field over the csv
    module's limit raised csv.Error out of curate."""
    from engine.commands.curate import read_rows

    lines = (FIX / "bench" / "community-sample.csv").read_text(encoding="utf-8").splitlines()
    first = lines[1]
    many = first.replace('"AMD Ryzen AI MAX+ 395', '"1000000000x AMD Ryzen AI MAX+ 395', 1)
    huge_vram = first.replace(",128,,true,", ",1e300,,true,", 1)
    path = tmp_path / "community.csv"
    path.write_text("\n".join([lines[0], many, huge_vram, lines[2], first.replace("rocm", "x" * 200_000, 1),
                               lines[3]]), encoding="utf-8")
    rows, _, issues = read_rows([str(path)])
    assert len(rows) == 1  # lines[2]; lines[3] comes after the unreadable row, which ends the file
    got = {i.where: i.message for i in issues}
    assert "1,000,000,000 GPUs in one machine is beyond physical sense" in got[f"{path}:2"]
    assert "vram_gb: 1e+300 GB is beyond physical sense" in got[f"{path}:3"]
    assert "not readable as CSV" in got[f"{path}:5"]


@pytest.mark.parametrize(("body", "needle", "where"), [
    (b'{"model": "\\ud800"}', "lone surrogate", "$.model"),
    (b"[" * 100_000 + b"]" * 100_000, "nested more than 64 levels deep", "$"),
    (b'{"model": "Qwen3-8B-GGUF", "x": 1e999}', "out of range", "$.x"),
    (b"\xff", "not UTF-8", "$"),
])
def test_engine_serve_answers_hostile_bodies_with_400_and_where(body, needle, where):
    from engine.serve.app import Problem, parse_body

    with pytest.raises(Problem) as err:
        parse_body(body)
    (record,) = err.value.records
    assert err.value.status == 400 and record["code"] == "invalid_json"
    assert needle in record["message"] and record["location"] == where, record


def test_a_refused_item_of_a_llama_bench_json_array_is_one_issue_and_reading_goes_on(tmp_path):
    """A value refused after it was read whole (a lone surrogate, a huge number) costs its item only; invalid
    JSON ends the file. (Going on from the refused item once looped forever.)"""
    from engine.commands.curate import read_rows

    good = json.loads((FIX / "bench" / "llama-bench-rtx4080.json").read_text(encoding="utf-8"))
    bad = dict(good[0], gpu_info="NVIDIA \udc80")
    text = json.dumps([good[0], bad, dict(good[1], n_threads=10**30), good[1]])
    path = tmp_path / "bench.json"
    path.write_text(text, encoding="utf-8")
    rows, _, issues = read_rows([str(path)])
    assert len(rows) == 2 and [i.where.split(" ")[1] for i in issues] == ["$[1]", "$[2]"]
    assert "lone surrogate" in issues[0].message and "out of range" in issues[1].message
    path.write_text(text[: len(text) // 2], encoding="utf-8")
    rows, _, issues = read_rows([str(path)])
    assert issues and "the rest of the file is skipped" in issues[-1].message


def test_a_device_line_with_thousands_of_digits_in_a_llama_bench_markdown_file_is_skipped(tmp_path):
    """Fuzz seed curate:1348: curate's markdown reader parses the device lines above the table, and a device
    index of 5,000 digits hit Python's int() limit there (ValueError, exit 3)."""
    from engine.commands.curate import read_rows

    text = (FIX / "bench" / "rx7900xt-vulkan.md").read_text(encoding="utf-8")
    good, _, _ = read_rows([str(FIX / "bench" / "rx7900xt-vulkan.md")])
    path = tmp_path / "bench.md"
    path.write_text(text.replace("ggml_vulkan: 0 = ", "ggml_vulkan: " + "1" * 5000 + " = ", 1), encoding="utf-8")
    rows, _, _ = read_rows([str(path)])
    assert len(rows) == len(good) > 0
