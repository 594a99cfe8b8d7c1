"""The vllm recipe: Lemonade's keys and protected flags, its behaviour with the defaults alone, and a context and
KV pool that fit a 16 GB dGPU and use the pool of a 128 GB APU (facts/vllm_memory.py)."""

from __future__ import annotations

import shlex

import pytest

from engine.errors import DoesNotFitError, ParamError, RecipeUnavailableError, UsageError
from engine.recipes import get
from engine.recipes.vllm import PROTECTED_FLAGS, extra_args_problems
from engine.recommend import recommend
from engine.rulebook import bundled_root, load_rulebook
from facts import vllm_memory as vm
from facts.models import GIB
from facts.registry import load_registry, resolve_model_spec
from tests.support import machines

DEFAULTS = load_rulebook(bundled_root() / "defaults")
VLLM_MODELS = sorted(n for n, e in load_registry().items() if e.get("recipe") == "vllm")
RUNS_VLLM = ("strix-halo-128gb-linux.json", "rx-7900-xtx-desktop-linux.json")
MIB = 1 << 20


def _args(rec) -> dict[str, str]:
    tokens = shlex.split(rec.recipe_options()["vllm_args"])
    return {t: tokens[i + 1] if i + 1 < len(tokens) and not tokens[i + 1].startswith("--") else ""
            for i, t in enumerate(tokens) if t.startswith("--")}


def test_registry_has_the_vllm_models_the_issue_names():
    assert len(VLLM_MODELS) == 11


@pytest.mark.parametrize("memory_fit", [False, True])
@pytest.mark.parametrize("name", machines.SIX)
def test_defaults_alone_are_lemonades_behaviour(name, memory_fit):
    hw = machines.facts(name)
    model = resolve_model_spec("Qwen3.5-9B-FP16-vLLM")
    if name not in RUNS_VLLM:
        with pytest.raises(RecipeUnavailableError, match="vllm needs an AMD GPU ROCm supports") as err:
            recommend(hw, model, rulebook=DEFAULTS, memory_fit=memory_fit)
        assert err.value.variant == "Qwen3.5-9B-GGUF"
        return
    rec = recommend(hw, model, rulebook=DEFAULTS, memory_fit=memory_fit)
    assert rec.recipe_options() == {"vllm_backend": "rocm", "vllm_args": "", "ctx_size": -1}


def test_kv_layouts_follow_vllms_arithmetic():
    # full-attention layers x KV heads x (K + V head sizes) x 2 bytes, from each base model's GGUF facts
    qwen27 = vm.kv_layout(resolve_model_spec("Qwen3.6-27B-FP16-vLLM"))
    assert qwen27.bytes_per_token == 16 * 4 * (256 + 256) * 2 and qwen27.state_bytes > 0
    assert qwen27.block_size % 16 == 0 and qwen27.block_size > 16  # hybrid: attention page >= state page
    assert "Qwen3.6-27B-GGUF" in qwen27.source
    glm = vm.kv_layout(resolve_model_spec("GLM-4.7-Flash-FP16-vLLM"))  # MLA: one latent row (512 + 64 rope)
    assert glm.bytes_per_token == 47 * (512 + 64) * 2 and glm.block_size == 16 and not glm.estimated
    assert glm.seq_bytes(17) == 32 * 47 * 576 * 2  # whole 16-token blocks
    small = vm.kv_layout(resolve_model_spec("Qwen3.5-0.8B-FP16-vLLM"))  # no KV heads known: Lemonade's table
    assert small.from_size and small.estimated and small.bytes_per_token == 224 * 1024
    fp8 = vm.kv_layout(resolve_model_spec("Qwen3.6-27B-FP16-vLLM"), "fp8")
    assert fp8.bytes_per_token * 2 == qwen27.bytes_per_token


