"""`engine facts`: text and JSON views, merged inputs, stdin, located input errors, detection fallback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import main

ROOT = Path(__file__).resolve().parents[2]
SI = ROOT / "tests" / "fixtures" / "system-info"
LD = ROOT / "tests" / "fixtures" / "llama-devices"


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["facts", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_envelope_for_a_system_info_document(capsys):
    code, out, err = run_cli(capsys, "--system-info", str(SI / "rx-7900-xtx-desktop-linux.json"), "--json")
    assert code == 0 and err == ""
    doc = json.loads(out)
    assert doc["schema_version"] == 2 and doc["kind"] == "facts"
    assert doc["archetype"]["id"] == "amd-rdna3-gfx1100-discrete-24gb-bw4"
    assert doc["archetype"]["backoff"][-1] == "discrete-24gb-bw4"
    assert doc["hardware"]["gpus"][0]["marketing_name"] == "Radeon RX 7900 XTX"
    assert doc["hardware"]["source"].startswith("system-info:")


def test_text_summary_shows_facts_archetype_chain_and_provenance(capsys):
    code, out, _ = run_cli(capsys, "--system-info", str(SI / "strix-halo-128gb-linux.json"))
    assert code == 0
    lines = out.splitlines()
    assert any(line.startswith("Archetype") and "amd-rdna3.5-gfx1151-unified-128gb-bw2" in line
               and "confidence high" in line for line in lines)
    assert any("back-off" in line and "amd-rdna3.5-unified-128gb-bw2 -> amd-unified-128gb-bw2 -> unified-128gb-bw2"
               in line for line in lines)
    assert any("gpus[0].bandwidth_gbs" in line and "gpus.csv:Radeon 8060S" in line for line in lines)
    assert any(line.startswith("GPU 0") and "Radeon 8060S" in line and "gfx1151" in line for line in lines)
    # aligned: the values of the summary rows start in one column
    rows = {line.split()[0]: line for line in lines if line.split()[0] in ("Source", "OS", "CPU", "Memory", "Archetype")}
    assert len(rows) == 5
    starts = {len(line) - len(line[len(key):].lstrip()) for key, line in rows.items()}
    assert len(starts) == 1


def test_both_inputs_are_merged(capsys):
    code, out, _ = run_cli(capsys, "--system-info", str(SI / "strix-halo-128gb-linux.json"),
                           "--llama-devices", str(LD / "strix-halo-observed-lines.txt"), "--json")
    doc = json.loads(out)
    assert code == 0 and len(doc["hardware"]["gpus"]) == 1
    assert doc["hardware"]["gpus"][0]["llama_devices"] == ["Vulkan0"]
    assert " + llama-devices:" in doc["hardware"]["source"]


def test_llama_devices_from_stdin_in_a_real_subprocess():
    text = (LD / "cuda-two-gpus-ollama.txt").read_text()
    proc = subprocess.run([sys.executable, "-m", "engine", "facts", "--llama-devices", "-", "--json"], input=text,
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["archetype"]["id"] == "nvidia-blackwell-sm_120-discrete-24gb-bw3"
    assert [g["llama_devices"] for g in doc["hardware"]["gpus"]] == [["CUDA0"], ["CUDA1"]]


def test_malformed_document_exit_2_one_line_per_problem(tmp_path):
    doc = json.loads((SI / "rtx-4090-desktop-linux.json").read_text())
    doc["devices"]["nvidia_gpu"][0]["vram_gb"] = "24GB"
    doc["devices"]["cpu"]["cores"] = None
    doc["devices"]["cpu"]["threads"] = 3.5
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    proc = subprocess.run([sys.executable, "-m", "engine", "facts", "--system-info", str(bad)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("engine facts: error:") and "not a valid system-info document" in lines[0]
    assert [line.strip() for line in lines[1:]] == [
        "devices.cpu.threads: expected an int, got 3.5",
        'devices.nvidia_gpu[0].vram_gb: expected a number, got "24GB"',
    ]


@pytest.mark.parametrize(
    ("flag", "path", "fragment"),
    [
        ("--system-info", LD / "vulkan-rtx2060-freebsd.txt", "--llama-devices"),
        ("--llama-devices", SI / "cpu-only-linux.json", "--system-info"),
        ("--system-info", ROOT / "tests" / "fixtures" / "no-such-file.json", "No such file"),
    ],
)
def test_wrong_kind_or_missing_file_is_exit_2(capsys, flag, path, fragment):
    code, out, err = run_cli(capsys, flag, str(path))
    assert code == 2 and out == "" and fragment in err


def test_warnings_go_to_stderr(capsys, tmp_path):
    doc = json.loads((SI / "rx-7900-xtx-desktop-linux.json").read_text())
    doc["devices"]["amd_gpu"][0]["vram_gb"] = 1.7e10
    p = tmp_path / "implausible.json"
    p.write_text(json.dumps(doc))
    code, out, err = run_cli(capsys, "--system-info", str(p), "--json")
    assert code == 0 and "implausible" in err and "implausible" in json.loads(out)["hardware"]["warnings"][0]


def test_no_input_detects_this_machine(capsys):
    code, out, _ = run_cli(capsys, "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["hardware"]["source"].startswith("detect")
    assert doc["archetype"]["id"] == doc["archetype"]["backoff"][0]
    assert doc["archetype"]["memclass"] in ("cpu", "unified", "discrete")
