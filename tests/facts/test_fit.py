"""Budgets, fit facts for the rules, and the memory guard (never above the budget, monotone in memory)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from facts.lemonade import from_system_info
from facts.memory import GIB, Config, estimate, fit_context, gpu_budget, guard, ram_budget
from facts.models import GPU, HardwareFacts, Memory, ModelFacts
from facts.registry import resolve_model_spec

SYS = Path(__file__).resolve().parents[1] / "fixtures" / "system-info"
MB = 10**6


def hw_of(name: str) -> HardwareFacts:
    return from_system_info((SYS / f"{name}.json").read_text(), source=name)


def discrete(vram_gib: float, ram_gib: float = 64, free: float | None = None) -> HardwareFacts:
    g = GPU(vendor="nvidia", name="test", dedicated_bytes=int(vram_gib * GIB), unified=False, integrated=False,
            free_bytes=None if free is None else int(free * GIB))
    return HardwareFacts(gpus=(g,), memory=Memory(total_bytes=int(ram_gib * GIB)))


def dense_8b(**kw) -> ModelFacts:
    """A Qwen3-8B-shaped model (36 layers, 8 KV heads x 128, f16 KV = 144 KiB per token)."""
    base = dict(name="dense-8b", architecture="qwen3", params_b=8.2, quant="Q4_K_M", file_bytes=5_000 * MB,
                trained_ctx=40960, block_count=36, embedding_length=4096, head_count=32, head_count_kv=(8,) * 36,
                key_length=128, value_length=128, vocab_size=151936, feed_forward_length=12288,
                layer_bytes=(125 * MB,) * 36, output_bytes=500 * MB, kv_layers=(True,) * 36)
    base.update(kw)
    return ModelFacts(**base)


def moe_30b() -> ModelFacts:
    """A Qwen3-30B-A3B-shaped model: 48 layers, 128 experts (8 used), experts ~95% of each layer."""
    return ModelFacts(name="moe-30b", architecture="qwen3moe", params_b=30.5, active_params_b=3.3, is_moe=True,
                      quant="Q4_K_M", file_bytes=18_000 * MB, trained_ctx=40960, block_count=48,
                      embedding_length=2048, head_count=32, head_count_kv=(4,) * 48, key_length=128,
                      value_length=128, vocab_size=151936, expert_count=128, expert_used_count=8,
                      expert_feed_forward_length=768, feed_forward_length=6144,
                      layer_bytes=(360 * MB,) * 48, expert_bytes=(340 * MB,) * 48, output_bytes=700 * MB,
                      kv_layers=(True,) * 48)


def test_budget_discrete():
    b = gpu_budget(hw_of("rtx-4090-desktop-linux"))
    assert b.device == "gpu" and b.bytes == 25757220864 - GIB
    assert "VRAM" in b.explain and "margin 1.0 GiB" in b.explain


def test_budget_respects_free_vram():
    assert gpu_budget(discrete(24, free=10)).bytes == 9 * GIB


def test_budget_strix_halo_gtt_plus_carveout():
    b = gpu_budget(hw_of("strix-halo-128gb-linux"))
    assert b.device == "unified" and b.bytes == 536870912 + 133143986176 - GIB
    assert "GTT" in b.explain and "carve-out" in b.explain


def test_budget_apple_working_set():
    b = gpu_budget(hw_of("apple-m3-max-64gb-macos"))
    assert b.device == "unified" and b.bytes == 51539607552 - GIB


def test_budget_cpu_only():
    hw = hw_of("cpu-only-linux")
    assert gpu_budget(hw) is None
    assert ram_budget(hw).bytes == hw.memory.total_bytes - GIB


def test_unified_budget_capped_by_free_ram():
    g = GPU(vendor="amd", name="apu", dedicated_bytes=GIB // 2, shared_bytes=100 * GIB, unified=True,
            integrated=True)
    hw = HardwareFacts(gpus=(g,), memory=Memory(total_bytes=128 * GIB, available_bytes=40 * GIB))
    assert gpu_budget(hw).bytes == 40 * GIB + GIB // 2 - GIB


def test_fit_context_keys_and_values():
    facts = fit_context(discrete(24), dense_8b())
    assert set(facts) == {"fit_full_offload", "fit_max_ctx", "fit_max_gpu_layers", "gpu_budget_gib", "fit_devices"}
    assert facts["fit_full_offload"] is True and facts["fit_devices"] == 1
    assert facts["fit_max_ctx"] == 40960  # capped at the trained context
    assert facts["fit_max_gpu_layers"] == 36
    assert facts["gpu_budget_gib"] == 23.0


def test_fit_context_small_gpu():
    facts = fit_context(discrete(6), dense_8b())
    assert facts["fit_full_offload"] is False
    assert facts["fit_max_gpu_layers"] < 36
    assert facts["fit_max_ctx"] == 4096  # the floor


def test_fit_max_ctx_is_the_largest_that_fits():
    hw, m = discrete(8), dense_8b()
    ctx = fit_context(hw, m)["fit_max_ctx"]
    assert 4096 < ctx < 40960 and ctx % 256 == 0
    budget = gpu_budget(hw).bytes
    assert estimate(m, Config(ctx_size=ctx)).gpu_bytes <= budget
    assert estimate(m, Config(ctx_size=ctx + 256)).gpu_bytes > budget


def test_fit_context_cpu_only():
    facts = fit_context(hw_of("cpu-only-linux"), dense_8b())
    assert facts["fit_full_offload"] is False and facts["fit_max_gpu_layers"] == 0
    assert "gpu_budget_gib" not in facts


def test_fit_context_embedding_floor():
    m = dense_8b(embedding=True, labels=("embeddings",))
    assert fit_context(discrete(6), m)["fit_max_ctx"] == 8192


def test_guard_auto_ctx_full_offload():
    fit = guard(discrete(8), dense_8b(), {"backend": "cuda", "ctx_size": "auto", "n_gpu_layers": "auto"},
                placement="flags")
    assert fit.fits and fit.params["n_gpu_layers"] == 999
    f16_max = fit_context(discrete(8), dense_8b())["fit_max_ctx"]
    assert fit.params["ctx_size"] >= f16_max  # a q8_0 KV cache may reach further than f16 does
    if fit.params["ctx_size"] > f16_max:
        assert fit.params["cache_type_k"] == fit.params["cache_type_v"] == "q8_0" and fit.trades
    assert fit.estimate.gpu_bytes <= fit.budget_bytes
    assert "ctx_size" in fit.changed
    assert any("budget" in n and "≤" in n for n in fit.notes)


def test_guard_reduces_a_rule_ctx_that_does_not_fit():
    fit = guard(discrete(8), dense_8b(), {"backend": "cuda", "ctx_size": 131072, "n_gpu_layers": "all"})
    assert 4096 <= fit.params["ctx_size"] < 40960
    old, new, reason = fit.changed["ctx_size"]
    assert old == 131072 and new == fit.params["ctx_size"] and "do not fit" in reason


def test_guard_keeps_a_rule_ctx_that_fits():
    fit = guard(discrete(24), dense_8b(), {"backend": "cuda", "ctx_size": 16384, "n_gpu_layers": "all"})
    assert fit.params["ctx_size"] == 16384 and "ctx_size" not in fit.changed


def test_guard_moe_moves_experts_before_layers():
    fit = guard(discrete(12), moe_30b(), {"backend": "cuda", "ctx_size": "auto", "n_gpu_layers": "auto",
                                           "n_cpu_moe": "auto"}, placement="flags")
    assert fit.fits
    assert fit.params["n_gpu_layers"] == 999  # every layer stays on the GPU...
    assert 0 < fit.params["n_cpu_moe"] <= 48  # ...with some experts on the CPU
    assert fit.params["ctx_size"] == fit.need  # it spills anyway: the context it needs (its KV stays small)
    assert fit.estimate.gpu_bytes <= fit.budget_bytes


def test_guard_dense_drops_layers_when_floor_does_not_fit():
    fit = guard(discrete(4), dense_8b(), {"backend": "vulkan"}, placement="flags")
    assert fit.fits and 0 < fit.params["n_gpu_layers"] < 36 and fit.params["ctx_size"] == 4096


def test_guard_cpu_backend():
    fit = guard(discrete(24), dense_8b(), {"backend": "cpu", "ctx_size": "auto"})
    assert fit.placement.gpu_layers == 0 and fit.placed_by == "cpu"
    assert fit.params["n_gpu_layers"] == "default"  # nothing to place: no -ngl 0 that could hide a missed GPU
    assert fit.estimate.total_bytes <= fit.budget_bytes


def test_guard_never_produces_quantised_v_without_flash_attention():
    fit = guard(discrete(24), dense_8b(), {"backend": "cuda", "cache_type_k": "q8_0", "cache_type_v": "q8_0",
                                           "flash_attn": "off"})
    assert fit.params["cache_type_v"] == "f16"
    assert "flash attention" in fit.changed["cache_type_v"][2]


def test_guard_registry_model_is_estimated():
    fit = guard(discrete(24), resolve_model_spec("Qwen3-8B-GGUF"), {"backend": "cuda"})
    assert fit.estimated and any("estimated" in n for n in fit.notes)


def test_guard_reports_when_nothing_fits():
    fit = guard(discrete(4, ram_gib=2), dense_8b(), {"backend": "cuda"})
    assert not fit.fits and any("does not fit" in n for n in fit.notes)


PARAMS = st.fixed_dictionaries({
    "backend": st.sampled_from(["cuda", "vulkan", "cpu"]),
    "ctx_size": st.one_of(st.just("auto"), st.integers(512, 262144)),
    "n_gpu_layers": st.one_of(st.sampled_from(["auto", "all"]), st.integers(0, 999)),
    "ubatch": st.sampled_from(["default", 256, 1024]),
    "parallel": st.sampled_from(["default", 1, 2]),
})


@settings(max_examples=60, deadline=None)
@given(vram=st.floats(2, 96), ram=st.floats(8, 256), params=PARAMS, moe=st.booleans())
def test_guard_never_exceeds_budget(vram, ram, params, moe):
    model = moe_30b() if moe else dense_8b()
    fit = guard(discrete(vram, ram), model, params)
    if fit.fits:
        used = fit.estimate.total_bytes if params["backend"] == "cpu" else fit.estimate.gpu_bytes
        assert used <= fit.budget_bytes
        assert fit.params["ctx_size"] >= min(4096, params["ctx_size"] if params["ctx_size"] != "auto" else 4096)


@settings(max_examples=40, deadline=None)
@given(vram=st.floats(2, 48), extra=st.floats(0.5, 48), moe=st.booleans())
def test_more_memory_never_gives_less(vram, extra, moe):
    model = moe_30b() if moe else dense_8b()
    small = fit_context(discrete(vram), model)
    big = fit_context(discrete(vram + extra), model)
    assert big["fit_max_ctx"] >= small["fit_max_ctx"]
    assert big["fit_max_gpu_layers"] >= small["fit_max_gpu_layers"]
    g_small = guard(discrete(vram), model, {"backend": "cuda"})
    g_big = guard(discrete(vram + extra), model, {"backend": "cuda"})
    if g_small.fits:  # more memory: never a worse tier of the guard's order, within a tier never worse
        assert g_big.fits
        tier_small, tier_big = _tier(g_small), _tier(g_big)
        assert tier_big <= tier_small
        if tier_big == tier_small:
            q8_small, q8_big = (g.params["cache_type_k"] == "q8_0" for g in (g_small, g_big))
            assert g_big.params["ctx_size"] >= g_small.params["ctx_size"]
            if tier_big == 0:
                assert q8_big <= q8_small  # f16 at the need before q8_0
            if q8_big == q8_small and g_big.params["ctx_size"] == g_small.params["ctx_size"]:
                a, b = g_small.placement, g_big.placement
                assert (b.gpu_layers, -b.experts_cpu) >= (a.gpu_layers, -a.experts_cpu)


def _tier(g) -> int:
    """The guard's order for a scenario that is not a hard need: the need on the GPU, the most context on the
    GPU, the need with MoE experts / layers on the CPU, the floor with them."""
    full, at_need = g.placement.full, g.params["ctx_size"] >= g.need
    return 0 if full and at_need else 1 if full else 2 if at_need else 3


@pytest.mark.parametrize("name", ["apple-m3-max-64gb-macos", "cpu-only-linux", "radeon-780m-laptop-windows",
                                  "rtx-4090-desktop-linux", "rx-7900-xtx-desktop-linux", "strix-halo-128gb-linux"])
def test_fit_context_on_lemonade_machines(name):
    facts = fit_context(hw_of(name), moe_30b())
    assert facts["fit_max_ctx"] >= 4096 and facts["fit_max_ctx"] % 256 == 0


def test_a_rules_placement_that_does_not_fit_is_left_to_llama_cpp_fit_and_a_users_is_kept():
    rule = guard(discrete(4), dense_8b(), {"backend": "cuda", "n_gpu_layers": 36})
    assert rule.fits and rule.params["n_gpu_layers"] == "default" and rule.placed_by == "fit"
    assert rule.changed["n_gpu_layers"][1] == "default" and "does not fit" in rule.notes[0]
    user = guard(discrete(4), dense_8b(), {"backend": "cuda", "n_gpu_layers": 36}, user={"n_gpu_layers"})
    assert not user.fits and user.params["n_gpu_layers"] == 36
    assert any(c.startswith("n_gpu_layers=36 does not fit") for c in user.conflicts)


def test_a_set_placement_that_fits_is_emitted_as_flags():
    fit = guard(discrete(24), dense_8b(), {"backend": "cuda", "n_gpu_layers": 20})
    assert fit.fits and fit.placed_by == "flags" and fit.params["n_gpu_layers"] == 20


def test_per_slot_kv_without_kvu_gives_every_slot_the_need():
    """-np 4 without -kvu: llama.cpp gives each slot ctx / 4, so the context is 4 x the need (and its KV counts)."""
    hw, model = discrete(48), dense_8b()
    shared = guard(hw, model, {"backend": "vulkan", "parallel": 4, "kv_unified": "on"}, need=8192)
    split = guard(hw, model, {"backend": "vulkan", "parallel": 4, "kv_unified": "off"}, need=8192)
    assert shared.params["ctx_size"] == 8192 and split.params["ctx_size"] == 4 * 8192
    assert split.estimate.n_stream == 4 and split.estimate.kv_cells == 8192  # 4 streams of 8192 cells
    assert split.estimate.kv_bytes == 4 * shared.estimate.kv_bytes
    assert any("4 slots with a KV cache each" in n for n in split.notes)


def test_a_projector_and_mtp_layers_count_before_they_are_downloaded():
    from facts.registry import resolve_model_spec

    hw = discrete(24)
    vision = resolve_model_spec("Gemma-3-4b-it-GGUF")  # Lemonade passes --mmproj: the projector loads too
    f = guard(hw, vision, {"backend": "vulkan"}, need=8192)
    assert f.estimate.mmproj_bytes == GIB and any("projector" in n and "estimated" in n for n in f.notes)
    mtp = resolve_model_spec("Qwen3.6-27B-MTP-GGUF")  # label mtp: Lemonade adds --spec-type draft-mtp
    g = guard(hw, mtp, {"backend": "vulkan"}, need=8192)
    assert g.estimate.draft_bytes > 0 and any("MTP draft context" in n for n in g.notes)
    plain = guard(hw, mtp.model_copy(update={"labels": ()}), {"backend": "vulkan"}, need=8192)
    assert plain.estimate.total_bytes < g.estimate.total_bytes
