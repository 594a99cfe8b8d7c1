"""llama.cpp guards: cache types llama.cpp refuses, Vulkan K/V, batches, the allowlist, the memory fit."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from engine.errors import UsageError
from engine.recipes.llamacpp import guards
from engine.resolve import Decision
from engine.trace import TraceRecorder
from facts.models import ModelFacts

memory_guard = guards.memory_guard
PLAIN = ModelFacts()


def consistency_guards(ds, rec, model=PLAIN):
    guards.consistency(ds, model, rec)


def dec(p, v, rid="r", layer="archetype"):
    return Decision(p, v, rid, layer, 3000, "t.yaml:1")


def test_quantised_v_cache_without_flash_attention_falls_back_to_f16():
    ds = {"flash_attn": dec("flash_attn", "auto"), "cache_type_v": dec("cache_type_v", "q8_0"),
          "cache_type_k": dec("cache_type_k", "q8_0"), "backend": dec("backend", "cuda")}
    rec = TraceRecorder()
    consistency_guards(ds, rec)
    assert ds["cache_type_v"].value == "f16" and ds["cache_type_v"].layer == "guard"
    assert ds["cache_type_v"].chain[0].value == "q8_0"
    assert any("flash attention" in e.message for e in rec.freeze())


def test_user_quantised_v_cache_turns_flash_attention_on_instead():
    ds = {"flash_attn": dec("flash_attn", "default"), "cache_type_v": dec("cache_type_v", "q4_0", "user-override")}
    consistency_guards(ds, TraceRecorder())
    assert (ds["cache_type_v"].value, ds["flash_attn"].value) == ("q4_0", "on")


def test_vulkan_gets_matching_kv_types_at_the_higher_precision():
    ds = {"backend": dec("backend", "vulkan"), "flash_attn": dec("flash_attn", "on"),
          "cache_type_k": dec("cache_type_k", "q8_0"), "cache_type_v": dec("cache_type_v", "q4_0")}
    consistency_guards(ds, TraceRecorder())
    assert (ds["cache_type_k"].value, ds["cache_type_v"].value) == ("q8_0", "q8_0")
    ds["backend"] = dec("backend", "rocm")
    ds["cache_type_v"] = dec("cache_type_v", "q4_0")
    consistency_guards(ds, TraceRecorder())
    assert ds["cache_type_v"].value == "q4_0"  # other backends keep mixed types


def test_ubatch_never_exceeds_batch():
    ds = {"batch": dec("batch", 512), "ubatch": dec("ubatch", 1024)}
    consistency_guards(ds, TraceRecorder())
    assert ds["ubatch"].value == 512 and ds["ubatch"].rule_id == "ubatch-le-batch"
    ds = {"batch": dec("batch", "default"), "ubatch": dec("ubatch", 4096)}
    consistency_guards(ds, TraceRecorder())
    assert ds["ubatch"].value == 2048


@dataclass
class FitResult:  # the data contract of facts.memory.guard's result
    params: dict
    changed: dict = field(default_factory=dict)
    notes: tuple = ()
    estimated: bool = False


def test_memory_guard_records_the_change_and_keeps_user_values():
    ds = {"ctx_size": dec("ctx_size", "auto"), "n_gpu_layers": dec("n_gpu_layers", 999, "user-override"),
          "n_cpu_moe": dec("n_cpu_moe", "default")}
    fit = FitResult({"ctx_size": 32768, "n_gpu_layers": 30, "n_cpu_moe": "default"},
                    {"ctx_size": ("auto", 32768, "KV 4.0 GiB fits the 20.1 GiB budget"),
                     "n_gpu_layers": (999, 30, "30 of 48 layers on the GPU")},  # as facts.memory.guard reports it
                    ("weights 12.0 GiB + KV 4.0 GiB <= budget 20.1 GiB",))
    rec = TraceRecorder()
    memory_guard(ds, fit, rec)
    assert (ds["ctx_size"].value, ds["ctx_size"].rule_id, ds["ctx_size"].layer) == (32768, "memory-fit", "guard")
    assert ds["ctx_size"].chain[0].value == "auto"
    assert ds["n_gpu_layers"].value == 999  # the user's value stays
    notes = [e.message for e in rec.freeze() if e.op == "note"]
    assert "weights 12.0 GiB + KV 4.0 GiB <= budget 20.1 GiB" in notes
    assert any("kept the user's n_gpu_layers=999" in n for n in notes)


def test_extra_args_the_backend_does_not_allow_are_dropped_with_a_note():
    ds = {"backend": dec("backend", "cpu"),
          "extra_args": dec("extra_args", ("--no-warmup", "--main-gpu", "1", "--no-kv-offload", "--poll", "50"))}
    rec = TraceRecorder()
    consistency_guards(ds, rec)
    assert ds["extra_args"].value == ("--no-warmup", "--poll", "50")
    assert ds["extra_args"].rule_id == "extra-args-allowlist"
    assert any("--main-gpu 1 --no-kv-offload" in e.message for e in rec.freeze())
    ds["backend"] = dec("backend", "rocm")
    ds["extra_args"] = dec("extra_args", ("--main-gpu", "1"))
    consistency_guards(ds, TraceRecorder())
    assert ds["extra_args"].value == ("--main-gpu", "1")  # allowed on a GPU backend: unchanged


# ---- a user's value is never changed silently -------------------------------------------------------

USER = "user-override"


def test_a_refused_user_combination_is_an_error_naming_it():
    ds = {"flash_attn": dec("flash_attn", "off", USER), "cache_type_v": dec("cache_type_v", "q8_0", USER),
          "cache_type_k": dec("cache_type_k", "default")}
    with pytest.raises(UsageError, match="cache_type_v=q8_0 with flash_attn=off.*requires flash attention"):
        consistency_guards(ds, TraceRecorder())


def test_a_users_mla_cache_types_that_differ_are_an_error_and_a_rules_are_fixed():
    mla = ModelFacts(mla=True, key_length=576, value_length=512)
    user = {"flash_attn": dec("flash_attn", "on"), "cache_type_k": dec("cache_type_k", "q8_0", USER),
            "cache_type_v": dec("cache_type_v", "f16", USER)}
    with pytest.raises(UsageError, match="MLA models need equal K and V"):
        consistency_guards(user, TraceRecorder(), mla)
    rules = {"flash_attn": dec("flash_attn", "on"), "cache_type_k": dec("cache_type_k", "q8_0"),
             "cache_type_v": dec("cache_type_v", "f16")}
    consistency_guards(rules, TraceRecorder(), mla)
    assert rules["cache_type_v"].value == "q8_0" and rules["cache_type_v"].rule_id == "kv-refused"


def test_vulkan_matches_the_rule_side_to_the_users_cache_type():
    ds = {"backend": dec("backend", "vulkan"), "flash_attn": dec("flash_attn", "on"),
          "cache_type_k": dec("cache_type_k", "q8_0", USER), "cache_type_v": dec("cache_type_v", "f16")}
    consistency_guards(ds, TraceRecorder())
    assert (ds["cache_type_k"].value, ds["cache_type_v"].value) == ("q8_0", "q8_0")
    assert ds["cache_type_k"].rule_id == USER


def test_a_users_large_ubatch_raises_the_batch_instead_of_shrinking():
    ds = {"batch": dec("batch", "default"), "ubatch": dec("ubatch", 4096, USER)}
    consistency_guards(ds, TraceRecorder())
    assert (ds["batch"].value, ds["ubatch"].value) == (4096, 4096) and ds["batch"].rule_id == "ubatch-le-batch"


def test_a_users_argument_the_backend_does_not_allow_is_an_error():
    ds = {"backend": dec("backend", "cpu"), "extra_args": dec("extra_args", ("--main-gpu", "1"), USER)}
    with pytest.raises(UsageError, match="--main-gpu 1 not allowed with backend cpu"):
        consistency_guards(ds, TraceRecorder())
