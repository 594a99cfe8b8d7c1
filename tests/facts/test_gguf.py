"""GGUF header reader: facts from real (tiny, GGUFWriter-written) files, and located errors on bad input."""

from __future__ import annotations

import contextlib
import struct
from pathlib import Path

import gguf
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facts.errors import ModelFactsError
from facts.gguf import read_header, read_model_facts

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "gguf"
ALL = sorted(FIX.glob("*.gguf"))


def test_fixtures_exist():
    names = {p.stem for p in ALL}
    assert {"llama-gqa", "gemma2-swa", "gemma3-swa", "qwen3moe", "deepseek2-mla", "lfm2-hybrid"} <= names


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.stem)
def test_header_agrees_with_gguf_reader(path):
    """Our streaming reader and gguf's own GGUFReader see the same tensors, types, offsets and keys."""
    ours = read_header(path)
    ref = gguf.GGUFReader(str(path))
    assert [t.name for t in ours.tensors] == [t.name for t in ref.tensors]
    for a, b in zip(ours.tensors, ref.tensors, strict=True):
        assert a.nbytes == int(b.n_bytes)
        assert a.ggml_type == int(b.tensor_type)
        assert ours.data_offset + a.offset == int(b.data_offset)
    assert set(ours.metadata) == {k for k in ref.fields if not k.startswith("GGUF.")}


def test_llama_gqa_facts():
    m = read_model_facts(FIX / "llama-gqa.gguf")
    assert m.architecture == "llama"
    assert m.block_count == 3 and m.head_count == 8
    assert m.head_count_kv == (2, 2, 2)
    assert m.key_length == 16 and m.value_length == 16
    assert m.trained_ctx == 8192 and m.vocab_size == 384
    assert m.quant == "F16" and not m.is_moe and not m.swa_layers
    header = read_header(FIX / "llama-gqa.gguf")
    assert sum(m.layer_bytes) + m.output_bytes == sum(t.nbytes for t in header.tensors)
    assert m.file_bytes == (FIX / "llama-gqa.gguf").stat().st_size
    assert m.kv_layers == (True, True, True)
    assert m.estimated == ()


def test_gemma2_builtin_swa_period_two():
    m = read_model_facts(FIX / "gemma2-swa.gguf")
    assert m.swa_layers == (True, False, True, False)  # llama.cpp: il % 2 < 1
    assert m.sliding_window == 512


def test_gemma3_builtin_swa_period_six():
    m = read_model_facts(FIX / "gemma3-swa.gguf")
    assert m.swa_layers == (True, True, True, True, True, False, True)  # il % 6 < 5
    assert m.sliding_window == 1024


def test_moe_expert_bytes_and_active_params():
    m = read_model_facts(FIX / "qwen3moe.gguf")
    assert m.is_moe and m.expert_count == 8 and m.expert_used_count == 2
    assert len(m.expert_bytes) == 2 and all(0 < e < lb for e, lb in zip(m.expert_bytes, m.layer_bytes, strict=True))
    assert m.active_params_b < m.params_b
    assert m.expert_feed_forward_length == 64


def test_deepseek2_mla():
    m = read_model_facts(FIX / "deepseek2-mla.gguf")
    assert m.mla and m.kv_lora_rank == 64 and m.rope_dim == 32
    assert m.key_length == 96 and m.head_count_kv == (1, 1)
    assert m.expert_bytes[0] == 0 and m.expert_bytes[1] > 0  # one leading dense block


def test_lfm2_hybrid_recurrent_layers():
    m = read_model_facts(FIX / "lfm2-hybrid.gguf")
    assert m.recurrent_layers == (True, False, True, False)
    assert m.kv_layers == (False, True, False, True)
    assert m.recurrent_r_size == m.embedding_length * (3 - 1) and m.recurrent_s_size == 0


def _bytes(name: str = "llama-gqa") -> bytes:
    return (FIX / f"{name}.gguf").read_bytes()


def _write(tmp_path: Path, data: bytes, name: str = "m.gguf") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_not_gguf(tmp_path):
    with pytest.raises(ModelFactsError, match="not a GGUF file: magic .* at byte offset 0"):
        read_model_facts(_write(tmp_path, b"PK\x03\x04" + b"\0" * 64))


