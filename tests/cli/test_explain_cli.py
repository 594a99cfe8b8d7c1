"""`engine explain` as a real subprocess: the three levels, text and JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STRIX = ROOT / "tests" / "fixtures" / "system-info" / "strix-halo-128gb-linux.json"
STARTER = str(ROOT / "rulebook" / "defaults")  # the starter rulebook alone: Lemonade's behaviour
GOLDEN_BOOK = ROOT / "tests" / "golden" / "rulebook"


def explain(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", "explain", "--model", "Qwen3-4B-GGUF",
                           "--system-info", str(STRIX), "--no-memory-fit", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_levels_in_json():
    docs = {}
    for level in ("decisions", "full", "why-not"):
        p = explain("--level", level, "--json", "--rulebook", str(GOLDEN_BOOK))
        assert p.returncode == 0, p.stderr
        docs[level] = json.loads(p.stdout)
        assert docs[level]["kind"] == "explanation" and docs[level]["level"] == level
    assert "matched" not in docs["decisions"]
    assert [m["rule_id"] for m in docs["full"]["matched"]][:3] == ["defaults", "default-cpu", "default-vulkan"]
    misses = {m["rule"] for m in docs["why-not"]["why_not"]}
    assert "strix-rocm-moe" in misses  # the 4B model is dense: `moe == True` fails
    failed = next(m["failed"] for m in docs["why-not"]["why_not"] if m["rule"] == "strix-rocm-moe")
    assert failed["attr"] == "moe" and failed["got"] is False
    for doc in docs.values():
        assert doc["params"]["backend"]["value"] == "vulkan"


def test_text_default_level_is_decisions_and_why_not_lists_misses():
    p = explain("--rulebook", STARTER)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("explain (decisions)") and "overrode:" not in p.stdout
    assert "  backend = vulkan\n    from recipe-default rule lemonade-default-vulkan" in p.stdout
    p = explain("--level", "why-not", "--rulebook", STARTER)
    assert p.returncode == 0, p.stderr
    assert "did not match" in p.stdout and "lemonade_default == 'cuda' failed (context: vulkan)" in p.stdout
    p = explain("--level", "everything")
    assert p.returncode == 2 and "invalid choice" in p.stderr


def test_shipped_rulebook_explains_its_evidence():
    p = explain("--json", "--level", "full")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    winner = doc["params"]["backend"]["rule"]
    assert any(m["rule_id"] == winner for m in doc["matched"])
    if doc["expected"] is not None:  # the winner's speed, or (a known failure decided) a matched rule's for the backend
        assert doc["expected"]["tokens_per_s"] > 0
        assert doc["expected"]["rule_id"] == winner or any(m["rule_id"] == doc["expected"]["rule_id"]
                                                           for m in doc["matched"])