def _check_fits(hw, name, scenario):
    """The rendered --max-model-len fits the rendered pool, and weights + overhead + pool fit vLLM's share."""
    model = resolve_model_spec(name)
    try:
        rec = recommend(hw, model, scenario=scenario)
    except DoesNotFitError as err:  # said loudly (exit 2), naming the GGUF build that can spill to RAM
        assert err.exit_code == 2 and "does not fit" in str(err)
        rec = recommend(hw, model, scenario=scenario, force=True)
        assert rec.warnings and rec.memory.fits == "no"
    opts, args = rec.recipe_options(), _args(rec)
    assert not set(args) & PROTECTED_FLAGS
    device, _, _ = vm.device_bytes(hw)
    notes = " ".join(e.message for e in rec.trace if e.op == "note")
    if "--kv-cache-memory-bytes" not in args:  # does not fit: said loudly, Lemonade's own default kept
        assert "DOES NOT FIT" in notes
        return None
    pool = int(args["--kv-cache-memory-bytes"])
    ctx = opts["ctx_size"]
    layout = vm.kv_layout(model, extra_attention_layers=1 if name.endswith("conc") else 0)
    tokens, seqs = vm.batch_defaults(device)
    overhead = vm.overhead_bytes(model, tokens, seqs)
    assert layout.seq_bytes(ctx) <= pool  # vLLM refuses a max-model-len the pool cannot hold
    assert model.file_bytes + overhead + pool <= vm.UTILIZATION * device
    assert ctx <= (vm.trained_ctx(model) or vm.MAX_MODEL_LEN)
    return ctx, pool


@pytest.mark.parametrize("scenario", ["chat", "coding", "long-context"])
@pytest.mark.parametrize("name", VLLM_MODELS)
def test_context_and_kv_pool_fit_a_16gb_dgpu(name, scenario):
    hw = machines.rdna4_16gb_linux()
    got = _check_fits(hw, name, scenario)
    size_gib = resolve_model_spec(name).file_bytes / GIB
    if size_gib < 9:  # the 0.8B..4B FP16 models fit with room for a useful context
        assert got is not None and got[0] >= 4096
    if size_gib > 14.4:  # more than vLLM's 90% of 16 GiB in weights alone
        assert got is None


@pytest.mark.parametrize("scenario", ["chat", "long-context"])
@pytest.mark.parametrize("name", VLLM_MODELS)
def test_context_and_kv_pool_use_the_pool_of_a_128gb_apu(name, scenario):
    hw = machines.facts("strix-halo-128gb-linux.json")
    ctx, pool = _check_fits(hw, name, scenario)  # every registry vLLM model fits 124 GiB of GTT
    assert ctx == (32768 if scenario == "chat" else 131072)
    assert pool >= vm.LEMONADE_KV_BYTES  # never below Lemonade's 4 GiB, where it has the room
    model = resolve_model_spec(name)
    layout = vm.kv_layout(model, extra_attention_layers=1 if name.endswith("conc") else 0)
    if not layout.from_size:  # the pool holds the context four times over
        assert pool >= vm.KV_SEQUENCES * layout.seq_bytes(ctx) - MIB


def test_a_long_context_grows_the_pool_on_the_apu_and_shrinks_to_fit_on_the_dgpu():
    apu = recommend(machines.facts("strix-halo-128gb-linux.json"), resolve_model_spec("Qwen3.5-4B-FP16-vLLM"),
                    scenario="long-context")
    assert apu.recipe_options()["ctx_size"] == 131072 and int(_args(apu)["--kv-cache-memory-bytes"]) > 16 * GIB
    dgpu = recommend(machines.rdna4_16gb_linux(), resolve_model_spec("Qwen3.5-4B-FP16-vLLM"), scenario="long-context")
    ctx, pool = dgpu.recipe_options()["ctx_size"], int(_args(dgpu)["--kv-cache-memory-bytes"])
    assert 32768 < ctx <= 131072 and pool < 5 * GIB
    assert dgpu.decisions["vllm_kv_cache_mib"].rule_id == "vllm-memory-fit"
    assert dgpu.decisions["vllm_kv_cache_mib"].chain[0].rule_id == "family-vllm-long-context"


def test_a_model_too_big_for_the_gpu_is_said_loudly_and_names_the_gguf_build():
    with pytest.raises(DoesNotFitError, match="Qwen3.6-27B-GGUF"):  # exit 2, with the runnable GGUF build
        recommend(machines.rdna4_16gb_linux(), resolve_model_spec("Qwen3.6-27B-FP16-vLLM"))
    rec = recommend(machines.rdna4_16gb_linux(), resolve_model_spec("Qwen3.6-27B-FP16-vLLM"), force=True)
    notes = [e.message for e in rec.trace if e.op == "note"]
    assert any("DOES NOT FIT" in n and "Qwen3.6-27B-GGUF" in n for n in notes)
    assert rec.recipe_options()["vllm_args"] == ""  # Lemonade's own default stays; nothing worse is added


