"""The shipped GGUF facts of Lemonade's llama.cpp registry models: coverage, validity, llama.cpp semantics, logs."""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import pytest

from facts._estimate import layout
from facts._registry_gguf import (
    LAYOUT_FIELDS,
    gguf_metadata,
    load_table,
    registry_gguf_facts,
    unknown_reason,
)
from facts.gguf import read_model_facts
from facts.memory import MIB, Config, estimate
from facts.models import ModelFacts
from facts.registry import REGISTRY_PATH, name_facts, registry_model_facts

TABLE = load_table()
ROWS = TABLE["models"]
REGISTRY = json.loads(REGISTRY_PATH.read_text(encoding="utf-8"))
LLAMACPP = sorted(n for n, e in REGISTRY.items() if e.get("recipe") == "llamacpp")


def facts(name: str) -> ModelFacts:
    return ModelFacts(name=name, recipe="llamacpp", **registry_gguf_facts(name))


def f16_layout(m: ModelFacts):
    return layout(m, "f16", "f16", True)


# --------------------------------------------------------------------------------------------- (a) coverage

def test_every_llamacpp_entry_has_a_row_or_a_reason_and_nothing_else():
    assert sorted(set(ROWS) | set(TABLE["unknown"])) == LLAMACPP
    assert not set(ROWS) & set(TABLE["unknown"])
    assert len(ROWS) >= 75  # most of the 90 entries are established
    for name, why in TABLE["unknown"].items():
        assert isinstance(why, str) and len(why) > 20, name
        assert unknown_reason(name) == why
        assert registry_gguf_facts(name) is None


def test_a_name_outside_the_table_has_no_facts():
    assert registry_gguf_facts("no-such-model") is None
    assert unknown_reason("no-such-model") is None
    not_llamacpp = next(n for n, e in REGISTRY.items() if e.get("recipe") != "llamacpp")
    assert registry_gguf_facts(not_llamacpp) is None


def test_rows_carry_sources_and_honest_checked_flags():
    for name, row in ROWS.items():
        assert row["sources"] and all(s.startswith("https://") for s in row["sources"]), name
        if row["checked"]:
            assert "checked_keys" not in row, name
        else:
            assert set(row["checked_keys"]) <= set(row["gguf"]), name
            assert set(row["checked_keys"]) != set(row["gguf"]) or not row["gguf"], name
    assert sum(r["checked"] for r in ROWS.values()) >= 5


def test_rows_of_one_base_model_share_its_architecture():
    """Quant / MTP / mxfp variants of one base: same GGUF facts, an MTP GGUF adding only its NextN layers."""
    by_base: dict[str, list[str]] = {}
    for name, row in ROWS.items():
        by_base.setdefault(row["base_model"], []).append(name)
    shared = [names for names in by_base.values() if len(names) > 1]
    assert len(shared) >= 8
    for names in shared:
        plain = [{k: v for k, v in ROWS[n]["gguf"].items() if k not in ("block_count", "nextn_predict_layers")}
                 for n in names]
        assert all(p == plain[0] for p in plain), names
        layers = {ROWS[n]["gguf"].get("block_count", 0) - ROWS[n]["gguf"].get("nextn_predict_layers", 0)
                  for n in names}
        assert len(layers) == 1, names


# --------------------------------------------------------------------------------------------- (b) validity

@pytest.mark.parametrize("name", sorted(ROWS))
def test_every_row_is_valid_model_facts_and_estimates(name):
    got = registry_gguf_facts(name)
    assert "name" not in got and "recipe" not in got
    m = facts(name)
    assert m.architecture == ROWS[name]["architecture"]
    assert m.provenance["*"].startswith(f"registry-gguf:{name} ")
    for cfg in (Config(ctx_size=4096, parallel=1), Config(ctx_size=32768, ubatch=256, cache_type_k="q8_0",
                                                           cache_type_v="q8_0", parallel=4)):
        e = estimate(m, cfg)
        assert e.kv_bytes >= 0 and e.total_bytes > 0
    n = m.block_count
    for field in ("head_count_kv", "swa_layers", "recurrent_layers", "kv_layers"):
        seq = getattr(m, field)
        assert not seq or len(seq) == n, (name, field)


