"""Curation: noise-aware winners, outliers, duplicates, recency, deterministic and order-independent YAML."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.curate.curate import curate
from engine.curate.emit import render, write
from engine.curate.ingest import read_file, read_paths
from engine.curate.records import BenchRecord
from engine.curate.stats import outlier_flags, recency_weights, weighted_median
from engine.rulebook import load_rulebook

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "fixtures" / "bench"
COMMUNITY = ROOT / "data" / "community-bench"
SAMPLE = [r for r in read_file(FIX / "community-sample.csv") if isinstance(r, BenchRecord)]
ARCH = "amd-rdna3.5-gfx1151-unified-128gb-bw2"


def rec(i: int, backend: str, tps: float, *, model: str = "m-a", test: str = "tg", date: str = "2026-01-01",
        ubatch: int | None = None, std: float | None = None, where: str | None = None) -> BenchRecord:
    return BenchRecord(
        where=where or f"synthetic.csv:{i}", source="synthetic", fmt="community-csv", hardware="Strix Halo",
        archetype=ARCH, backoff=(ARCH, "amd-rdna3.5-unified-128gb-bw2"), vendor="amd", family="rdna3.5",
        arch="gfx1151", memclass="unified", model=model, params_b=30.0, quant="Q4_K_M",
        precision="quantized", size_class="large", model_class="dense-large-quantized", backend=backend,
        ubatch=ubatch, test=test, n_prompt=512 if test == "pp" else 0, n_gen=128 if test == "tg" else 0,
        tps=tps, tps_std=std, date=date)


def backend_decisions(result, scenario="chat", level="exact"):
    return [d for d in result.decisions if d.param == "backend" and d.scenario == scenario
            and d.hw_level == level]


def test_clear_winner_is_chosen_with_evidence():
    rows = [rec(i, "vulkan", 50 + i * 0.1) for i in range(4)] + [rec(10 + i, "rocm", 40 + i * 0.1) for i in range(4)]
    res = curate(rows)
    (d,) = [d for d in backend_decisions(res) if d.model_value == (("model_class", "dense-large-quantized"),)]
    assert d.value == "vulkan" and d.margin > 0.2
    ev = d.evidence
    assert ev["n"] == 4 and ev["metric"] == "tg128" and ev["median_tps"] == 50.15
    assert ev["runner_up"] == {"value": "rocm", "median_tps": 40.15, "n": 4}
    assert ev["dates"] == "2026-01-01..2026-01-01" and ev["sources"] == ["synthetic"]


def test_win_within_noise_is_not_a_decision():
    rows = [rec(i, "vulkan", 50.5) for i in range(4)] + [rec(10 + i, "rocm", 50.0) for i in range(4)]
    res = curate(rows)
    assert backend_decisions(res) == []
    assert any("within the noise" in s for s in res.skipped)
    # measured noise (stddev 5 %) raises the bar above a 4 % win
    noisy = [rec(i, "vulkan", 52.0, std=2.6) for i in range(4)] + [rec(10 + i, "rocm", 50.0, std=2.5)
                                                                   for i in range(4)]
    assert backend_decisions(curate(noisy)) == []


def test_outliers_are_excluded_and_reported():
    rows = [rec(i, "vulkan", v) for i, v in enumerate([50, 51, 49.5, 50.5, 150])]
    rows += [rec(10 + i, "rocm", 40) for i in range(3)]
    res = curate(rows)
    assert [o.row.where for o in res.outliers] == ["synthetic.csv:4"]
    assert max(r.tps for r in res.rows) == 51
    assert outlier_flags([10, 10.2, 9.9, 10.1, 30]) == [False, False, False, False, True]
    assert outlier_flags([10, 30]) == [False, False]  # too few to tell


def test_duplicates_are_dropped_even_from_other_files():
    rows = [rec(i, "vulkan", 50) for i in range(3)]
    dup = rec(0, "vulkan", 50, where="other.csv:9")
    res = curate(rows + [dup])
    assert res.duplicates == 3  # identical measurements: one kept


def test_newer_builds_outweigh_older_ones():
    old = [rec(i, "rocm", 30 + i * 0.1, date="2024-01-01") for i in range(5)]
    new = [rec(10 + i, "rocm", 60 + i * 0.1, date="2026-01-01") for i in range(3)]
    vk = [rec(20 + i, "vulkan", 45 + i * 0.1, date="2026-01-01") for i in range(4)]
    (d,) = [d for d in backend_decisions(curate(old + new + vk))
            if d.model_value == (("model_class", "dense-large-quantized"),)]
    assert d.value == "rocm"  # plain median of rocm rows would be 30.4 < 45
    w = recency_weights(["2026-01-01", "2025-07-05", ""])
    assert w[0] == 1.0 and 0.49 < w[1] < 0.51 and w[2] == 0.5
    assert weighted_median([1, 2, 100], [0.1, 0.1, 1.0]) == 100


def test_parameter_decision_is_conditioned_on_its_backend():
    rows = []
    for i, (ub, tps) in enumerate([(512, 400), (2048, 520), (512, 402), (2048, 522), (512, 401), (2048, 519)]):
        rows.append(rec(i, "rocm", tps, test="pp", ubatch=ub))
    rows += [rec(20 + i, "vulkan", 300, test="pp") for i in range(3)]
    res = curate(rows)
    ub = [d for d in res.decisions if d.param == "ubatch" and d.hw_level == "exact" and d.model_level == "class"]
    assert [(d.value, d.backend, d.scenario) for d in ub] == [(2048, "rocm", "coding")]
    rule = next(r for r in yaml.safe_load(next(iter(render(res).values())))["rules"]
                if r["set"] == {"ubatch": 2048} and "model_class" in r["when"])
    assert rule["when"]["backend"] == "rocm" and rule["evidence"]["runner_up"]["value"] == 512


def test_generated_yaml_loads_and_prefers_exact_ids(tmp_path: Path):
    res = curate(SAMPLE)
    files = write(res, tmp_path)
    book = load_rulebook(tmp_path)  # the rule core's loader validates every field
    assert len(book.rules) == len(res.decisions) > 0
    by_id = {r.id: r for r in book.rules}
    exact = [r for r in book.rules if any(c.attr == "archetype" for c in r.when)]
    assert exact and all(r.layer == "archetype" and r.evidence and r.evidence.n >= 3 for r in exact)
    strix = by_id.get("cur-amd-rdna3.5-gfx1151-unified-128gb-bw2-quantized-coding-backend")
    assert strix is not None and strix.set["backend"] == "rocm" and strix.priority == 630
    assert strix.evidence.runner_up["value"] == "vulkan" and strix.evidence.builds
    assert all(f.read_text().startswith("# Generated by `engine curate`") for f in files)


def test_write_removes_stale_files(tmp_path: Path):
    (tmp_path / "old-archetype.yaml").write_text("rules: []\n")
    write(curate(SAMPLE), tmp_path)
    assert not (tmp_path / "old-archetype.yaml").exists()


def test_output_is_deterministic():
    assert render(curate(SAMPLE)) == render(curate(list(reversed(SAMPLE))))
    text = "".join(render(curate(SAMPLE)).values())
    assert "T0" not in text.replace("T0", "")  # no timestamps
    for line in text.splitlines():
        if "median_tps:" in line:
            value = line.split(":")[1].strip()
            assert len(value.split(".")[-1]) <= 2 or "e" in value


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.permutations(SAMPLE))
def test_shuffled_rows_give_identical_yaml(rows):
    assert render(curate(rows)) == EXPECTED


EXPECTED = render(curate(SAMPLE))


def test_shipped_generated_rulebook_is_fresh(tmp_path: Path):
    """rulebook/generated/ is exactly what curation makes of data/community-bench (never hand-edited)."""
    items = [r for r in read_paths([COMMUNITY]) if isinstance(r, BenchRecord)]
    write(curate(items), tmp_path)
    shipped = ROOT / "rulebook" / "generated"
    names = sorted(p.name for p in shipped.glob("*.yaml"))
    assert names == sorted(p.name for p in tmp_path.glob("*.yaml"))
    for name in names:
        assert (shipped / name).read_text() == (tmp_path / name).read_text(), name


def test_lint_finds_nothing_in_curated_and_family_rules():
    import json
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "engine", "lint", "--json"], capture_output=True, text=True,
                       cwd=ROOT, timeout=300)
    doc = json.loads(p.stdout)
    assert any(f.startswith("rulebook/generated/") for f in doc["rulebook"]["files"])
    mine = [f for f in doc["findings"] if f["path"].startswith(("rulebook/generated", "rulebook/families"))]
    # correctness beats speed: a speed rule a known failure overrides is expected (and back when it is fixed)
    assert [f for f in mine if not (f["code"] == "shadowed" and ": known-failure-" in f["message"])] == []


def test_no_shipped_rule_sets_a_kv_cliff():
    """Quantised or mismatched K/V cache types are never set (CUDA/Vulkan flash-attention fall back)."""
    book = load_rulebook(ROOT / "rulebook")
    for rule in book.rules:
        k, v = rule.set.get("cache_type_k", "default"), rule.set.get("cache_type_v", "default")
        assert k == v and k in ("default", "f16"), rule.id


def test_rules_generalise_to_back_off_ids_and_family_when_two_archetypes_agree():
    def r(i: int, arch_id: str, backend: str, tps: float) -> BenchRecord:
        return rec(i, backend, tps).model_copy(update={
            "archetype": arch_id, "backoff": (arch_id, "amd-rdna3-discrete-24gb-bw4"), "family": "rdna3",
            "arch": arch_id.split("-")[2], "memclass": "discrete", "where": f"s.csv:{i}"})

    xtx, xt = "amd-rdna3-gfx1100-discrete-24gb-bw4", "amd-rdna3-gfx1101-discrete-24gb-bw4"
    rows = [r(i, xtx, "vulkan", 50 + i * 0.1) for i in range(3)] + [r(10 + i, xtx, "rocm", 40) for i in range(3)]
    rows += [r(20 + i, xt, "vulkan", 30 + i * 0.1) for i in range(3)] + [r(30 + i, xt, "rocm", 25) for i in range(3)]
    levels = {(d.hw_level, d.hw_value, d.priority) for d in curate(rows).decisions
              if d.model_level == "class" and d.param == "backend"}
    assert levels == {("exact", (("archetype", xtx), ("arch", "gfx1100")), 660),
                      ("exact", (("archetype", xt), ("arch", "gfx1101")), 660),
                      ("backoff", (("archetype", "amd-rdna3-discrete-24gb-bw4"), ("family", "rdna3"),
                                   ("vendor", "amd")), 560),
                      ("family", (("family", "rdna3"), ("vendor", "amd")), 260)}


def test_single_native_backend_data_gives_an_evidence_rule_but_claims_no_choice(tmp_path: Path):
    nv = [r for r in SAMPLE if "4090" in r.hardware]
    res = curate(nv)
    sole = [d for d in res.decisions if d.param == "backend" and d.hw_level == "exact"]
    assert sole and {d.value for d in sole} == {"cuda"} and all(d.priority < 200 for d in sole)
    assert all("runner_up" not in d.evidence and "no comparison" in d.evidence["note"] for d in sole)
    write(res, tmp_path)
    rule = next(r for r in load_rulebook(tmp_path).rules if r.id.endswith("dense-medium-quantized-chat-backend"))
    conds = {c.attr: c.value for c in rule.when}
    assert conds["mem_bucket_gb"] == 24 and conds["bw_tier"] == 4 and conds["gpu_count"] == 1
    assert rule.evidence.median_tps > 0 and rule.evidence.metric.startswith("tg")
    # a vulkan-only AMD card gets no rule: vulkan was not chosen over anything
    amd = [r.model_copy(update={"vendor": "amd", "backend": "vulkan", "archetype": "amd-rdna3-gfx1100-discrete-24gb-bw4",
                                "backoff": ("amd-rdna3-gfx1100-discrete-24gb-bw4",), "arch": "gfx1100",
                                "family": "rdna3"}) for r in nv]
    assert [d for d in curate(amd).decisions if d.param == "backend"] == []


def _snapshot(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def test_write_is_all_or_nothing_when_a_file_fails_midway(tmp_path: Path, monkeypatch):
    """File 3 of the new set cannot be written: the old directory is untouched (stale files kept, old contents
    intact, files that are not YAML kept) and no temporary directory is left behind."""
    import builtins

    out = tmp_path / "generated"
    write(curate(SAMPLE[: len(SAMPLE) // 3]), out)
    (out / "README.md").write_text("kept by curate\n")
    before = _snapshot(out)
    real_open, calls = builtins.open, []

    def failing(file, mode="r", *args, **kwargs):
        if "w" in mode and ".generated.new-" in str(file):
            calls.append(file)
            if len(calls) == 3:
                raise OSError(28, "No space left on device", str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", failing)
    with pytest.raises(OSError, match="No space left"):
        write(curate(SAMPLE), out)
    monkeypatch.setattr(builtins, "open", real_open)
    assert len(calls) == 3 and _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["generated"]
    files = write(curate(SAMPLE), out)  # and a write that succeeds replaces the set, keeping README.md
    assert sorted(p.name for p in out.iterdir()) == sorted([f.name for f in files] + ["README.md"])
    assert (out / "README.md").read_text() == "kept by curate\n"


def test_curate_out_on_a_full_disk_exits_2_and_leaves_the_old_rules(tmp_path: Path):
    """A real write failure (a file-size limit, as a full disk gives it: EFBIG instead of ENOSPC) in a real
    `engine curate` process."""
    import resource
    import signal
    import subprocess
    import sys

    out = tmp_path / "generated"
    write(curate(SAMPLE[:40]), out)
    before = _snapshot(out)
    assert max(len(v) for v in before.values()) < 64 * 1024

    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    p = subprocess.run([sys.executable, "-m", "engine", "curate", str(COMMUNITY), "--out", str(out)],
                       capture_output=True, text=True, cwd=ROOT, timeout=600, preexec_fn=small_disk)
    assert p.returncode == 2 and "File too large" in p.stderr, p.stderr[-2000:]
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["generated"]
