"""The flm recipe: flm_args only from Lemonade's allowlist (checked here against Lemonade's resolver rules, written
out independently), power mode per scenario, Lemonade's behaviour with the defaults alone."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.errors import ParamError, RecipeUnavailableError, UsageError
from engine.recipes import get
from engine.recipes.flm import SPECS
from engine.recommend import recommend
from engine.rulebook import bundled_root, load_rulebook
from facts.models import ModelFacts
from tests.support import machines

DEFAULTS = load_rulebook(bundled_root() / "defaults")
# FLM models come from `flm list` on an NPU machine (fastflowlm_models.cpp names them "<tag>-FLM"), not from
# server_models.json; these are FastFlowLM tags of each kind Lemonade serves (chat, embeddings, transcription).
FLM_MODELS = (ModelFacts(name="qwen3-4b-FLM", recipe="flm", labels=("chat",)),
              ModelFacts(name="llama3.2-1b-FLM", recipe="flm", labels=("chat",)),
              ModelFacts(name="gemma3-4b-FLM", recipe="flm", labels=("chat", "vision")),
              ModelFacts(name="embed-gemma-FLM", recipe="flm", labels=("embeddings",)),
              ModelFacts(name="whisper-v3-turbo-FLM", recipe="flm", labels=("transcription",)))
NPU_MACHINES = ("strix-halo-128gb-linux.json",)


def lemonade_accepts(flm_args: str, ctx_size: int) -> bool:
    """Lemonade's flm_arg_resolver.cpp rules: unquoted, space-separated, <= 12 tokens, `--flag value` pairs of
    six flags, each once, with their value checks."""
    if any(c in flm_args for c in "'\"") or any(ord(c) < 32 for c in flm_args):
        return False
    tokens = [t for t in flm_args.split(" ") if t]
    if len(tokens) > 12 or len(tokens) % 2:
        return False
    seen = set()
    for flag, val in zip(tokens[0::2], tokens[1::2], strict=True):
        if not flag.startswith("--") or "=" in flag or flag in seen:
            return False
        seen.add(flag)
        number = val.lstrip("-").isdigit() and val.isascii()
        if flag == "--pmode":
            ok = val in ("default", "powersaver", "balanced", "performance", "turbo")
        elif flag == "--prefill-chunk-len":
            ok = number and (int(val) == -1 or (int(val) >= 1 and not (ctx_size > 0 and int(val) > ctx_size)))
        elif flag == "--img-pre-resize":
            ok = number and 0 <= int(val) <= 4
        elif flag in ("--socket", "--q-len"):
            ok = number and 1 <= int(val) <= 1024
        elif flag == "--preemption":
            ok = val in ("0", "1", "true", "false")
        else:
            ok = False
        if not ok:
            return False
    return True


@pytest.mark.parametrize("memory_fit", [False, True])
@pytest.mark.parametrize("name", machines.SIX)
def test_defaults_alone_are_lemonades_behaviour(name, memory_fit):
    hw = machines.facts(name)
    if name not in NPU_MACHINES:
        with pytest.raises(RecipeUnavailableError, match="flm needs an AMD XDNA2 NPU") as err:
            recommend(hw, FLM_MODELS[0], rulebook=DEFAULTS, memory_fit=memory_fit)
        assert err.value.variant == "Qwen3-4B-GGUF"  # the GGUF build of the same model runs there
        return
    for model in FLM_MODELS:
        assert recommend(hw, model, rulebook=DEFAULTS, memory_fit=memory_fit).recipe_options() == {
            "flm_args": "", "ctx_size": -1}


@pytest.mark.parametrize("scenario, pmode", [("chat", "performance"), ("chat-short", "performance"),
                                             ("coding", "turbo"), ("context-128k", "turbo"), ("embed", None)])
def test_power_mode_per_scenario(scenario, pmode):
    rec = recommend(machines.facts("strix-halo-128gb-linux.json"), FLM_MODELS[0], scenario=scenario)
    opts = rec.recipe_options()
    assert opts == {"flm_args": f"--pmode {pmode}" if pmode else "", "ctx_size": -1}
    assert lemonade_accepts(opts["flm_args"], -1)
    power_notes = [e for e in rec.trace if e.op == "note" and e.rule_id == "flm-power"]
    assert bool(power_notes) == bool(pmode) and (not pmode or "battery" in power_notes[0].message)


def test_every_flag_at_once_is_twelve_tokens_lemonade_accepts():
    rec = recommend(machines.strix_point_windows(), FLM_MODELS[2], overrides={
        "ctx_size": 8192, "flm_pmode": "balanced", "flm_prefill_chunk_len": 2048, "flm_img_pre_resize": 2,
        "flm_socket": 4, "flm_q_len": 16, "flm_preemption": "on"})
    args = rec.recipe_options()["flm_args"]
    assert args == ("--pmode balanced --prefill-chunk-len 2048 --img-pre-resize 2 --socket 4 --q-len 16 "
                    "--preemption 1")
    assert len(args.split()) == 12 and lemonade_accepts(args, 8192)


def test_a_prefill_chunk_longer_than_the_context_is_refused_or_dropped(tmp_path):
    hw = machines.facts("strix-halo-128gb-linux.json")
    with pytest.raises(UsageError, match="longer than the context"):
        recommend(hw, FLM_MODELS[0], overrides={"ctx_size": 4096, "flm_prefill_chunk_len": 8192})
    (tmp_path / "chunk.yaml").write_text(
        "rules:\n  - id: test-flm-chunk\n    description: t\n    layer: family\n    when: {recipe: flm}\n"
        "    set: {flm_prefill_chunk_len: 8192}\n    evidence: none\n")
    book = load_rulebook(bundled_root(), tmp_path)
    auto = recommend(hw, FLM_MODELS[0], rulebook=book)  # ctx left to Lemonade: the chunk cannot be checked
    assert "--prefill-chunk-len" not in auto.recipe_options()["flm_args"]
    small = recommend(hw, FLM_MODELS[0], rulebook=book, overrides={"ctx_size": 4096})
    assert "--prefill-chunk-len 4096" in small.recipe_options()["flm_args"]


_VALUES = {s.name: (st.sampled_from(s.words) if not s.is_int else
                    st.one_of(st.integers(s.minimum, s.maximum), st.sampled_from(s.words))) for s in SPECS}


@given(st.fixed_dictionaries({}, optional=_VALUES), st.one_of(st.just("auto"), st.integers(512, 1 << 20)))
def test_any_valid_values_render_flm_args_lemonade_accepts(values, ctx):
    values = {"backend": "npu", "ctx_size": ctx, **values}
    chunk = values.get("flm_prefill_chunk_len")
    if isinstance(ctx, int) and isinstance(chunk, int) and chunk > ctx:
        with pytest.raises(ParamError):
            get("flm").render(values)
        return
    opts = get("flm").render(values)
    assert set(opts) == {"flm_args", "ctx_size"}
    assert lemonade_accepts(opts["flm_args"], ctx if isinstance(ctx, int) else -1)