def test_the_cache_is_shared_and_rows_are_not_mutated():
    assert load_table() is TABLE
    first = registry_gguf_facts("Gemma-4-31B-it-GGUF")
    first["head_count_kv"] = ()
    assert len(registry_gguf_facts("Gemma-4-31B-it-GGUF")["head_count_kv"]) == 60


def _write_header(path: Path, md: dict) -> Path:
    """A header-only GGUF file holding exactly this metadata, as convert_hf_to_gguf would type it."""
    w = gguf.GGUFWriter(str(path), md["general.architecture"])
    for key, value in md.items():
        if key == "general.architecture":
            continue
        if isinstance(value, tuple):
            w.add_array(key, list(value))
        else:
            w.add_uint32(key, value)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.mark.parametrize("name", sorted(ROWS))
def test_a_row_means_what_facts_gguf_reads_from_that_header(tmp_path, name):
    """The same metadata written into a real GGUF file and read back by facts.gguf gives the same facts."""
    from_file = read_model_facts(_write_header(tmp_path / "m.gguf", gguf_metadata(name))).model_dump()
    ours = registry_gguf_facts(name)
    for key, value in ours.items():
        if key in ("provenance", "file_bytes", "mmproj_bytes", "draft_bytes"):
            continue
        assert from_file[key] == value, (name, key)
    if "attention.head_count_kv" not in ROWS[name]["gguf"]:
        assert not set(ours) & LAYOUT_FIELDS, name  # a row without KV heads states no memory layout


# --------------------------------------------------------------------------------------------- (c) regressions

@pytest.mark.parametrize("name", ["gpt-oss-120b-GGUF", "gpt-oss-120b-mxfp-GGUF"])
def test_gpt_oss_120b_is_moe_with_36_layers_and_every_other_layer_sliding(name):
    m = facts(name)
    assert m.is_moe and m.block_count == 36
    assert (m.expert_count, m.expert_used_count) == (128, 4)
    assert m.swa_layers == tuple(il % 2 == 0 for il in range(36)) and m.sliding_window == 128
    used = registry_model_facts(name, REGISTRY[name])  # what a registry name resolves to: the table's facts
    assert used.is_moe and used.block_count == 36 and "is_moe" not in used.estimated
    assert name_facts(name).get("is_moe") is None  # the name alone does not say MoE (the bug this table fixes)


def test_llama4_scout_is_moe_with_48_layers_three_of_four_chunked():
    m = facts("Llama-4-Scout-17B-16E-Instruct-GGUF")
    assert m.is_moe and m.block_count == 48 and (m.expert_count, m.expert_used_count) == (16, 1)
    assert m.swa_layers == tuple(il % 4 < 3 for il in range(48)) and m.sliding_window == 8192


def test_qwen3_next_has_36_recurrent_layers_and_a_small_kv():
    m = facts("Qwen3-Next-80B-A3B-Instruct-GGUF")
    assert m.block_count == 48 and m.is_moe
    assert sum(m.recurrent_layers) == 36 and sum(m.kv_layers) == 12
    assert m.recurrent_layers == tuple((il + 1) % 4 != 0 for il in range(48))
    lay = f16_layout(m)
    assert lay.exact
    assert lay.per_cell_base == 12 * 2 * 256 * 2 * 2 == 24576 < 100 * 1024
    # llama.cpp n_embd_r / n_embd_s: (d_conv-1) * (d_inner + 2*n_group*d_state), d_state * d_inner
    assert (m.recurrent_r_size, m.recurrent_s_size) == (3 * (4096 + 2 * 16 * 128), 128 * 4096)


@pytest.mark.parametrize("name", ["Qwen3-30B-A3B-GGUF", "Qwen3-30B-A3B-Instruct-2507-GGUF",
                                  "Qwen3-Coder-30B-A3B-Instruct-GGUF"])
