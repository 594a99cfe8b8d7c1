"""`engine lint` end to end: a real subprocess, exit codes, text lines and the JSON envelope."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIX = "tests/fixtures/rulebooks"


def _lint(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", "lint", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60)


def test_clean_rulebook_exits_0_with_empty_stdout():
    proc = _lint(f"{FIX}/good")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert "5 rules in 2 files; 0 error(s), 0 warning(s)" in proc.stderr


def test_errors_exit_1_one_line_per_finding():
    proc = _lint(f"{FIX}/lint")
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert len(lines) == 3
    pattern = re.compile(r"^[^:]+\.yaml:\d+: (error|warning) [a-z-]+: .+$")
    assert all(pattern.match(line) for line in lines), lines
    assert lines[0].startswith(f"{FIX}/lint/findings.yaml:3: error conflict: rdna3-big-ubatch and rdna-small-ubatch")


def test_schema_errors_exit_1():
    proc = _lint(f"{FIX}/bad")
    assert proc.returncode == 1
    assert f"{FIX}/bad/schema.yaml:20: error schema: rules[1].set.mystery: unknown parameter 'mystery'" in proc.stdout
    assert f"{FIX}/bad/syntax.yaml:4: error schema:" in proc.stdout


def test_warnings_only_exit_0(tmp_path):
    shutil.copytree(REPO / FIX / "good", tmp_path / "rb")
    (tmp_path / "rb" / "extra.yaml").write_text(
        "rules:\n  - id: shadowed-threads\n    description: the recipe default below always wins\n"
        "    layer: recipe-default\n    priority: 5\n    when: {os: linux}\n    set: {threads: 4}\n"
        "  - id: user-threads\n    description: higher layer, no conditions\n    layer: family\n"
        "    set: {threads: 8}\n")
    proc = _lint("rb", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == [
        "rb/extra.yaml:2: warning shadowed: shadowed-threads never decides anything: user-threads "
        "(rb/extra.yaml:8, salience 2000) matches whenever it does and sets threads"]


def test_unreadable_input_exits_2():
    proc = _lint("no/such/dir")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "does not exist" in proc.stderr


def test_json_envelope():
    proc = _lint(f"{FIX}/lint", "--json")
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert doc["schema_version"] == 2 and doc["kind"] == "lint"
    assert doc["counts"] == {"errors": 1, "warnings": 2} and doc["errors"] == []
    assert doc["rulebook"]["rules"] == 10 and doc["rulebook"]["name"].startswith("rulebook@")
    first = doc["findings"][0]
    assert set(first) == {"path", "line", "severity", "code", "message", "rule"}
    assert (first["code"], first["rule"], first["line"]) == ("conflict", "rdna3-big-ubatch", 3)
    bad = json.loads(_lint(f"{FIX}/bad", "--json").stdout)
    assert bad["rulebook"] is None and bad["counts"]["errors"] == 22


def test_several_directories_are_linted_together(tmp_path):
    dup = tmp_path / "more"
    dup.mkdir()
    (dup / "dup.yaml").write_text("rules:\n  - id: default-params\n    description: d\n    layer: family\n"
                                  "    set: {batch: 64}\n")
    proc = _lint(f"{FIX}/good", str(dup))
    assert proc.returncode == 1
    assert "error duplicate-id: rules[0].id: duplicate rule id 'default-params'" in proc.stdout
