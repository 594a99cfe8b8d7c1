"""Benchmark ingestion on real outputs: every format, normalisation, and line-precise rejections."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.curate.ingest import IngestError, parse_test, read_file, read_paths, sniff
from engine.curate.normalise import build_of, iso_date, model_info
from engine.curate.records import BenchRecord, IngestIssue

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "bench"


def records(name: str) -> list[BenchRecord]:
    return [i for i in read_file(FIX / name) if isinstance(i, BenchRecord)]


def issues(name: str) -> list[IngestIssue]:
    return [i for i in read_file(FIX / name) if isinstance(i, IngestIssue)]


def test_llama_bench_json_is_read_and_normalised():
    recs = records("llama-bench-rtx4080.json")
    assert [(r.test, r.n_prompt, r.n_gen, r.tps) for r in recs] == [("pp", 512, 0, 7100.002165),
                                                                    ("tg", 0, 128, 118.881588)]
    r = recs[1]
    assert r.fmt == "llama-bench-json" and r.where.endswith("llama-bench-rtx4080.json:48 $[1]")
    assert r.archetype == "nvidia-ada-sm_89-discrete-16gb-bw4"  # a 4080 is sold with 16 GB only
    assert r.backend == "cuda" and r.batch == 2048 and r.ubatch == 512 and r.threads == 8
    assert r.flash_attn is None  # -1 = auto
    assert (r.type_k, r.type_v) == ("f16", "f16")
    assert r.model_class == "dense-medium-quantized" and r.quant == "Q4_K_M" and r.params_b == 7.62
    assert (r.build, r.build_number, r.date) == ("b5163", 5163, "2025-04-24")
    assert r.tps_std == pytest.approx(1.041811)


def test_jsonl_and_csv_carry_the_same_results_as_json():
    def key(r: BenchRecord) -> tuple:
        return (r.archetype, r.model, r.model_class, r.backend, r.config(), r.metric, r.tps, r.build, r.date)

    ref = [key(r) for r in records("llama-bench-rtx4080.json")]
    assert [key(r) for r in records("llama-bench-rtx4080.jsonl")] == ref
    assert [key(r) for r in records("llama-bench-rtx4080.csv")] == ref
    assert [r.where.rsplit(":", 1)[1] for r in records("llama-bench-rtx4080.csv")] == ["2", "3"]


def test_markdown_with_device_and_build_lines():
    recs = records("arc-a310-vulkan.md")
    assert [r.metric for r in recs] == ["pp512", "pp4096", "tg128", "pp4096+tg128"]
    assert recs[3].test == "pg" and (recs[3].n_prompt, recs[3].n_gen) == (4096, 128)
    assert recs[0].hardware == "Intel(R) Arc(tm) A310 Graphics" and recs[0].vendor == "intel"
    assert recs[0].backend == "vulkan" and recs[0].build == "b6715" and recs[2].tps == 13.36
    assert recs[2].tps_std == 0.10 and recs[0].where.endswith("arc-a310-vulkan.md:9")


def test_markdown_takes_device_zero_of_several():
    recs = records("rx7900xt-vulkan.md")
    assert {r.hardware for r in recs} == {"AMD Radeon RX 7900 XT"}
    assert recs[0].archetype.startswith("amd-rdna3-gfx1100-discrete-")
    assert recs[0].model_class == "dense-medium-quantized" and recs[0].build_number == 6552


def test_markdown_without_hardware_is_rejected_per_line():
    bad = issues("readme-depth-no-device.md")
    assert [i.where.rsplit(":", 1)[1] for i in bad] == ["3", "4", "5", "6"]
    assert all("no hardware" in i.message for i in bad)
    assert records("readme-depth-no-device.md") == []


def test_ragged_csv_rows_are_rejected_with_line_numbers():
    bad = issues("llama-bench-readme-ragged.csv")
    assert [str(i).split(": ", 1)[0].rsplit(":", 1)[1] for i in bad] == ["2", "3"]
    assert "41 fields, the header has 42" in bad[0].message


def test_bad_community_rows_are_reported_and_the_rest_kept():
    items = list(read_file(FIX / "bad-rows.csv"))
    assert isinstance(items[0], BenchRecord)
    msgs = {str(i).split("bad-rows.csv:", 1)[1] for i in items[1:]}
    assert msgs == {"3: tokens_per_s: not a number: 'fast'",
                    "4: unknown test 'xx512' (expected ppN, tgN, ppN+tgM, optionally '@ dD')",
                    "5: backend: Input should be 'system', 'metal', 'cuda', 'vulkan', 'rocm', 'cpu', 'sycl', "
                    "'opencl' or 'npu' (got 'directml')",
                    "6: tps: Input should be greater than 0 (got -3.0)"}


def test_bad_jsonl_lines():
    bad = issues("bad.jsonl")
    assert [(i.where.rsplit(":", 1)[1], i.message.split(":")[0]) for i in bad] == [
        ("2", "invalid JSON"), ("3", "avg_ts is missing")]
    assert len(records("bad.jsonl")) == 1


def test_lemonade_bench_json():
    recs = records("lemonade/strix-halo-128gb_qwen3-coder-30b-a3b_args-sweep.json")
    assert {r.archetype for r in recs} == {"amd-rdna3.5-gfx1151-unified-128gb-bw2"}  # KFD "110501" + CPU name
    first = [r for r in recs if r.where.endswith("results[0].scenarios[0].tps")][0]
    assert (first.backend, first.batch, first.ubatch, first.scenario) == ("rocm", 2048, 512, "chat-short")
    assert first.tps == 69.256 and first.test == "tg" and first.build == "b10470"  # p50; the rocm build
    pp = [r for r in recs if r.where.endswith("results[0].scenarios[0].ttft_ms")][0]
    assert pp.test == "pp" and pp.n_prompt == 28 and pp.tps == pytest.approx(28 / 0.154009)
    assert first.moe and first.params_b == 30 and first.active_params_b == 3
    nv = records("lemonade/rtx-4090_qwen3-8b_ctx-sweep_compare.json")
    assert {r.archetype for r in nv} == {"nvidia-ada-sm_89-discrete-24gb-bw4"}
    assert {r.backend for r in nv} == {"cuda", "vulkan"}


def test_community_sample_all_valid():
    items = list(read_file(FIX / "community-sample.csv"))
    assert len(items) == 266 and all(isinstance(i, BenchRecord) for i in items)
    strix = [r for r in items if "Strix Halo" in r.hardware]
    assert {r.archetype for r in strix} == {"amd-rdna3.5-gfx1151-unified-128gb-bw2"}
    assert {r.date for r in strix} == {"2026-05-16"}
    m3 = [r for r in items if "M3 Max" in r.hardware]
    assert {r.archetype for r in m3} == {"apple-m3-max-40c-unified-64gb-bw3"} and {r.backend for r in m3} == {"metal"}


def test_directory_is_read_recursively_without_readme():
    items = list(read_paths([FIX]))
    wheres = {i.where.split(":", 1)[0] for i in items}
    assert str(FIX / "README.md") not in wheres
    assert any("lemonade/" in w for w in wheres) and any(w.endswith(".md") for w in wheres)


def test_unknown_format_and_missing_file(tmp_path: Path):
    junk = tmp_path / "notes.txt"
    junk.write_text("hello\nworld\n")
    with pytest.raises(IngestError, match="unknown benchmark format"):
        list(read_file(junk))
    with pytest.raises(IngestError, match="no such file"):
        list(read_paths([tmp_path / "missing.csv"]))
    assert sniff(Path("x.jsonl"), '{"avg_ts": 1}') == "llama-bench-jsonl"


@pytest.mark.parametrize("name, expect", [
    ("Qwen3.6-35B-A3B-UD-Q4_K_XL", ("moe-large-quantized", 35.0, 3.0, "Q4_K_XL")),
    ("llama 7B Q4_K - Medium", ("dense-medium-quantized", 7.0, None, "Q4_K_M")),
    ("gpt-oss-120b (ggml-org GGUF, MXFP4/Q8)", ("moe-huge-quantized", 120.0, None, "MXFP4")),
    ("LLaMA 3 70B F16", ("dense-xlarge-16bit", 70.0, None, "F16")),
    ("gemma-4-26B-A4B-it-BF16", ("moe-large-16bit", 26.0, 4.0, "BF16")),
    ("Llama-4-Scout-17B-16E-Instruct-UD-Q4_K_XL [llama4 17Bx16E (Scout) Q4_K - Medium]",
     (None, None, 17.0, "Q4_K_XL")),
])
def test_model_classes(name, expect):
    mi = model_info(name)
    assert (mi.model_class, mi.params_b, mi.active_params_b, mi.quant) == expect


def test_builds_dates_tests():
    assert build_of("83bc2f28 (6077)") == ("b6077", 6077)
    assert build_of("10217 (ddd4ec142)") == ("b10217", 10217)
    assert build_of("c264f65ff") == ("c264f65ff", None)
    assert [iso_date(x) for x in ("16 May 2026", "20260804", "2024-05", "2025-04-24T11:57:09Z", "soon")] == [
        "2026-05-16", "2026-08-04", "2024-05-01", "2025-04-24", ""]
    assert parse_test("pp2048 @ d32768") == ("pp", 2048, 0, 32768)
    assert parse_test("tg 128") == ("tg", 0, 128, 0)
    with pytest.raises(ValueError):
        parse_test("tg")


def test_llama_bench_multi_gpu_info_counts_identical_cards(tmp_path: Path):
    import json

    objs = json.loads((FIX / "llama-bench-rtx4080.json").read_text())
    objs[0]["gpu_info"] = "NVIDIA GeForce RTX 4080, NVIDIA GeForce RTX 4080"
    f = tmp_path / "two.json"
    f.write_text(json.dumps(objs))
    recs = [r for r in read_file(f) if isinstance(r, BenchRecord)]
    assert recs[0].archetype == "nvidia-ada-sm_89-discrete-16gb-bw4-x2" and recs[0].gpu_count == 2
    assert recs[1].archetype == "nvidia-ada-sm_89-discrete-16gb-bw4"


def test_an_infinite_integer_column_is_a_rejected_row_not_a_crash(tmp_path: Path):
    f = tmp_path / "inf.csv"
    f.write_text("source_url,hardware,gpu_family_or_arch,vram_gb,unified_memory,backend,model,test,batch,"
                 "tokens_per_s\nx,AMD Radeon RX 7900 XTX,gfx1100,24,false,rocm,Qwen3-8B-Q4_K_M,pp512,inf,100\n")
    (issue,) = read_file(f)
    assert isinstance(issue, IngestIssue) and issue.message == "batch: not a number: 'inf'"


def test_malformed_lemonade_bench_parts_are_rejected_not_crashes(tmp_path: Path):
    """A damaged Lemonade bench file: each bad model / result / scenario is a located issue, the rest is read."""
    import json

    doc = json.loads((FIX / "lemonade/strix-halo-128gb_qwen3-coder-30b-a3b_args-sweep.json").read_text())
    good = len(records("lemonade/strix-halo-128gb_qwen3-coder-30b-a3b_args-sweep.json"))
    res = doc["models"][0]["results"]
    res[0]["scenarios"][0] = "not an object"
    res[0]["scenarios"][1]["tps"] = 12.5  # a bare number where a stats block belongs
    res.append(["not", "a", "result"])
    doc["models"].append(42)
    path = tmp_path / "damaged-bench.json"
    path.write_text(json.dumps(doc))
    items = list(read_file(path))
    bad = {i.where.split(":", 1)[1]: i.message for i in items if isinstance(i, IngestIssue)}
    assert bad["$.models[0].results[0].scenarios[0]"] == "expected an object"
    assert "tps: expected a stats object" in bad["$.models[0].results[0].scenarios[1]"]
    assert bad[f"$.models[0].results[{len(res) - 1}]"] == "expected an object"
    assert bad["$.models[1]"] == "expected an object"
    kept = [i for i in items if isinstance(i, BenchRecord)]
    assert 0 < len(kept) < good
