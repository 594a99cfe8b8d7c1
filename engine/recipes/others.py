"""The recipes without a tuning vocabulary yet: Lemonade's exact option keys, backend and ctx_size only.

Their `*_args` render empty (Lemonade's "not set"), so a recommendation for them is Lemonade's own behaviour
with the backend chosen by the rules (research/lemonade.md §2.1-2.2).
"""

from __future__ import annotations

from engine.recipes.base import Recipe


class Vllm(Recipe):
    name = "vllm"
    backend_key = "vllm_backend"
    args_key = "vllm_args"
    uses_ctx_size = True  # Lemonade passes it as --max-model-len
    needs = "an AMD GPU ROCm supports for vLLM (gfx1150, gfx1151, gfx110X, gfx120X) on Linux"


class Flm(Recipe):
    name = "flm"
    args_key = "flm_args"
    uses_ctx_size = True
    needs = "an AMD XDNA2 NPU (FastFlowLM, Windows or Linux)"


class RyzenAiLlm(Recipe):
    name = "ryzenai-llm"
    uses_ctx_size = True
    needs = "an AMD XDNA2 NPU on Windows"


class WhisperCpp(Recipe):
    name = "whispercpp"
    backend_key = "whispercpp_backend"
    args_key = "whispercpp_args"
    needs = "an x86_64/arm64 CPU on Linux, Windows or macOS"


class SdCpp(Recipe):
    name = "sd-cpp"
    backend_key = "sd-cpp_backend"  # sic: Lemonade's key has a hyphen, its args key does not
    args_key = "sdcpp_args"
    needs = "an x86_64/arm64 CPU on Linux, Windows or macOS"