def test_qwen3moe_kv_per_token_is_96_kib(name):
    lay = f16_layout(facts(name))
    assert lay.exact
    assert lay.per_cell_base == 48 * 4 * 128 * 2 * 2 == 98_304  # not the 512 KiB of the size table


def test_hybrids_and_mla_keep_kv_only_where_llama_cpp_does():
    glm = facts("GLM-4.7-Flash-GGUF")
    assert glm.mla and glm.kv_lora_rank == 512
    assert f16_layout(glm).per_cell_base == 47 * 576 * 2  # K only: the latent row, V is a view of it
    air = facts("GLM-4.5-Air-UD-Q4K-XL-GGUF")
    assert air.kv_layers == (True,) * 46 + (False,)  # the NextN layer holds no cells
    nemo = facts("Nemotron-3-Nano-30B-A3B-GGUF")
    assert (sum(nemo.recurrent_layers), sum(nemo.kv_layers)) == (23, 6)
    assert f16_layout(nemo).per_cell_base == 6 * 2 * 128 * 2 * 2
    e4b = facts("Gemma-4-E4B-it-GGUF")
    assert e4b.kv_layers == (True,) * 24 + (False,) * 18  # the last 18 layers reuse earlier KV
    mtp = facts("Qwen3.5-4B-MTP-GGUF")
    assert mtp.block_count == 33 and not mtp.kv_layers[-1] and not mtp.recurrent_layers[-1]


def test_rows_without_a_layout_leave_kv_to_the_estimate():
    for name in ("LFM2-8B-A1B-GGUF", "Gemma-4-26B-A4B-it-GGUF", "Muse-Glimmer-30B-GGUF"):
        m = facts(name)
        assert m.block_count and not m.recurrent_layers and not m.kv_layers and not m.head_count_kv, name
        assert not f16_layout(m).exact, name
    assert facts("LFM2-8B-A1B-GGUF").is_moe
    assert "is_moe" not in registry_gguf_facts("Qwen3.5-122B-A10B-GGUF")  # experts not established


