"""engine learn / engine forget: local rules from measurements that beat the recommendation beyond the noise.

Measurements are the Strix Halo args sweep (a real `lemonade bench --json` shape: rocm and vulkan, `-ub 512` and
`-ub 2048`, five scenarios, three runs each), with one configuration made faster where a test needs a winner."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from engine import config
from engine.adaptive import learn, measure
from engine.adaptive.context import Expecter, find_hardware
from tests.support.cli import run_engine

ROOT = Path(__file__).resolve().parents[2]
SWEEP = ROOT / "tests" / "fixtures" / "bench" / "lemonade" / "strix-halo-128gb_qwen3-coder-30b-a3b_args-sweep.json"
STRIX = ROOT / "tests" / "fixtures" / "system-info" / "strix-halo-128gb-linux.json"
MODEL = "Qwen3-Coder-30B-A3B-Instruct-GGUF"
CONFIGS = (("rocm", "-b 2048 -ub 512"), ("rocm", "-b 2048 -ub 2048"), ("vulkan", "-b 2048 -ub 512"),
           ("vulkan", "-b 2048 -ub 2048"))


def _faster(doc: dict, factors: dict[tuple[str, str], float]) -> dict:
    """The sweep with each configuration's tokens/s figures scaled by its factor."""
    out = copy.deepcopy(doc)
    for result in out["models"][0]["results"]:
        f = factors.get((result["backend"], result["backend_args"]), 1.0)
        for scenario in result["scenarios"]:
            scenario["tps"] = {k: v * f for k, v in scenario["tps"].items()}
    return out


def _write(tmp_path: Path, name: str, doc: dict) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def engine(cfg: Path, *args: str) -> subprocess.CompletedProcess:
    return run_engine(*args, env={"LEMONADE_AUTOTUNE_CONFIG_DIR": str(cfg)})


def _args(cfg: Path) -> str:
    p = engine(cfg, "recommend", "--model", MODEL, "--system-info", str(STRIX), "--json")
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)["recipe_options"]["llamacpp_args"]


SWEEP_DOC = json.loads(SWEEP.read_text(encoding="utf-8"))


def test_the_recorded_sweep_teaches_nothing_the_recommendation_is_already_the_fastest(tmp_path):
    p = engine(tmp_path / "cfg", "learn", str(SWEEP), "--system-info", str(STRIX), "--json")
    body = json.loads(p.stdout)
    assert p.returncode == 0 and body["proposals"] == [] and body["mode"] == "proposed"
    assert any("no measured configuration beats the recommendation" in n for n in body["notes"])
    assert not (tmp_path / "cfg" / config.LOCAL_RULEBOOK).exists()


def test_learn_saves_on_yes_only_is_idempotent_shows_in_explain_and_forget_removes_it(tmp_path):
    cfg = tmp_path / "cfg"
    better = _write(tmp_path, "better.json", _faster(SWEEP_DOC, {("vulkan", "-b 2048 -ub 2048"): 1.12}))
    learned = cfg / config.LOCAL_RULEBOOK / learn.LEARNED_FILE
    before = _args(cfg)
    assert "-ub" not in before  # the recommendation leaves the micro-batch to llama.cpp (512)

    p = engine(cfg, "learn", str(better), "--system-info", str(STRIX))  # no terminal, no --yes: propose only
    assert p.returncode == 0 and "set {'ubatch': 2048}" in p.stdout and "pass --yes to save" in p.stdout
    assert not learned.exists()
    p = engine(cfg, "learn", str(better), "--system-info", str(STRIX), "--dry-run", "--yes")
    assert p.returncode == 0 and not learned.exists()

    p = engine(cfg, "learn", str(better), "--system-info", str(STRIX), "--yes", "--json")
    body = json.loads(p.stdout)
    assert p.returncode == 0 and body["mode"] == "saved", p.stderr
    (prop,) = body["proposals"]
    assert prop["rule"]["set"] == {"ubatch": 2048} and prop["rule"]["layer"] == "local"
    assert prop["gain_pct"] > prop["noise_pct"] and prop["runs"] == 3
    saved = learned.read_bytes()
    assert "-ub 2048" in _args(cfg)
    p = engine(cfg, "explain", "--model", MODEL, "--system-info", str(STRIX))
    assert f"local rule {prop['id']}" in p.stdout and "local-rulebook/learned.yaml" in p.stdout

    p = engine(cfg, "status", "--system-info", str(STRIX))
    assert f"learned rule: {prop['id']}" in p.stdout and "sets ubatch=2048" in p.stdout

    for _ in range(2):  # learning the same files again changes nothing
        p = engine(cfg, "learn", str(better), "--system-info", str(STRIX), "--yes")
        assert p.returncode == 0 and learned.read_bytes() == saved

    p = engine(cfg, "forget")
    assert p.returncode == 0 and prop["id"] in p.stdout and learned.exists()  # lists, removes nothing
    p = engine(cfg, "forget", "no-such-rule")
    assert p.returncode == 2 and prop["id"] in p.stderr
    p = engine(cfg, "forget", prop["id"])
    assert p.returncode == 0 and not learned.exists()
    assert _args(cfg) == before


