"""`engine memory`: llama-server flags, JSON envelope with integer byte counts, aligned text, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import main

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "gguf"


def run_json(capsys, *argv):
    assert main(["memory", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_envelope_and_bytes(capsys):
    doc = run_json(capsys, str(FIX / "gemma3-swa.gguf"), "-c", "8192", "-np", "1", "-ub", "512")
    assert doc["schema_version"] == 2 and doc["kind"] == "memory"
    for key in ("kv_bytes", "swa_kv_bytes", "recurrent_bytes", "compute_bytes", "weights_bytes", "total_bytes",
                "kv_cells", "swa_cells", "n_stream"):
        assert isinstance(doc[key], int), key
    assert doc["kv_cells"] == 8192 and doc["swa_cells"] == 1536 and doc["n_stream"] == 1
    assert doc["kv_bytes"] == 8192 * 32 * 2 * 2
    assert doc["swa_kv_bytes"] == 6 * 1536 * 32 * 2 * 2
    assert doc["estimated"] is False
    parts = ("weights_bytes", "kv_bytes", "swa_kv_bytes", "recurrent_bytes", "compute_bytes")
    assert doc["total_bytes"] == sum(doc[k] for k in parts)


def test_defaults_are_llama_servers(capsys):
    doc = run_json(capsys, str(FIX / "llama-mha.gguf"))
    cfg = doc["config"]
    assert cfg["ctx_size"] == 8192  # -c 0 = the trained context
    assert (cfg["batch"], cfg["ubatch"], cfg["parallel"], cfg["kv_unified"]) == (2048, 512, 4, True)
    assert cfg["flash_attn"] == "on"


def test_long_flags_and_no_unified(capsys):
    doc = run_json(capsys, str(FIX / "llama-mha.gguf"), "--ctx-size", "10000", "--parallel", "3",
                   "--no-kv-unified", "--cache-type-k", "q8_0", "--cache-type-v", "q8_0", "--flash-attn", "on")
    assert (doc["kv_cells"], doc["n_stream"]) == (3584, 3)
    assert doc["kv_bytes"] == 2 * 3584 * 3 * 2 * (4 * 34)


def test_kv_unified_flag(capsys):
    doc = run_json(capsys, str(FIX / "llama-mha.gguf"), "-c", "8192", "-np", "2", "-kvu")
    assert doc["n_stream"] == 1 and doc["kv_cells"] == 8192


def test_swa_full(capsys):
    doc = run_json(capsys, str(FIX / "gemma2-swa.gguf"), "-c", "8192", "--swa-full")
    assert doc["swa_cells"] == 8192


def test_registry_name_is_estimated(capsys):
    doc = run_json(capsys, "Qwen3-8B-GGUF", "-c", "4096")
    assert doc["estimated"] is True and doc["weights_bytes"] == 5_250_000_000


def test_text_table(capsys):
    assert main(["memory", str(FIX / "lfm2-hybrid.gguf"), "-c", "4096"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("lfm2-hybrid (lfm2)")
    rows = [ln for ln in lines if " MiB " in ln]
    assert any(ln.startswith("recurrent state") for ln in rows) and rows[-1].startswith("total")
    assert len({ln.index(" MiB") for ln in rows}) == 1  # aligned


def test_quantised_v_without_fa_is_a_usage_error(capsys):
    assert main(["memory", str(FIX / "llama-mha.gguf"), "-ctv", "q8_0", "-fa", "off"]) == 2
    assert "requires flash attention" in capsys.readouterr().err


def test_unknown_model_exit_2(capsys):
    assert main(["memory", "Qwen3-8B-GUF"]) == 2
    assert "did you mean" in capsys.readouterr().err


def test_corrupt_gguf_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00\x01")
    assert main(["memory", str(bad)]) == 2
    assert "byte offset" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["-np", "0"], ["-c", "-5"]])
def test_bad_numbers(capsys, argv):
    assert main(["memory", str(FIX / "llama-mha.gguf"), *argv]) == 2


def test_cache_type_choices_are_the_memory_models():
    from engine.commands.memory import CACHE_CHOICES
    from facts.memory import CACHE_TYPES

    assert tuple(CACHE_TYPES) == CACHE_CHOICES


def test_real_subprocess_stdout_is_only_json():
    proc = subprocess.run([sys.executable, "-m", "engine", "memory", str(FIX / "qwen3moe.gguf"), "--json"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["kind"] == "memory"
