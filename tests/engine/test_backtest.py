"""Backtest: regret definition, Lemonade's static order, unmeasured cells, leave-one-model-out on real rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.curate.backtest import _achieved, backtest, make_chooser, static_choice
from engine.curate.curate import Row, Slimmer
from engine.curate.ingest import read_file
from engine.curate.records import BenchRecord

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "fixtures" / "bench"
FIXED = [ROOT / "rulebook" / d for d in ("defaults", "families", "archetypes") if (ROOT / "rulebook" / d).is_dir()]


def row(backend: str, tps: float, ubatch: int = 512, fa: str = "on") -> Row:
    return Row(("hw", "m", "pp", 512, 0, 0), (backend, 2048, ubatch, fa, "f16", "f16"), "", tps, None, "", None,
               "s", "x:1")


def test_static_order_is_lemonades():
    assert static_choice(["rocm", "vulkan", "cpu"]) == {"backend": "vulkan"}  # vulkan before rocm on AMD
    assert static_choice(["cpu", "cuda", "vulkan"]) == {"backend": "cuda"}
    assert static_choice(["cpu", "metal"]) == {"backend": "metal"}
    assert static_choice(["cpu"]) == {"backend": "cpu"}


def test_achieved_is_the_median_of_matching_rows_and_none_when_unmeasured():
    rows = [row("rocm", 100, 2048), row("rocm", 110, 2048), row("rocm", 90, 2048), row("rocm", 70, 512),
            row("vulkan", 80, 512, "off")]
    assert _achieved(rows, {"backend": "rocm", "ubatch": 2048}) == 100
    assert _achieved(rows, {"backend": "rocm", "ubatch": "default"}) == 70  # default = llama.cpp's 512
    assert _achieved(rows, {"backend": "vulkan", "flash_attn": "on"}) is None  # not measured with fa on
    assert _achieved(rows, {"backend": "vulkan", "flash_attn": "default"}) == 80
    assert _achieved(rows, {"backend": "cuda"}) is None


def test_chooser_uses_the_rulebook_and_never_rocm_on_unsupported_targets():
    choose = make_chooser(FIXED)
    ctx = {"recipe": "llamacpp", "scenario": "coding", "vendor": "amd", "family": "rdna3", "arch": "gfx1103",
           "memclass": "unified", "backends": frozenset({"vulkan", "rocm", "cpu"})}
    assert choose(ctx)["backend"] == "vulkan"
    xtx = {**ctx, "arch": "gfx1100", "memclass": "discrete"}
    assert choose(xtx)["backend"] == "rocm"  # prompt-heavy on discrete RDNA3: first-principles family rule
    assert choose({**xtx, "scenario": "chat"})["backend"] == "vulkan"


def test_leave_one_model_out_on_real_rows():
    slim = Slimmer()
    rows = [slim(r) for r in read_file(FIX / "community-sample.csv") if isinstance(r, BenchRecord)]
    calls = []
    res = backtest(rows, slim.protos, FIXED, progress=lambda: calls.append(1))
    assert res.models == len(calls) == len({r.cell[1] for r in rows})
    table = {(t["subset"], t["policy"], t["metric"]): t for t in res.table()}
    for key in (("all", "curated", "tg"), ("all", "static", "tg"), ("all", "curated", "pp"),
                ("all", "static", "pp")):
        t = table[key]
        assert t["cells"] + t["unmeasured"] > 0
        assert t["mean"] is None or (0.0 <= t["mean"] <= 1.0 and 0.0 <= t["p90"] <= 1.0)
    cur, sta = table[("contested", "curated", "pp")], table[("contested", "static", "pp")]
    assert cur["mean"] < sta["mean"]  # on Strix Halo prompt processing, vulkan-first costs a lot
    cb, sb = table[("contested", "curated-backend-only", "pp")], table[("contested", "static-backend-only", "pp")]
    assert cb["unmeasured"] == sb["unmeasured"] == 0 and cb["cells"] == sb["cells"]  # same footing
    assert cb["mean"] < sb["mean"]
    assert res.examples and all(e["best"] >= (e["curated_tps"] or 0) - 0.01 for e in res.examples)


@pytest.mark.parametrize("avail", [["rocm"], ["vulkan", "rocm"]])
def test_chooser_falls_back_to_an_available_backend(avail):
    choose = make_chooser(FIXED)
    ctx = {"recipe": "llamacpp", "scenario": "chat", "vendor": "amd", "memclass": "discrete",
           "backends": frozenset(avail)}
    assert choose(ctx)["backend"] in avail


def test_lemonade_scenario_names_match_the_category_rules():
    choose = make_chooser([*FIXED, ROOT / "rulebook" / "generated"])
    base = {"recipe": "llamacpp", "vendor": "amd", "family": "rdna3.5", "arch": "gfx1151", "memclass": "unified",
            "model_class": "moe-large-quantized", "precision": "quantized",
            "backends": frozenset({"vulkan", "rocm", "cpu"})}
    for name in ("chat", "chat-short", "chat-long-output"):
        assert choose({**base, "scenario": name})["backend"] == "vulkan", name
    for name in ("coding", "code-explain", "long-context", "context-32k"):
        assert choose({**base, "scenario": name})["backend"] == "rocm", name


def test_recommend_uses_curated_evidence_for_strix_halo():
    """The real engine.recommend() on a real Strix Halo system-info document with the bundled rulebook."""
    from engine.recommend import recommend
    from facts.lemonade import from_system_info
    from facts.registry import resolve_model_spec

    hw = from_system_info((ROOT / "tests" / "fixtures" / "system-info" / "strix-halo-128gb-linux.json").read_text(),
                          source="system-info:test")
    model = resolve_model_spec("Qwen3-30B-A3B-Instruct-2507-GGUF")
    chat = recommend(hw, model, scenario="chat", memory_fit=False)
    # correctness beats speed: ROCm on gfx1151 gives wrong output past ~4-5K prompt tokens (Lemonade #3610)
    assert chat.decisions["backend"].value == "vulkan"
    assert chat.decisions["backend"].rule_id == "known-failure-rocm-gfx1151-long-prompt-wrong-output"
    # the expected speed is still the curated measurement of the chosen backend
    assert chat.expected is not None and chat.expected.metric == "tg128" and chat.expected.tokens_per_s > 0
    assert chat.expected.rule_id.startswith("cur-amd-rdna3.5-gfx1151-unified-128gb-bw2-")
    assert chat.expected.runner_up["value"] == "rocm"
    coding = recommend(hw, model, scenario="coding", memory_fit=False)
    assert coding.decisions["backend"].value == "vulkan"  # ROCm's faster prompt processing is not correct there
    assert coding.decisions["ubatch"].rule_id.startswith("cur-")  # curated parameters for the chosen backend
