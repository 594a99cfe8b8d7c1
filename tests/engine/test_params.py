"""The parameter vocabulary: allowed values, pydantic errors, llama.cpp flags, reserved flags."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from engine.errors import ParamError
from engine.params import BACKENDS, PARAMETERS, PARAMS, RECIPE_BACKENDS, ParamValues, validate_params
from engine.recipes.llamacpp.flags import EXTRA_ARGS, RESERVED_FLAGS, extra_args_problems
from engine.recipes.llamacpp.flags import flags as llamacpp_flags


def test_vocabulary_covers_the_contract():
    assert PARAMETERS[:14] == ("backend", "ctx_size", "n_gpu_layers", "batch", "ubatch", "threads", "flash_attn",
                               "cache_type_k", "cache_type_v", "mmap", "n_cpu_moe", "parallel", "kv_unified",
                               "extra_args")
    # the other recipes' own parameters carry their recipe's prefix (tests/engine/test_recipe_*.py cover them)
    assert PARAMETERS[14:17] == ("device", "split_mode", "tensor_split")  # multi-GPU placement (llamacpp)
    prefixes = {"vllm": "vllm_", "flm": "flm_", "whispercpp": "whispercpp_", "sd-cpp": "sdcpp_"}
    assert all(any(p.startswith(x) for x in prefixes.values()) for p in PARAMETERS[17:])
    assert RECIPE_BACKENDS["llamacpp"] == ("system", "metal", "cuda", "vulkan", "rocm", "cpu")
    assert RECIPE_BACKENDS["vllm"] == ("rocm",) and RECIPE_BACKENDS["flm"] == ("npu",)
    assert set(BACKENDS) == {"system", "metal", "cuda", "vulkan", "rocm", "cpu", "npu"}
    assert PARAMS["ctx_size"].flag is None and PARAMS["backend"].flag is None
    assert {"-m", "--ctx-size", "-c", "--port", "--jinja", "--mmproj", "--rerank"} <= RESERVED_FLAGS
    assert not set(EXTRA_ARGS) & RESERVED_FLAGS


def test_flags_from_resolved_values():
    assert llamacpp_flags({"n_gpu_layers": "all", "ubatch": 1024, "flash_attn": "on", "cache_type_k": "q8_0"}) == \
        ["-ngl", "999", "-ub", "1024", "-fa", "on", "-ctk", "q8_0"]
    assert llamacpp_flags({"backend": "vulkan", "ctx_size": 8192, "batch": 2048, "threads": 8, "mmap": "off",
                           "kv_unified": "on", "n_cpu_moe": 12, "parallel": 2, "cache_type_v": "q4_0",
                           "extra_args": ("--no-op-offload", "--fit", "off")}) == \
        ["-b", "2048", "-t", "8", "-ctv", "q4_0", "--load-mode", "none", "--n-cpu-moe", "12", "-np", "2", "-kvu",
         "--no-op-offload", "--fit", "off"]
    assert llamacpp_flags({"mmap": "on", "kv_unified": "off"}) == ["--load-mode", "mmap", "--no-kv-unified"]


def test_default_and_auto_emit_nothing():
    values = {p: "default" for p in PARAMETERS if "default" in PARAMS[p].words}
    values.update(backend="cpu", ctx_size="auto", n_gpu_layers="auto", n_cpu_moe="auto", extra_args=[])
    assert llamacpp_flags(values) == []


@pytest.mark.parametrize("values, match", [
    ({"threads": "physical-cores"}, "resolved to a number"),
    ({"ubatch": 8}, ">= 16"),
    ({"flash_attn": True}, "not a boolean"),
    ({"extra_args": ["--port", "1"]}, "reserved by Lemonade"),
    ({"backend": "cpu", "extra_args": ["-m", "x.gguf"]}, "reserved by Lemonade"),
    ({"backend": "cpu", "extra_args": ["--mlock"]}, "not an allowlisted"),  # folded into --load-mode upstream
])
def test_flags_refuse_unresolved_or_invalid_values(values, match):
    with pytest.raises(ParamError, match=match):
        llamacpp_flags(values)


_VALUE = {name: (st.sampled_from(spec.words) if not spec.is_int else
                 st.one_of(st.integers(spec.minimum, spec.maximum), st.sampled_from(spec.words)))
          for name, spec in PARAMS.items() if not spec.is_list}


@given(st.fixed_dictionaries({}, optional=_VALUE),
       st.lists(st.sampled_from(sorted(k for k, (kind, _b) in EXTRA_ARGS.items() if kind is None)), max_size=3))
def test_no_valid_value_ever_renders_a_reserved_flag(values, extra):
    values = {k: v for k, v in values.items() if v not in ("physical-cores", "performance-cores")}
    values["backend"] = "vulkan"
    values["extra_args"] = extra
    flags = llamacpp_flags(values)
    assert not set(flags) & RESERVED_FLAGS
    known = {s.flag for s in PARAMS.values()} | {"--no-kv-unified"} | set(EXTRA_ARGS)
    assert all(f in known for f in flags if f.startswith("-"))
    assert "--ctx-size" not in flags and "-c" not in flags


def test_validation_errors_name_every_bad_parameter():
    with pytest.raises(ValidationError) as err:
        validate_params({"ctx_size": "abc", "batch": True, "foo": 1, "ubatch": 8, "parallel": 65,
                         "n_gpu_layers": 2.5, "threads": "12", "extra_args": "--mlock"})
    got = {e["loc"][0]: e["type"] for e in err.value.errors()}
    assert got == {"ctx_size": "literal_error", "batch": "param_type", "foo": "extra_forbidden",
                   "ubatch": "greater_than_equal", "parallel": "less_than_equal", "n_gpu_layers": "int_from_float",
                   "threads": "int_type", "extra_args": "list_type"}
    assert validate_params({"ctx_size": 4096, "n_gpu_layers": "all"}) == {"ctx_size": 4096, "n_gpu_layers": "all"}


def test_extra_args_allowlist_checks_values_and_backends():
    assert extra_args_problems(["--split-mode", "row", "-ts", "1,0.5", "--poll", "50"], "cuda") == []
    assert extra_args_problems(["--fit"], None) == ["'--fit' needs a value"]
    assert "takes one of on, off" in extra_args_problems(["--fit", "maybe"], None)[0]
    assert "not allowed with backend 'cpu'" in extra_args_problems(["-sm", "row"], "cpu")[0]
    assert "not an allowlisted" in extra_args_problems(["--temp", "0.7"], None)[0]
    assert "reserved" in extra_args_problems(["--model=x.gguf"], None)[0]


def test_json_schema_describes_each_parameter():
    props = ParamValues.model_json_schema()["properties"]
    assert set(props) == set(PARAMETERS)
    assert props["ctx_size"]["anyOf"][0] == {"type": "integer", "minimum": 512, "maximum": 1048576}
    assert props["flash_attn"]["enum"] == ["on", "off", "auto", "default"]
