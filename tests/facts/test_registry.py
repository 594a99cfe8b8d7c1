"""Model specs: Lemonade registry names, GGUF paths, model-facts JSON files, name parsing, fallbacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facts.errors import ModelFactsError
from facts.registry import (
    REGISTRY_PATH,
    fallback_model_facts,
    load_registry,
    name_facts,
    resolve_model_spec,
)

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "gguf"


def test_bundled_registry_is_lemonades_copy():
    assert REGISTRY_PATH.name == "server_models.json"  # its sha256 is pinned by tests/facts/test_data_provenance.py
    assert len(load_registry()) >= 200


@pytest.mark.parametrize("text, want", [
    ("unsloth/Qwen3-30B-A3B-GGUF:Q4_K_M", {"params_b": 30.0, "active_params_b": 3.0, "is_moe": True,
                                           "quant": "Q4_K_M"}),
    ("unsloth/Qwen3-8B-GGUF:Q4_1", {"params_b": 8.0, "quant": "Q4_1"}),
    ("unsloth/gemma-3-270m-it-GGUF:gemma-3-270m-it-UD-IQ2_M.gguf", {"params_b": 0.27, "quant": "UD-IQ2_M"}),
    ("unsloth/Qwen3-Coder-Next-GGUF:Qwen3-Coder-Next-MXFP4_MOE.gguf", {"quant": "MXFP4_MOE"}),
    ("unsloth/Llama-4-Scout-17B-16E-Instruct-GGUF:Q4_K_S", {"active_params_b": 17.0, "is_moe": True}),
    ("unsloth/gemma-4-E4B-it-GGUF:Q4_K_M", {"params_b": 4.0, "quant": "Q4_K_M"}),
])
def test_name_facts(text, want):
    got = name_facts(text)
    for k, v in want.items():
        assert got[k] == pytest.approx(v) if isinstance(v, float) else got[k] == v, (k, got)


def test_registry_name_exact():
    m = resolve_model_spec("Qwen3-30B-A3B-GGUF")
    assert m.name == "Qwen3-30B-A3B-GGUF"
    assert m.checkpoint == "unsloth/Qwen3-30B-A3B-GGUF:Q4_0"
    assert m.recipe == "llamacpp"
    assert m.params_b == 30 and m.active_params_b == 3 and m.is_moe and m.quant == "Q4_0"
    assert m.file_bytes == 17_400_000_000
    assert {"params_b", "active_params_b", "file_bytes"} <= set(m.estimated)  # from the name and a rounded size
    assert m.block_count == 48 and "is_moe" not in m.estimated  # the shipped GGUF facts (registry_gguf.json)
    assert m.architecture == "qwen3moe" and m.layer_bytes == ()  # no tensor sizes until it is downloaded


def test_registry_name_case_insensitive():
    assert resolve_model_spec("qwen3-8b-gguf").name == "Qwen3-8B-GGUF"


def test_registry_miss_suggests():
    with pytest.raises(ModelFactsError, match="did you mean 'Qwen3-8B-GGUF'"):
        resolve_model_spec("Qwen3-8B-GUF")


def test_registry_embedding_and_reranker_labels():
    assert resolve_model_spec("Qwen3-Embedding-0.6B-GGUF").embedding
    r = resolve_model_spec("bge-reranker-v2-m3-GGUF")
    assert r.reranker and not r.embedding


def test_registry_mmproj_and_draft_recorded():
    m = resolve_model_spec("Gemma-4-26B-A4B-it-MTP-GGUF")
    assert m.checkpoint == "unsloth/gemma-4-26B-A4B-it-GGUF:UD-Q4_K_M"
    assert "draft" in m.provenance and "mmproj" in m.provenance


def test_gguf_path():
    m = resolve_model_spec(str(FIX / "qwen3moe.gguf"))
    assert m.architecture == "qwen3moe" and m.is_moe and m.estimated == ()


def test_json_facts(tmp_path):
    p = tmp_path / "m.json"
    p.write_text(json.dumps({"architecture": "qwen3moe", "params_b": 30.5, "active_params_b": 3.3,
                             "quant": "Q4_K_M", "size_gib": 17.3, "trained_ctx": 40960}))
    m = resolve_model_spec(str(p))
    assert m.is_moe and m.file_bytes == round(17.3 * (1 << 30)) and m.trained_ctx == 40960


def test_json_unknown_key(tmp_path):
    p = tmp_path / "m.json"
    p.write_text(json.dumps({"architecture": "llama", "paramz_b": 8}))
    with pytest.raises(ModelFactsError, match="unknown key 'paramz_b'"):
        resolve_model_spec(str(p))


def test_json_bad_value_names_field(tmp_path):
    p = tmp_path / "m.json"
    p.write_text(json.dumps({"params_b": -1}))
    with pytest.raises(ModelFactsError, match="params_b"):
        resolve_model_spec(str(p))


def test_json_syntax_error_located(tmp_path):
    p = tmp_path / "m.json"
    p.write_text('{"params_b": 8,\n  oops}')
    with pytest.raises(ModelFactsError, match=r"m.json:2:\d+.*invalid JSON"):
        resolve_model_spec(str(p))


def test_missing_path():
    with pytest.raises(ModelFactsError, match="no such file"):
        resolve_model_spec("/nonexistent/model.gguf")


def test_directory(tmp_path):
    with pytest.raises(ModelFactsError, match="is a directory"):
        resolve_model_spec(str(tmp_path))


def test_corrupt_gguf_then_fallback(tmp_path):
    p = tmp_path / "Qwen3-14B-Q4_K_M.gguf"
    p.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 10)
    with pytest.raises(ModelFactsError):
        resolve_model_spec(str(p))
    m = fallback_model_facts(str(p), 9_000_000_000)
    assert m.params_b == 14 and m.quant == "Q4_K_M" and m.file_bytes == 9_000_000_000
    assert {"params_b", "quant", "file_bytes"} <= set(m.estimated)


def test_every_llamacpp_registry_entry_resolves():
    for name, entry in load_registry().items():
        m = resolve_model_spec(name)
        assert m.recipe == entry["recipe"]
        assert m.file_bytes == round(entry["size"] * 1e9)


# ---- a registry model Lemonade has already downloaded (the Hugging Face hub cache) ---------------------

def _hub_file(cache: Path, repo: str, name: str, data: bytes) -> Path:
    snap = cache / ("models--" + repo.replace("/", "--")) / "snapshots" / "0123abcd"
    snap.mkdir(parents=True, exist_ok=True)
    path = snap / name
    path.write_bytes(data)
    return path


def test_a_downloaded_gguf_replaces_the_registry_estimates(tmp_path, monkeypatch):
    """Qwen3-0.6B-GGUF is unsloth/Qwen3-0.6B-GGUF:Q4_0; with that file in the hub cache, its header is read."""
    from facts.gguf import read_model_facts

    gguf = Path(__file__).resolve().parents[1] / "fixtures" / "gguf" / "llama-gqa.gguf"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    before = resolve_model_spec("Qwen3-0.6B-GGUF")
    assert before.block_count == 28 and "file_bytes" in before.estimated  # the shipped table; weights not read
    _hub_file(tmp_path, "unsloth/Qwen3-0.6B-GGUF", "mmproj-F16.gguf", b"not even a gguf")  # never picked
    _hub_file(tmp_path, "unsloth/Qwen3-0.6B-GGUF", "Qwen3-0.6B-Q4_0.gguf", gguf.read_bytes())
    after = resolve_model_spec("Qwen3-0.6B-GGUF")
    header = read_model_facts(gguf)
    assert (after.block_count, after.head_count_kv, after.file_bytes) == (
        header.block_count, header.head_count_kv, header.file_bytes)
    assert after.estimated == ()
    assert (after.name, after.checkpoint, after.recipe) == ("Qwen3-0.6B-GGUF", "unsloth/Qwen3-0.6B-GGUF:Q4_0",
                                                            "llamacpp")
    assert "Qwen3-0.6B-Q4_0.gguf" in after.provenance["*"]


def test_split_and_damaged_downloads_leave_the_registry_estimates(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    gguf = (Path(__file__).resolve().parents[1] / "fixtures" / "gguf" / "llama-gqa.gguf").read_bytes()
    _hub_file(tmp_path, "unsloth/Qwen3-30B-A3B-GGUF", "Qwen3-30B-A3B-Q4_0-00001-of-00002.gguf", gguf)
    assert "params_b" in resolve_model_spec("Qwen3-30B-A3B-GGUF").estimated  # split: header covers one part
    _hub_file(tmp_path, "unsloth/Qwen3-0.6B-GGUF", "Qwen3-0.6B-Q4_0.gguf", gguf[:100])  # truncated
    damaged = resolve_model_spec("Qwen3-0.6B-GGUF")  # the registry's facts stand: the shipped table and the size
    assert damaged.block_count == 28 and "file_bytes" in damaged.estimated and "gguf:" not in damaged.provenance["*"]


def test_the_hub_cache_is_found_as_huggingface_hub_finds_it(tmp_path):
    from facts._hf_cache import hub_cache

    assert hub_cache({"HF_HUB_CACHE": "/a", "HF_HOME": "/b"}) == Path("/a")
    assert hub_cache({"HF_HOME": "/b", "XDG_CACHE_HOME": "/c"}) == Path("/b/hub")
    assert hub_cache({"XDG_CACHE_HOME": "/c"}) == Path("/c/huggingface/hub")
    assert hub_cache({}) == Path.home() / ".cache" / "huggingface" / "hub"


def test_downloaded_projector_and_draft_sizes_are_counted(tmp_path, monkeypatch):
    """Muse-Glimmer-30B-GGUF names a projector and a dflash draft: their downloaded sizes are filled in."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    entry = load_registry()["Muse-Glimmer-30B-GGUF"]["checkpoints"]
    repo, _, mm = entry["mmproj"].partition(":")
    draft = entry["draft"].partition(":")[2]
    assert resolve_model_spec("Muse-Glimmer-30B-GGUF").mmproj_bytes is None
    _hub_file(tmp_path, repo, mm, b"\0" * 4096)
    _hub_file(tmp_path, repo, draft, b"\0" * 1000)
    facts = resolve_model_spec("Muse-Glimmer-30B-GGUF")
    assert (facts.mmproj_bytes, facts.draft_bytes) == (4096, 1000)
    assert "params_b" in facts.estimated  # the main weights are not downloaded: still estimates