def test_without_the_memory_fit_the_context_still_fits_lemonades_4g_pool():
    hw = machines.facts("strix-halo-128gb-linux.json")
    model = resolve_model_spec("Qwen3.6-27B-FP16-vLLM")
    rec = recommend(hw, model, scenario="long-context", memory_fit=False)
    opts = rec.recipe_options()
    assert opts["vllm_args"] == ""  # `auto` pool unresolved: Lemonade's 4G
    assert vm.kv_layout(model).seq_bytes(opts["ctx_size"]) <= vm.LEMONADE_KV_BYTES < vm.kv_layout(model).seq_bytes(
        131072)


def test_the_memory_budget_pair_keeps_one_flag():
    hw = machines.facts("rx-7900-xtx-desktop-linux.json")
    model = resolve_model_spec("Qwen3.5-4B-FP16-vLLM")
    rec = recommend(hw, model, overrides={"vllm_gpu_memory_utilization": 0.8})
    args = _args(rec)
    assert args["--gpu-memory-utilization"] == "0.8" and "--kv-cache-memory-bytes" not in args
    assert rec.decisions["vllm_kv_cache_mib"].rule_id == "vllm-memory-pair"
    rec = recommend(hw, model, overrides={"vllm_kv_cache_mib": 2048})
    assert _args(rec)["--kv-cache-memory-bytes"] == str(2048 * MIB)
    with pytest.raises(UsageError, match="keeps only one"):
        recommend(hw, model, overrides={"vllm_kv_cache_mib": 2048, "vllm_gpu_memory_utilization": 0.8})
    with pytest.raises(ParamError, match="only one"):
        get("vllm").render({"backend": "rocm", "vllm_kv_cache_mib": 1024, "vllm_gpu_memory_utilization": 0.5})


def test_a_users_context_is_kept_with_a_note_when_the_pool_cannot_hold_it():
    hw = machines.facts("rx-7900-xtx-desktop-linux.json")
    rec = recommend(hw, resolve_model_spec("Qwen3.5-9B-FP16-vLLM"),
                    overrides={"ctx_size": 262144, "vllm_kv_cache_mib": 1024})
    assert rec.recipe_options()["ctx_size"] == 262144
    assert any(e.op == "note" and "kept the user's ctx_size=262144" in e.message for e in rec.trace)


def test_lemonades_per_model_max_num_seqs_is_not_replaced(tmp_path):
    (tmp_path / "seqs.yaml").write_text(
        "rules:\n  - id: test-vllm-seqs\n    description: t\n    layer: family\n    when: {recipe: vllm}\n"
        "    set: {vllm_max_num_seqs: 32}\n    evidence: none\n")
    book = load_rulebook(bundled_root(), tmp_path)
    hw = machines.facts("strix-halo-128gb-linux.json")
    low = recommend(hw, resolve_model_spec("Qwen3.6-27B-FP8-vLLM-lowconc"), rulebook=book)
    assert "--max-num-seqs" not in _args(low)
    assert low.decisions["vllm_max_num_seqs"].rule_id == "vllm-lemonade-model-args"
    plain = recommend(hw, resolve_model_spec("Qwen3.6-27B-FP16-vLLM"), rulebook=book)
    assert _args(plain)["--max-num-seqs"] == "32"


def test_extra_args_refuse_protected_managed_and_unknown_flags():
    assert extra_args_problems(["--no-enable-chunked-prefill", "--cpu-offload-gb", "4"], None) == []
    for flag in sorted(PROTECTED_FLAGS):
        assert "managed by Lemonade" in extra_args_problems([flag, "x"], None)[0]
    assert "managed by Lemonade" in extra_args_problems(["--enforce-eager"], None)[0]
    assert "use the parameter vllm_max_num_seqs" in extra_args_problems(["--max-num-seqs=4"], None)[0]
    assert "not an allowlisted" in extra_args_problems(["--temperature", "0"], None)[0]
    assert "non-negative integer" in extra_args_problems(["--cpu-offload-gb", "x"], None)[0]
    with pytest.raises(UsageError):
        recommend(machines.facts("strix-halo-128gb-linux.json"), resolve_model_spec("Qwen3.5-4B-FP16-vLLM"),
                  overrides={"vllm_extra_args": ["--port", "1"]})


def test_cpu_offload_shrinks_the_weights_the_plan_places_on_the_gpu():
    hw = machines.rdna4_16gb_linux()
    model = resolve_model_spec("Qwen3.5-9B-FP16-vLLM")  # 19.3 GB: too big for 16 GB alone
    assert not vm.plan(hw, model, ctx=32768, kv="auto").fits
    p = vm.plan(hw, model, ctx=32768, kv="auto", cpu_offload_gib=8)
    assert p.fits and p.weights == model.file_bytes - 8 * GIB
