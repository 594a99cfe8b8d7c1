"""engine.session.Engine: one object a server can hold; reload() swaps rulebook, evaluator and cache at once."""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from engine import ir
from engine.evaluators import durable_available
from engine.rulebook import bundled_root, load_rulebook
from engine.session import Engine
from facts.lemonade import from_system_info
from facts.models import ModelFacts

SYSINFO = Path(__file__).resolve().parents[1] / "fixtures" / "system-info"
HW = [from_system_info(p.read_text(), source=p.name) for p in sorted(SYSINFO.glob("*.json"))]
MODEL = ModelFacts(name="m", params_b=8.0, quant="Q4_K_M", file_bytes=5 << 30)
STARTER = load_rulebook(bundled_root() / "defaults")
FULL = load_rulebook()
EVALUATORS = ["python", pytest.param("durable", marks=pytest.mark.skipif(not durable_available(),
                                                                          reason="durable-rules not importable"))]


def _serial(book: ir.Rulebook, evaluator: str) -> list[dict]:
    eng = Engine(book, evaluator=evaluator)
    try:
        return [eng.recommend(hw, MODEL, memory_fit=False).recipe_options() for hw in HW]
    finally:
        eng.close()


@pytest.mark.parametrize("evaluator", EVALUATORS)
def test_reloads_under_eight_threads_give_old_or_new_answers_never_a_mix_or_a_closed_evaluator(evaluator):
    want = {STARTER.digest: _serial(STARTER, evaluator), FULL.digest: _serial(FULL, evaluator)}
    assert want[STARTER.digest] != want[FULL.digest]  # the two rulebooks really answer differently
    eng = Engine(STARTER, evaluator=evaluator)
    stop, swaps = threading.Event(), [0]

    def reloader() -> None:
        while not stop.is_set():
            eng.reload(FULL if swaps[0] % 2 == 0 else STARTER)
            swaps[0] += 1
            time.sleep(0.01)  # let readers run on each generation (building the next one can take ~1 ms)

    def worker(seed: int) -> list[tuple[str, int, dict]]:
        rnd = random.Random(seed)
        out = []
        while len(out) < 200 or (swaps[0] < 6 and len(out) < 200_000):  # until the rulebook changed 6 times
            i = rnd.randrange(len(HW))
            rec = eng.recommend(HW[i], MODEL, memory_fit=False)
            out.append((rec.rulebook_digest, i, rec.recipe_options()))
        return out

    with ThreadPoolExecutor(max_workers=9) as pool:
        swapping = pool.submit(reloader)
        results = [r for chunk in pool.map(worker, range(8)) for r in chunk]
        stop.set()
        swapping.result()
    assert swaps[0] >= 6 and len(results) >= 1600  # the rulebook really changed under the readers
    wrong = [(d[:8], i) for d, i, opts in results if opts != want[d][i]]
    assert not wrong, f"{len(wrong)} answers mix rulebooks, e.g. {wrong[:3]}"
    assert {d for d, _, _ in results} == set(want)  # both generations answered
    eng.close()


def test_reload_with_a_broken_rulebook_keeps_the_old_one(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.yaml").write_text("rules: [{id: x}]\n")
    eng = Engine(roots=(bundled_root() / "defaults",))
    before = eng.rulebook
    from engine.errors import RulebookError

    with pytest.raises(RulebookError):
        eng.reload(load_rulebook(bad))
    assert eng.rulebook is before
    assert eng.recommend(HW[0], MODEL, memory_fit=False).rulebook_digest == before.digest
