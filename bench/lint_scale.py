"""`engine lint` and rulebook loading at scale: the bundled rulebook plus N synthetic archetype rules.

    python bench/lint_scale.py                 # 10,000 synthetic rules (goal: lint <= 10 s)
    python bench/lint_scale.py --rules 2000 5000 10000

The synthetic rules look like curated ones (an archetype id, a model class, a scenario, one parameter, evidence)
with random priorities, so lint has conflicts and shadowed rules to find. Each size is loaded without the
compiled cache (load s: the YAML parse), linted once cold (cold s: parse + lint, what a maintainer waits for
after an edit) and then warm (lint s: from the compiled cache); medians of --repeat runs.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _timing import ROOT, median_seconds

from engine.lint import lint
from engine.rulebook import load_rulebook


def synthetic(n: int, seed: int = 1) -> str:
    rng = random.Random(seed)
    rules = ["# synthetic rules for bench/lint_scale.py", "rules:"]
    for i in range(n):
        rules.append(f"""  - id: synth-{i}
    description: synthetic rule {i}
    layer: archetype
    priority: {rng.randint(0, 900)}
    when:
      archetype: arch-{i % max(n // 4, 1)}
      model_class: {rng.choice(['dense-small-quantized', 'moe-large-quantized', 'dense-large-quantized'])}
      scenario: {rng.choice(['chat', 'coding'])}
    set: {{ubatch: {rng.choice([256, 512, 1024, 2048])}}}
    evidence: {{n: {rng.randint(3, 50)}, metric: tg128}}""")
    return "\n".join(rules) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rules", type=int, nargs="+", default=[10_000])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"{'synthetic':>9} {'rules':>7} {'load s':>7} {'cold s':>7} {'lint s':>7} {'errors':>7} {'warnings':>8}")
    worst = 0.0
    for n in args.rules:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["LEMONADE_AUTOTUNE_CACHE_DIR"] = str(Path(tmp) / "cache")  # a cold compiled cache
            root = Path(tmp) / "rulebook"
            shutil.copytree(ROOT / "rulebook", root)
            (root / "synthetic.yaml").write_text(synthetic(n), encoding="utf-8")
            load_s = median_seconds(lambda root=root: load_rulebook(root, cache=False), args.repeat)
            t0 = time.perf_counter()
            result = lint(root)  # the first lint of this rulebook: its compiled cache is cold
            cold_s = time.perf_counter() - t0
            lint_s = median_seconds(lambda root=root: lint(root), args.repeat)
            rules = len(result.rulebook.rules) if result.rulebook else 0
            print(f"{n:>9,} {rules:>7,} {load_s:>7.2f} {cold_s:>7.2f} {lint_s:>7.2f} {result.errors:>7,} "
                  f"{len(result.findings) - result.errors:>8,}")
            worst = max(worst, cold_s if n >= 10_000 else 0.0)
    if worst:
        print(f"cold lint of 10,000+ synthetic rules: {worst:.2f} s (goal <= 10 s): {'ok' if worst <= 10 else 'OVER'}")
    return 0 if worst <= 10 else 1


if __name__ == "__main__":
    sys.exit(main())
