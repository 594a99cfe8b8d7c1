"""llama.cpp guards: cache types llama.cpp refuses, Vulkan K/V, batches, the allowlist, the memory fit."""

from __future__ import annotations

import pytest

from engine.errors import UsageError
from engine.recipes.llamacpp import guards, memory
from engine.resolve import Decision
from engine.trace import TraceRecorder
from facts.models import ModelFacts

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


def _hw(vram_gib: float):
    from facts.models import GPU, HardwareFacts, Memory, OSInfo

    return HardwareFacts(os=OSInfo(name="linux"), memory=Memory(total_bytes=64 << 30, available_bytes=60 << 30),
                         gpus=(GPU(vendor="nvidia", name="RTX", dedicated_bytes=int(vram_gib * 2**30), unified=False),))


DENSE = ModelFacts(name="m", architecture="llama", block_count=32, head_count_kv=(8,) * 32, key_length=128,
                   value_length=128, embedding_length=4096, head_count=32, file_bytes=5 << 30, trained_ctx=131072)


def test_the_memory_step_sizes_the_context_leaves_placement_to_fit_and_keeps_the_users_values():
    ds = {"backend": dec("backend", "cuda"), "ctx_size": dec("ctx_size", "auto"),
          "n_gpu_layers": dec("n_gpu_layers", 20, "user-override"), "n_cpu_moe": dec("n_cpu_moe", "default")}
    rec, warnings = TraceRecorder(), []
    verdict = memory.run(ds, _hw(24), DENSE, rec, need=(32768, False), force=False, warnings=warnings)
    assert (ds["ctx_size"].value, ds["ctx_size"].rule_id, ds["ctx_size"].layer) == (32768, "memory-fit", "guard")
    assert ds["ctx_size"].chain[0].value == "auto"
    assert ds["n_gpu_layers"].value == 20  # the user's value stays
    assert verdict.fits in ("yes", "estimated") and verdict.placed_by == "flags" and verdict.context == 32768
    notes = [e.message for e in rec.freeze() if e.op == "note"]
    assert any(n.startswith("weights ") and "KV" in n for n in notes) and warnings == []


def test_without_a_set_placement_nothing_is_emitted_and_llama_cpp_fit_places_the_layers():
    ds = {"backend": dec("backend", "cuda"), "ctx_size": dec("ctx_size", "auto"),
          "n_gpu_layers": dec("n_gpu_layers", "default"), "n_cpu_moe": dec("n_cpu_moe", "default")}
    verdict = memory.run(ds, _hw(4), DENSE, TraceRecorder(), need=(32768, False), force=False, warnings=[])
    assert ds["n_gpu_layers"].value == "default" and ds["n_cpu_moe"].value == "default"
    assert verdict.placed_by == "fit" and "layers on the GPU" in verdict.placement  # predicted: a partial offload
    assert ds["ctx_size"].value == 4096  # nothing runs fully on 4 GB: the floor, with layers spilled


def test_a_users_context_that_does_not_fit_is_an_error_unless_forced():
    from engine.errors import DoesNotFitError

    def ds():
        return {"backend": dec("backend", "cuda"), "ctx_size": dec("ctx_size", 1048576, "user-override"),
                "n_gpu_layers": dec("n_gpu_layers", "default"), "n_cpu_moe": dec("n_cpu_moe", "default")}

    with pytest.raises(DoesNotFitError, match="ctx_size=1048576 does not fit"):
        memory.run(ds(), _hw(8), DENSE, TraceRecorder(), need=(32768, False), force=False, warnings=[])
    warnings: list[str] = []
    d = ds()
    verdict = memory.run(d, _hw(8), DENSE, TraceRecorder(), need=(32768, False), force=True, warnings=warnings)
    assert verdict.fits == "no" and d["ctx_size"].value == 1048576 and "kept: --force" in warnings[0]


def test_gpu_memory_unknown_leaves_context_and_placement_to_lemonade():
    from facts.models import GPU, HardwareFacts, OSInfo

    hw = HardwareFacts(os=OSInfo(name="linux"), gpus=(GPU(vendor="nvidia", name="A100", arch="sm_80"),))
    ds = {"backend": dec("backend", "cuda"), "ctx_size": dec("ctx_size", "auto"),
          "n_gpu_layers": dec("n_gpu_layers", "default")}
    verdict = memory.run(ds, hw, DENSE, TraceRecorder(), need=(32768, False), force=False, warnings=[])
    assert verdict.fits == "unknown" and ds["ctx_size"].value == "auto" and ds["n_gpu_layers"].value == "default"


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