def test_a_faster_backend_is_learned_as_the_backend_alone(tmp_path):
    cfg = tmp_path / "cfg"
    rocm = _write(tmp_path, "rocm.json", _faster(SWEEP_DOC, {("rocm", "-b 2048 -ub 512"): 1.3}))
    p = engine(cfg, "learn", str(rocm), "--system-info", str(STRIX), "--yes", "--json")
    (prop,) = json.loads(p.stdout)["proposals"]
    assert prop["rule"]["set"] == {"backend": "rocm"} and prop["rule"]["when"]["backends"] == {"contains": "rocm"}
    p = engine(cfg, "recommend", "--model", MODEL, "--system-info", str(STRIX), "--json")
    assert json.loads(p.stdout)["recipe_options"]["llamacpp_backend"] == "rocm"


def test_without_the_recommended_configuration_measured_there_is_nothing_to_compare(tmp_path):
    doc = copy.deepcopy(SWEEP_DOC)
    doc["models"][0]["results"] = [r for r in doc["models"][0]["results"] if r["backend"] == "rocm"]
    path = _write(tmp_path, "rocm-only.json", _faster(doc, {("rocm", "-b 2048 -ub 2048"): 1.5}))
    body = json.loads(engine(tmp_path / "cfg", "learn", str(path), "--system-info", str(STRIX), "--json").stdout)
    assert body["proposals"] == [] and any("was not measured in these files" in n for n in body["notes"])


_HW, _ = find_hardware(None, str(STRIX))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(factors=st.tuples(*(st.sampled_from((0.8, 1.0, 1.03, 1.1, 1.3)) for _ in CONFIGS)),
       runs=st.sampled_from((1, 2, 3, 3)))
def test_a_learned_rule_sets_only_what_its_measurements_changed_and_lint_accepts_it(tmp_path_factory, factors,
                                                                                    runs):
    """Property: whatever the speeds, every proposal beats the noise with enough runs, sets only parameters that
    differ between the winning and the recommended configuration (backend, ubatch: what the files varied), lint
    accepts the rulebook with it, and learning from the same files after saving proposes nothing more."""
    tmp = tmp_path_factory.mktemp("learn")
    doc = _faster(SWEEP_DOC, dict(zip(CONFIGS, factors, strict=True)))
    doc["models"][0]["config"]["measurement_runs"] = runs
    path = _write(tmp, "sweep.json", doc)
    ms = measure.read_bench(path)
    settings_ = config.load(env={"LEMONADE_AUTOTUNE_CONFIG_DIR": str(tmp / "cfg"), "LEMONADE_AUTOTUNE_REMOTE": "0"})
    got = learn.propose(ms, Expecter(settings_, _HW, "chat").recommend)
    again = learn.propose(ms, Expecter(settings_, _HW, "chat").recommend)
    assert [p.rule for p in got.proposals] == [p.rule for p in again.proposals]  # deterministic
    assert len(got.proposals) <= 1
    event(f"{len(got.proposals)} proposal(s)")
    for prop in got.proposals:
        assert prop.runs >= learn.MIN_RUNS and prop.gain > max(learn.MIN_GAIN, prop.noise)
        changed = {k for k in prop.baseline if prop.baseline[k] != learn.effective(prop.candidate, k)}
        assert set(prop.rule["set"]) == changed and changed <= {"backend", "ubatch"}
        roots = config.rulebook_roots(settings_, refresh=False)
        assert learn.lint_errors(roots, [prop.rule], tmp / "lint") == []
        learn.write_rules(learn.learned_path(settings_), [prop.rule])
        after = learn.propose(ms, Expecter(settings_, _HW, "chat").recommend)
        assert [p.rule for p in after.proposals] in ([], [prop.rule])  # a fixed point: nothing new to learn


def test_a_broken_learned_file_is_a_located_usage_error(tmp_path):
    cfg = tmp_path / "cfg"
    learned = cfg / config.LOCAL_RULEBOOK / learn.LEARNED_FILE
    learned.parent.mkdir(parents=True)
    learned.write_text("rules: [\n", encoding="utf-8")
    p = engine(cfg, "forget", "--all")
    assert p.returncode == 2 and "learned.yaml" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.parametrize("layer", ["user", "archetype"])
def test_a_hand_written_rule_in_the_local_rulebook_must_say_layer_local(tmp_path, layer):
    cfg = tmp_path / "cfg"
    learned = cfg / config.LOCAL_RULEBOOK / learn.LEARNED_FILE
    learned.parent.mkdir(parents=True)
    learned.write_text(f"rules:\n- id: mine\n  description: by hand\n  layer: {layer}\n  priority: 1\n"
                       "  when: {recipe: llamacpp}\n  set: {ubatch: 1024}\n", encoding="utf-8")
    p = engine(cfg, "recommend", "--model", MODEL, "--system-info", str(STRIX))
    assert p.returncode == 2 and "layer: local" in p.stderr and "learned.yaml" in p.stderr