# --------------------------------------------------------------------------------------------- (d) public logs
# print_info / llama_model_loader values pasted in public issues; per_token = logged n_embd_k_gqa + n_embd_v_gqa
# summed over the layers that own KV cells, in f16 bytes (what llama_kv_cache allocates per cell)
LOGGED = [
    {"name": "Qwen3-Next-80B-A3B-Instruct-GGUF", "url": "https://github.com/lmstudio-ai/lmstudio-bug-tracker/issues/1266",
     "logged": {"block_count": 48, "head_count": 16, "head_count_kv": 2, "key_length": 256, "value_length": 256,
                "feed_forward_length": 5120, "expert_count": 512, "expert_used_count": 10, "ssm_conv_kernel": 4,
                "ssm_inner_size": 4096, "ssm_state_size": 128, "ssm_time_step_rank": 32, "ssm_group_count": 16},
     "n_embd_k_gqa": 512, "n_embd_v_gqa": 512, "kv_layers": 12},
    {"name": "Qwen3-Next-80B-A3B-Instruct-GGUF", "url": "https://github.com/ggml-org/llama.cpp/pull/16095",
     "logged": {"trained_ctx": 262144, "embedding_length": 2048, "block_count": 48, "head_count": 16,
                "head_count_kv": 2, "key_length": 256}, "n_embd_k_gqa": 512, "n_embd_v_gqa": 512, "kv_layers": 12},
    {"name": "gpt-oss-120b-mxfp-GGUF", "url": "https://github.com/ggml-org/llama.cpp/issues/15112",
     "logged": {"trained_ctx": 131072, "embedding_length": 2880, "block_count": 36, "head_count": 64,
                "head_count_kv": 8}},
    {"name": "gpt-oss-120b-GGUF", "url": "https://github.com/mostlygeek/llama-swap/issues/437",
     "logged": {"block_count": 36, "trained_ctx": 131072, "embedding_length": 2880, "feed_forward_length": 2880,
                "head_count": 64, "head_count_kv": 8}},
    {"name": "Qwen3.5-27B-GGUF", "url": "https://github.com/ggml-org/llama.cpp/pull/23398",
     "logged": {"trained_ctx": 262144, "embedding_length": 5120, "head_count": 24, "head_count_kv": 4,
                "key_length": 256, "value_length": 256}, "n_embd_k_gqa": 1024, "n_embd_v_gqa": 1024,
     "kv_layers": 16},
    {"name": "Qwen3.5-27B-GGUF", "url": "https://github.com/ggml-org/llama.cpp/pull/23792",
     "logged": {"block_count": 64, "trained_ctx": 262144, "embedding_length": 5120, "feed_forward_length": 17408,
                "head_count": 24, "head_count_kv": 4, "key_length": 256}},
    {"name": "Qwen3.5-35B-A3B-GGUF", "url": "https://github.com/ollama/ollama/pull/16031",
     "logged": {"head_count": 16, "key_length": 256, "value_length": 256, "trained_ctx": 262144,
                "embedding_length": 2048, "expert_count": 256, "expert_feed_forward_length": 512}},
    {"name": "Qwen3.5-35B-A3B-GGUF", "url": "https://github.com/ikawrakow/ik_llama.cpp/issues/1432",
     "logged": {"head_count": 16, "head_count_kv": 2, "expert_count": 256, "expert_used_count": 8,
                "key_length": 256, "expert_feed_forward_length": 512, "ssm_conv_kernel": 4, "ssm_state_size": 128}},
    {"name": "Gemma-4-31B-it-GGUF", "url": "https://github.com/ggml-org/llama.cpp/pull/21760",
     "logged": {"key_length_swa": 256, "value_length_swa": 256, "vocab_size": 262144}},
    {"name": "Gemma-4-31B-it-GGUF", "url": "https://github.com/kyuz0/amd-strix-halo-toolboxes/issues/89",
     "logged": {"key_length": 512, "value_length": 512, "sliding_window": 1024, "key_length_swa": 256,
                "value_length_swa": 256}},
    {"name": "Gemma-4-12B-it-GGUF", "url": "https://github.com/zackshen/gguf/issues/21",
     "logged": {"block_count": 48, "trained_ctx": 262144, "embedding_length": 3840, "feed_forward_length": 15360,
                "head_count": 16}, "head_count_kv_prefix": [8, 8, 8, 8, 8, 1, 8, 8, 8, 8, 8, 1]},
    {"name": "Gemma-4-E4B-it-GGUF", "url": "https://github.com/ollama/ollama/issues/18123",
     "logged": {"head_count_kv": 2, "key_length": 512, "key_length_swa": 256, "sliding_window": 512,
                "value_length": 512, "value_length_swa": 256}, "swa_prefix": [True] * 5 + [False]},
    {"name": "GLM-4.7-Flash-GGUF", "url": "https://github.com/ikawrakow/ik_llama.cpp/issues/1173",
     "logged": {"kv_lora_rank": 512, "key_length": 576, "value_length": 512, "expert_feed_forward_length": 1536,
                "expert_count": 64, "expert_shared_count": 1, "rope_dim": 64}},
    {"name": "Nemotron-3-Nano-30B-A3B-GGUF", "url": "https://github.com/ggml-org/llama.cpp/issues/20570",
     "logged": {"head_count": 32, "expert_used_count": 6, "vocab_size": 131072},
     "head_count_kv_prefix": [0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0]},
    {"name": "Nemotron-3-Nano-30B-A3B-GGUF", "url": "https://github.com/lmstudio-ai/lmstudio-bug-tracker/issues/1365",
     "logged": {"ssm_conv_kernel": 4, "ssm_state_size": 128, "ssm_group_count": 8, "ssm_inner_size": 4096,
                "ssm_time_step_rank": 64, "key_length": 128, "value_length": 128, "expert_feed_forward_length": 1856,
                "expert_count": 128, "expert_shared_count": 1}},
    {"name": "LFM2-1.2B-GGUF", "url": "https://github.com/gpustack/gguf-parser-go/issues/31",
     "logged": {"block_count": 16, "trained_ctx": 128000, "embedding_length": 2048,
                "head_count_kv": (0, 0, 8, 0, 0, 8, 0, 0, 8, 0, 8, 0, 8, 0, 8, 0)}},
    {"name": "GLM-4.5-Air-UD-Q4K-XL-GGUF", "url": "https://github.com/ggml-org/llama.cpp/pull/15026",
     "logged": {"embedding_length": 4096, "feed_forward_length": 10944, "trained_ctx": 131072,
                "expert_feed_forward_length": 1408, "expert_count": 128, "head_count": 96, "head_count_kv": 8,
                "key_length": 128}},
]


