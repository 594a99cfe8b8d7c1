"""recommend() speed per evaluator: cache-hit p50 (target <= 20 us) and uncached p50 (target <= 1 ms).

Run: python bench/recommend_speed.py [--n 2000]. Prints medians side by side; asserts nothing.
"""

from __future__ import annotations

import argparse
import sys

from _timing import ROOT, median_seconds  # first: puts the repository root on sys.path

from engine.evaluators import durable_available, make_evaluator
from engine.recommend import default_rulebook, recommend, resolve
from facts.lemonade import from_system_info
from facts.models import ModelFacts

SYSINFO = ROOT / "tests" / "fixtures" / "system-info"


def p50_us(fn, n: int) -> float:
    return median_seconds(fn, n) * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=2000, help="calls per measurement")
    args = ap.parse_args()
    hw = from_system_info((SYSINFO / "strix-halo-128gb-linux.json").read_text(), source="strix")
    model = ModelFacts(name="Qwen3-30B-A3B", recipe="llamacpp", params_b=30.5, active_params_b=3.3,
                       is_moe=True, quant="Q4_K_M", file_bytes=18 * 2**30, trained_ctx=40960)
    book = default_rulebook()
    engines = ["python"] + (["durable"] if durable_available() else [])
    print(f"rulebook {book.name} ({len(book.rules)} rules), {args.n} calls each, Python "
          f"{sys.version.split()[0]}")
    rows = {}
    for ev in engines:
        recommend(hw, model, evaluator=ev)  # warm: compile the evaluator, fill the cache
        evaluator = make_evaluator(book, engine=ev)
        copies = iter([hw.model_copy() for _ in range(args.n)])  # equal content, new objects
        rows[ev] = (
            p50_us(lambda ev=ev: recommend(hw, model, evaluator=ev), args.n),
            p50_us(lambda ev=ev, c=copies: recommend(next(c), model, evaluator=ev), args.n),
            p50_us(lambda e=evaluator: resolve(hw, model, "chat", book, e, {}, False), args.n),
            p50_us(lambda e=evaluator: resolve(hw, model, "chat", book, e, {}, True), args.n),
        )
    heads = ("cache hit (same objects)", "cache hit (equal copies)", "uncached, no memory fit",
             "uncached, with memory fit")
    width = max(map(len, heads))
    print(f"{'p50 (us)'.ljust(width)}  " + "  ".join(e.rjust(9) for e in engines))
    for i, head in enumerate(heads):
        print(f"{head.ljust(width)}  " + "  ".join(f"{rows[e][i]:9.1f}" for e in engines))
    if len(engines) == 2:
        print(f"{'durable / python (uncached)'.ljust(width)}  {rows['durable'][2] / rows['python'][2]:9.2f}")
    print("targets: cache hit <= 20 us, uncached <= 1000 us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
