"""8 threads x 1,000 recommend() calls give exactly the serial answers (cached and uncached mixed)."""

from __future__ import annotations

import itertools
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from engine.evaluators import durable_available
from engine.recommend import clear_cache, recommend
from facts.lemonade import from_system_info
from facts.models import ModelFacts

SYSINFO = Path(__file__).resolve().parents[1] / "fixtures" / "system-info"
HW = [from_system_info(p.read_text(), source=p.name) for p in sorted(SYSINFO.glob("*.json"))]
MODELS = [ModelFacts(name=f"m{i}", recipe="llamacpp", params_b=p, quant=q, is_moe=moe,
                     file_bytes=int(p * 0.6 * 2**30))
          for i, (p, q, moe) in enumerate([(4.0, "Q4_K_M", False), (30.5, "Q4_K_M", True), (70.0, "Q8_0", False)])]
SCENARIOS = ["chat", "coding", "long-context"]
OVERRIDES = [None, {"ctx_size": 8192}, {"flash_attn": "on", "cache_type_v": "q8_0"}, {"threads": "physical-cores"}]
INPUTS = list(itertools.product(range(len(HW)), range(len(MODELS)), SCENARIOS, range(len(OVERRIDES))))


def call(item, evaluator):
    h, m, scenario, o = item
    # fresh copies half the time: equal content, new objects (exercises the content-keyed cache)
    hw = HW[h].model_copy() if (h + m + o) % 2 else HW[h]
    rec = recommend(hw, MODELS[m], scenario=scenario, overrides=OVERRIDES[o], evaluator=evaluator,
                    memory_fit=False)
    return rec.values(), rec.recipe_options(), rec.trace


@pytest.mark.parametrize("evaluator", [
    "python",
    pytest.param("durable", marks=pytest.mark.skipif(not durable_available(), reason="durable-rules not importable")),
])
def test_eight_threads_agree_with_serial_calls(evaluator):
    clear_cache()
    expected = {item: call(item, evaluator) for item in INPUTS}  # serial, uncached then cached
    clear_cache()  # the threads start cold: first calls race to compute, later ones hit the cache
    rnd = random.Random(7)
    work = [[rnd.choice(INPUTS) for _ in range(1000)] for _ in range(8)]

    def worker(items):
        return [(item, call(item, evaluator)) for item in items]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = [r for chunk in pool.map(worker, work) for r in chunk]
    assert len(results) == 8000
    wrong = [item for item, got in results if got != expected[item]]
    assert not wrong, f"{len(wrong)} of 8000 threaded results differ from the serial ones, e.g. {wrong[0]}"
    assert len({item for item, _ in results}) > len(INPUTS) // 2  # the mix really varied the inputs
