"""Renderings: Lemonade recipe options per recipe, the recommend text table, trace events."""

from __future__ import annotations

import pytest

from engine.params import PARAMETERS, PARAMS
from engine.recipes import get
from engine.render import AUTO_CTX, recipe_options, recommendation_dict
from engine.render_text import recommendation_text
from engine.trace import TraceEvent, TraceRecorder, filter_events
from tests.engine.test_explain import strix_rec

DEFAULTS = {p: () if PARAMS[p].is_list else "default" for p in PARAMETERS} | {"ctx_size": "auto", "backend": "vulkan"}


def test_llamacpp_options_are_exactly_three_keys_with_one_args_string():
    values = DEFAULTS | {"ctx_size": 8192, "n_gpu_layers": "all", "batch": 1024, "ubatch": 256, "threads": 8,
                         "flash_attn": "on", "cache_type_k": "q8_0", "cache_type_v": "q8_0", "mmap": "off",
                         "n_cpu_moe": 12, "parallel": 2, "kv_unified": "on", "extra_args": ("--no-warmup",)}
    assert recipe_options("llamacpp", values) == {
        "llamacpp_backend": "vulkan", "ctx_size": 8192,
        "llamacpp_args": "-ngl 999 -b 1024 -ub 256 -t 8 -fa on -ctk q8_0 -ctv q8_0 --load-mode none --n-cpu-moe 12 "
                         "-np 2 -kvu --no-warmup"}


def test_auto_context_is_lemonades_minus_one_and_defaults_emit_nothing():
    assert recipe_options("llamacpp", DEFAULTS) == {"llamacpp_backend": "vulkan", "llamacpp_args": "",
                                                    "ctx_size": AUTO_CTX}
    assert AUTO_CTX == -1


@pytest.mark.parametrize("recipe, backend, want", [
    ("vllm", "rocm", {"vllm_backend": "rocm", "vllm_args": "", "ctx_size": -1}),
    ("flm", "npu", {"flm_args": "", "ctx_size": -1}),
    ("ryzenai-llm", "npu", {"ctx_size": -1}),
    ("whispercpp", "cpu", {"whispercpp_backend": "cpu", "whispercpp_args": ""}),
    ("sd-cpp", "rocm", {"sd-cpp_backend": "rocm", "sdcpp_args": ""}),
])
def test_other_recipes_use_lemonades_option_keys_and_no_llama_flags(recipe, backend, want):
    values = DEFAULTS | {"backend": backend, "flash_attn": "on"}
    assert recipe_options(recipe, values) == want


def test_recommend_text_has_archetype_options_and_a_row_per_parameter():
    rec = strix_rec()
    text = recommendation_text(rec)
    lines = text.splitlines()
    assert lines[0] == "archetype: amd-rdna3.5-gfx1151-unified-128gb-bw2 (confidence high)"
    assert "  llamacpp_args     -ub 1024 -fa on -ctk q8_0 -ctv q8_0" in lines
    table = lines[lines.index("decisions:") + 1:]
    assert table[0].split() == ["parameter", "value", "layer", "rule"]
    rows = [ln.split() for ln in table if ln.startswith("  ") and ln.split()[0] in PARAMETERS]
    assert [r[0] for r in rows] == list(get("llamacpp").parameters)
    assert ["backend", "rocm", "archetype", "strix-rocm-moe"] in rows
    assert "expected: 71.5 tokens/s (tg128, n=9) from rule strix-rocm-moe" in lines


def test_recommendation_json_is_plain_data():
    import json

    doc = recommendation_dict(strix_rec())
    assert json.loads(json.dumps(doc)) == doc
    assert doc["decisions"]["extra_args"]["value"] == []


def test_trace_events_are_frozen_and_filter_by_level():
    rec = TraceRecorder()
    rec.emit("match", rule_id="a", salience=1000, source="x.yaml:1")
    rec.emit("choose", rule_id="a", parameter="ubatch", value=512)
    rec.emit("skip", rule_id="b", message="nope")
    events = rec.freeze()
    with pytest.raises(AttributeError):
        events[0].op = "note"  # type: ignore[misc]
    assert [e.op for e in filter_events(events, "decisions")] == ["choose"]
    assert [e.op for e in filter_events(events, "full")] == ["match", "choose"]
    assert [e.op for e in filter_events(events, "why-not")] == ["match", "choose", "skip"]
    assert TraceEvent("choose", "a", "ubatch", None, 512).to_dict() == {
        "op": "choose", "rule_id": "a", "parameter": "ubatch", "value": 512}
    with pytest.raises(ValueError):
        filter_events(events, "all")