@pytest.mark.parametrize("case", LOGGED, ids=lambda c: f"{c['name']}@{c['url'].rsplit('/', 3)[-3]}")
def test_facts_match_the_logged_header(case):
    m = facts(case["name"])
    for key, want in case["logged"].items():
        got = getattr(m, key)
        if key == "head_count_kv" and isinstance(want, int):  # a scalar in the log: every KV layer has it
            got = {h for h, own in zip(got, m.kv_layers, strict=True) if own}
            want = {want}
        assert got == want, (case["name"], key)
    if "head_count_kv_prefix" in case:
        assert list(m.head_count_kv[:len(case["head_count_kv_prefix"])]) == case["head_count_kv_prefix"]
    if "swa_prefix" in case:
        assert list(m.swa_layers[:len(case["swa_prefix"])]) == case["swa_prefix"]
    if "n_embd_k_gqa" in case:
        assert sum(m.kv_layers) == case["kv_layers"]
        assert f16_layout(m).per_cell_base == case["kv_layers"] * (case["n_embd_k_gqa"] + case["n_embd_v_gqa"]) * 2


def test_gemma4_31b_global_layers_are_the_logged_non_swa_cache_layers():
    """llama.cpp's non-SWA cache of Gemma 4 31B (#21760) holds layers 29, 35, ..., 59 and filters 26-28, 30-34...;
    its SWA layers have 2x the K/V width of its global layers (ik_llama.cpp#1607)."""
    m = facts("Gemma-4-31B-it-GGUF")
    lay = f16_layout(m)
    logged_non_swa = {29, 35, 41, 47, 53, 59}
    logged_filtered = {26, 27, 28, 30, 31, 32, 33, 34, 36, 40, 42, 46, 48, 52, 54, 58}
    non_swa = {il for il, c in enumerate(lay.cache) if c == 1}
    assert logged_non_swa <= non_swa and not logged_filtered & non_swa
    assert len(non_swa) == 10 and lay.cache.count(2) == 50
    assert lay.per_cell_swa / 50 == 2 * lay.per_cell_base / 10


def test_lfm2_kv_at_32k_is_the_384_mib_the_gguf_parser_issue_expects():
    """gguf-parser-go#31: 6 layers x 512 K elements x 2 (K+V) x 2 B x 32768 tokens = 384 MiB at f16."""
    e = estimate(facts("LFM2-1.2B-GGUF"), Config(ctx_size=32768, parallel=1, kv_unified=True))
    assert e.kv_bytes == 384 * MIB and e.recurrent_bytes == 10 * 2048 * 2 * 4


# KV per token the Llama-macOS catalog lists for the Qwen3.5 family ("ctxBytes/1k", MB = 2^20 per 1024 tokens)
CATALOG = "https://github.com/ggml-org/Llama-macOS/pull/63"


@pytest.mark.parametrize("name, kib_per_token", [("Qwen3.5-4B-GGUF", 32), ("Qwen3.5-9B-GGUF", 32),
                                                 ("Qwen3.5-27B-GGUF", 64), ("Qwen3.5-35B-A3B-GGUF", 20)])
def test_qwen35_kv_per_token_matches_the_catalog(name, kib_per_token):
    assert f16_layout(facts(name)).per_cell_base == kib_per_token * 1024, CATALOG