def test_empty_file(tmp_path):
    with pytest.raises(ModelFactsError, match="not a GGUF file"):
        read_model_facts(_write(tmp_path, b""))


def test_missing_file(tmp_path):
    with pytest.raises(ModelFactsError, match="cannot open"):
        read_model_facts(tmp_path / "nope.gguf")


def test_bad_version(tmp_path):
    data = bytearray(_bytes())
    data[4:8] = struct.pack("<I", 7)
    with pytest.raises(ModelFactsError, match="unsupported GGUF version 7 .*byte offset 4"):
        read_model_facts(_write(tmp_path, bytes(data)))


def test_big_endian_is_named(tmp_path):
    data = bytearray(_bytes())
    data[4:8] = struct.pack(">I", 3)
    with pytest.raises(ModelFactsError, match="big-endian"):
        read_model_facts(_write(tmp_path, bytes(data)))


def test_truncated_header_reports_offset(tmp_path):
    data = _bytes()
    with pytest.raises(ModelFactsError, match=r"truncated .*GGUF header.*byte offset \d+"):
        read_model_facts(_write(tmp_path, data[:2000]))


def test_truncated_tensor_data(tmp_path):
    data = _bytes()
    with pytest.raises(ModelFactsError, match="truncated GGUF file: tensor .* ends at byte"):
        read_model_facts(_write(tmp_path, data[:-100]))


def test_absurd_string_length(tmp_path):
    data = bytearray(_bytes())
    data[24:32] = struct.pack("<Q", 1 << 60)  # length of the first metadata key
    with pytest.raises(ModelFactsError, match="runs past the end of the file.*byte offset 24"):
        read_model_facts(_write(tmp_path, bytes(data)))


@pytest.mark.parametrize("cut", [4, 8, 16, 23, 24, 25, 100, 1000, 3000])
def test_every_prefix_is_a_clear_error(tmp_path, cut):
    with pytest.raises(ModelFactsError):
        read_model_facts(_write(tmp_path, _bytes()[:cut]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pos=st.integers(min_value=0, max_value=4000), value=st.integers(min_value=0, max_value=255))
def test_corrupted_bytes_never_crash(tmp_path, pos, value):
    """Any one-byte corruption of the header gives facts or a ModelFactsError, never another exception."""
    data = bytearray(_bytes())
    data[pos] = value
    with contextlib.suppress(ModelFactsError):
        read_model_facts(_write(tmp_path, bytes(data)))


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
def test_small_read_chunks_give_the_same_header(monkeypatch, chunk):
    """Refills in the middle of numbers, strings and vocabularies parse exactly like one big read."""
    import facts._gguf_header as hdr

    whole = read_header(FIX / "lfm2-hybrid.gguf")
    monkeypatch.setattr(hdr, "_CHUNK", chunk)
    pieces = read_header(FIX / "lfm2-hybrid.gguf")
    assert pieces.tensors == whole.tensors and pieces.data_offset == whole.data_offset
    assert pieces.metadata == whole.metadata


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["lfm2-hybrid", "gemma3-swa", "deepseek2-mla"]),
       edits=st.lists(st.tuples(st.integers(0, 3000), st.binary(min_size=1, max_size=8)), min_size=1, max_size=4))
def test_multi_byte_corruption_never_crashes(tmp_path, name, edits):
    data = bytearray(_bytes(name))
    for pos, blob in edits:
        data[pos:pos + len(blob)] = blob
    with contextlib.suppress(ModelFactsError):
        read_model_facts(_write(tmp_path, bytes(data)))


def test_wrongly_typed_metadata_is_a_model_facts_error(tmp_path):
    import gguf as g

    w = g.GGUFWriter(str(tmp_path / "bad.gguf"), "llama")
    w.add_block_count(2)
    w.add_embedding_length(64)
    w.add_string("llama.attention.head_count", "eight")
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(ModelFactsError, match="does not describe a valid model"):
        read_model_facts(tmp_path / "bad.gguf")
