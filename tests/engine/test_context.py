"""The flat rule context built from facts (engine.context, docs/architecture.md)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings

from engine._attributes import CONTEXT_ATTRIBUTES, validate_context
from engine.context import build_context, recipe_backends
from facts.archetype import classify
from facts.lemonade import from_system_info
from facts.models import CPU, HardwareFacts, Memory, ModelFacts, OSInfo
from tests.strategies import hardware_facts, model_facts

SYSINFO = Path(__file__).resolve().parents[1] / "fixtures" / "system-info"
QWEN = ModelFacts(name="q", recipe="llamacpp", params_b=30.5, active_params_b=3.3, is_moe=True,
                  quant="UD-Q4_K_XL", file_bytes=17 * 2**30, trained_ctx=262144, architecture="qwen3moe")


def hw_from(name: str) -> HardwareFacts:
    return from_system_info((SYSINFO / name).read_text(), source=name)


def ctx_for(hw: HardwareFacts, model: ModelFacts = QWEN, **kw) -> dict:
    return build_context(hw, classify(hw), model, scenario="chat", **kw)


def test_strix_halo_context_has_the_documented_keys_and_types():
    hw = hw_from("strix-halo-128gb-linux.json")
    arch = classify(hw)
    ctx = ctx_for(hw)
    assert ctx["archetype"] == frozenset((arch.id, *arch.backoff)) and arch.id in ctx["archetype"]
    assert ctx["backends"] == frozenset({"vulkan", "rocm", "cpu"})  # llamacpp rows only, not whispercpp's
    assert ctx["installed"] == frozenset({"vulkan", "rocm"})
    assert ctx["lemonade_default"] == "vulkan"
    assert (ctx["os"], ctx["vendor"], ctx["family"], ctx["memclass"], ctx["unified"]) == (
        "linux", "amd", "rdna3.5", "unified", True)
    assert (ctx["recipe"], ctx["quant"], ctx["precision"], ctx["size_class"], ctx["model_class"]) == (
        "llamacpp", "Q4_K_XL", "quantized", "large", "moe-large-quantized")
    assert ctx["params_b"] == 30.5 and ctx["active_params_b"] == 3.3 and ctx["moe"] is True
    assert ctx["file_gib"] == 17.0 and ctx["trained_ctx"] == 262144 and ctx["scenario"] == "chat"
    assert ctx["cpu_physical_cores"] == 16 and ctx["cpu_threads"] == 32
    assert "backend" not in ctx  # only phase 2 adds the chosen backend
    assert validate_context(ctx) == ctx  # every key known to the evaluators, every type right


def test_vllm_context_lists_the_vllm_backends_and_lemonade_default():
    ctx = ctx_for(hw_from("strix-halo-128gb-linux.json"), ModelFacts(name="v", recipe="vllm"))
    assert ctx["backends"] == frozenset({"rocm"}) and ctx["lemonade_default"] == "rocm"
    assert "installed" not in ctx  # vllm:rocm is installable, not installed


def test_unknown_facts_are_omitted_never_none():
    hw = HardwareFacts(cpu=CPU(), memory=Memory())
    ctx = ctx_for(hw, ModelFacts(recipe="llamacpp"))
    for key in ("os", "cpu_arch", "cpu_isa", "cpu_physical_cores", "ram_gb", "params_b", "quant",
                "precision", "size_class", "model_class", "file_gib", "trained_ctx", "architecture",
                "lemonade_default", "installed"):
        assert key not in ctx, key
    assert None not in ctx.values()
    validate_context(ctx)


def test_cpu_isa_is_the_best_listed_extension():
    hw = HardwareFacts(os=OSInfo(name="linux"), cpu=CPU(arch="x86_64", isa=("avx", "avx2", "fma")),
                       memory=Memory(total_bytes=64 * 2**30))
    ctx = ctx_for(hw)
    assert ctx["cpu_isa"] == "avx2" and ctx["ram_gb"] == 64.0


def test_fit_facts_are_typed_and_unknown_ones_dropped():
    hw = hw_from("rtx-4090-desktop-linux.json")
    ctx = ctx_for(hw, fit={"fit_full_offload": True, "fit_max_ctx": 65536, "gpu_budget_gib": 21,
                           "fit_max_gpu_layers": None})
    assert ctx["fit_full_offload"] is True and ctx["fit_max_ctx"] == 65536
    assert ctx["gpu_budget_gib"] == 21.0 and isinstance(ctx["gpu_budget_gib"], float)
    assert "fit_max_gpu_layers" not in ctx


def test_backends_fall_back_to_the_platform_table_when_the_source_lists_none():
    from facts.backends import supported_backends

    hw = hw_from("old-schema-strix-halo-linux-issue722.json")
    assert hw.backends == ()
    assert recipe_backends(hw, "llamacpp") == tuple(supported_backends(hw)["llamacpp"])


def test_listed_backends_are_never_widened_by_the_platform_table():
    hw = hw_from("apple-m3-max-64gb-macos.json")
    assert recipe_backends(hw, "llamacpp") == ("metal",)
    assert recipe_backends(hw, "vllm") == ()  # Lemonade listed backends, none for vllm


@settings(max_examples=200, deadline=None)
@given(hardware_facts(), model_facts())
def test_any_valid_facts_give_a_valid_flat_context(hw, model):
    ctx = ctx_for(hw, model)
    assert set(ctx) <= set(CONTEXT_ATTRIBUTES)
    assert None not in ctx.values()
    assert validate_context(ctx) == ctx
