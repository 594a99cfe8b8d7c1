"""The real llama-server accepts what we emit: recommendations rendered into `llamacpp_args` + `--ctx-size`
start it on a tiny GGUF and /health answers ok; every flag our vocabulary can emit appears at least once.
With placement left to llama.cpp's --fit, its own log agrees with our memory verdict.

llama-server: $LEMONADE_AUTOTUNE_LLAMA_SERVER, else PATH (.ci/run sets it; the README beside the binary
says how it was built). Its CPU build ignores GPU-only flags with a warning, which is the point: they parse.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from engine.recipes.llamacpp.flags import EXTRA_ARGS, SPECS
from engine.recommend import recommend
from facts.gguf import read_model_facts
from facts.lemonade import from_system_info
from tests.support.lemond import find_llama_server
from tests.support.wire import free_port

ROOT = Path(__file__).resolve().parents[2]
SYSINFO = ROOT / "tests" / "fixtures" / "system-info"
SIX = ("strix-halo-128gb-linux.json", "radeon-780m-laptop-windows.json", "rx-7900-xtx-desktop-linux.json",
       "rtx-4090-desktop-linux.json", "apple-m3-max-64gb-macos.json", "cpu-only-linux.json")
LLAMA_SERVER = find_llama_server()
pytestmark = pytest.mark.skipif(LLAMA_SERVER is None, reason="no llama-server: set LEMONADE_AUTOTUNE_LLAMA_SERVER")

# overrides that, with the rules' own choices, make every parameter's flag and every allowlisted argument appear
_EXTRA = [
    ["--no-op-offload", "--swa-full", "--cont-batching", "--no-warmup", "--no-kv-offload", "--cpu-moe"],
    ["--no-cont-batching", "--fit", "on", "--split-mode", "layer", "--main-gpu", "0", "--tensor-split", "1"],
    ["--numa", "distribute", "--poll", "50", "--prio", "1", "--cache-reuse", "256", "--context-shift"],
    ["--no-context-shift", "--fit", "off", "-sm", "none", "-mg", "0", "-ts", "1", "-nkvo", "-cmoe"],
]
OVERRIDES = [
    {"n_gpu_layers": 2, "batch": 512, "ubatch": 256, "threads": 2, "flash_attn": "on", "cache_type_k": "q8_0",
     "cache_type_v": "q8_0", "mmap": "off", "parallel": 2, "kv_unified": "on", "extra_args": _EXTRA[0]},
    {"n_gpu_layers": "all", "flash_attn": "off", "mmap": "on", "parallel": 1, "kv_unified": "off", "threads": 2,
     "extra_args": _EXTRA[1]},
    {"flash_attn": "auto", "cache_type_k": "q4_0", "cache_type_v": "q4_0", "n_cpu_moe": 1, "threads": 1,
     "extra_args": _EXTRA[2]},
    {"cache_type_k": "f32", "cache_type_v": "f16", "batch": 1024, "ubatch": 512, "threads": 2,
     "extra_args": _EXTRA[3]},
    {"threads": 2},  # the rules' own choices (threads: the example machines have up to 16 cores, this one 2)
]


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """A dense llama (head size 64: every quantised KV type fits its blocks) and a MoE, random weights."""
    sys.path.insert(0, str(ROOT / "bench"))
    from accuracy import tiny_models as tm

    out = tmp_path_factory.mktemp("tiny")
    specs = {s.name: s for s in tm.specs()}
    return {"dense": tm.write(specs["llama-gqa"], out / "dense.gguf"),
            "moe": tm.write(specs["qwen3moe"], out / "moe.gguf")}


def _start(model: Path, ctx: int, args: list[str], log: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    cmd = [str(LLAMA_SERVER), "-m", str(model), "--ctx-size", str(ctx), "--host", "127.0.0.1",
           "--port", str(port), *args]
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
    return proc, port


def _healthy(proc: subprocess.Popen, port: int, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200 and json.loads(r.read()).get("status") == "ok":
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_llama_server_starts_with_every_flag_we_emit(tiny_models, tmp_path):
    emitted: set[str] = set()
    launched = 0
    for i, name in enumerate(SIX):
        hw = from_system_info((SYSINFO / name).read_text(), source=name)
        for j, overrides in enumerate(OVERRIDES):
            if (i + j) % 2:  # a sample: every override set on three machines
                continue
            kind = "moe" if "n_cpu_moe" in overrides else "dense"
            model = read_model_facts(tiny_models[kind])
            rec = recommend(hw, model, overrides=overrides, force=True)
            opts = rec.recipe_options()
            args = opts["llamacpp_args"].split()
            emitted.update(a for a in args if a.startswith("-"))
            log = tmp_path / f"{i}-{j}.log"
            proc, port = _start(tiny_models[kind], opts["ctx_size"] if opts["ctx_size"] > 0 else 2048, args, log)
            try:
                ok = _healthy(proc, port)
            finally:
                _stop(proc)
            assert ok, f"{name} {overrides}: llama-server refused {args}:\n{log.read_text()[-2000:]}"
            launched += 1
    vocabulary = {s.flag for s in SPECS if s.flag} | {"--no-kv-unified"} | set(EXTRA_ARGS)
    assert vocabulary <= emitted, f"never emitted: {sorted(vocabulary - emitted)}"
    assert launched >= 10


_PROJECTED = re.compile(r"projected to use (\d+) MiB of host memory")


def test_with_fit_left_to_place_the_model_its_log_agrees_with_our_verdict(tiny_models, tmp_path):
    """On this CPU-only machine llama.cpp's fit weighs the host memory: it must find nothing to change (our
    verdict: it fits), and its projection must be close to our estimate of what the model loads."""
    from facts.detect import detect

    hw = detect()
    for kind in ("dense", "moe"):
        model = read_model_facts(tiny_models[kind])
        rec = recommend(hw, model, overrides={"parallel": 1})
        opts, v = rec.recipe_options(), rec.memory
        assert v is not None and v.fits in ("yes", "estimated")
        assert "-ngl" not in opts["llamacpp_args"].split() and "--n-cpu-moe" not in opts["llamacpp_args"].split()
        log = tmp_path / f"fit-{kind}.log"
        proc, port = _start(tiny_models[kind], opts["ctx_size"], [*opts["llamacpp_args"].split(), "-lv", "4"], log)
        try:
            assert _healthy(proc, port), log.read_text()[-2000:]
        finally:
            _stop(proc)
        text = log.read_text()
        assert "no changes needed" in text or "successfully fit params" in text, text[-2000:]
        projected = int(_PROJECTED.search(text).group(1)) << 20
        ours = v.total_bytes
        assert abs(ours - projected) <= max(4 << 20, projected // 4), (ours, projected)
