"""Fuzz every input path: examples, rejections, crashes and slow examples per target.

    python bench/fuzz.py                       # 10,000 examples per target (all seven)
    python bench/fuzz.py --examples 500 --target gguf --target curate
    python bench/fuzz.py --seconds 60          # at most a minute per target

A crash is any exception that is not a project error (the CLI's exit 3); a slow example takes more than a
second (the issue's time bound). The mutations are those of tests/fuzz/harness.py, seeded per example, so
`--replay TARGET:SEED` re-runs one and prints its traceback. Exit 1 when anything crashed or was slow.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("LEMONADE_AUTOTUNE_REMOTE", "0")

from tests.fuzz import harness  # noqa: E402

SLOW_S = 1.0


def _site(err: BaseException) -> str:
    """The innermost frame in this project's code, and the exception type."""
    frames = [f for f in traceback.extract_tb(err.__traceback__)
              if "/engine/" in f.filename or "/facts/" in f.filename]
    f = frames[-1] if frames else traceback.extract_tb(err.__traceback__)[-1]
    return f"{type(err).__name__} at {Path(f.filename).parent.name}/{Path(f.filename).name}:{f.lineno}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=10_000)
    ap.add_argument("--seconds", type=float, default=None, help="stop a target after this long")
    ap.add_argument("--target", action="append", choices=sorted(harness.TARGETS))
    ap.add_argument("--start", type=int, default=0, help="first seed")
    ap.add_argument("--replay", metavar="TARGET:SEED")
    args = ap.parse_args()
    if args.replay:
        target, seed = args.replay.rsplit(":", 1)
        print(harness.run(target, int(seed)))
        return 0
    rows, bad = [], 0
    for target in args.target or list(harness.TARGETS):
        counts: Counter[str] = Counter()
        sites: dict[str, int] = {}
        slow: list[tuple[float, int]] = []
        t0 = time.perf_counter()
        for seed in range(args.start, args.start + args.examples):
            if args.seconds is not None and time.perf_counter() - t0 > args.seconds:
                break
            s0 = time.perf_counter()
            try:
                counts[harness.run(target, seed).status] += 1
            except Exception as err:  # noqa: BLE001 - the point: count what the CLI would report as a bug
                counts["crash"] += 1
                sites.setdefault(_site(err), seed)
            dt = time.perf_counter() - s0
            if dt > SLOW_S:
                slow.append((dt, seed))
        n = sum(counts.values())
        elapsed = time.perf_counter() - t0
        rows.append((target, n, counts["ok"], counts["rejected"], counts["crash"], len(slow), elapsed))
        for site, seed in sorted(sites.items()):
            print(f"  {target}: {site} (first seed {seed}; --replay {target}:{seed})", file=sys.stderr)
        for dt, seed in sorted(slow, reverse=True)[:5]:
            print(f"  {target}: slow {dt:.2f} s (--replay {target}:{seed})", file=sys.stderr)
        bad += counts["crash"] + len(slow)
    print(f"{'target':15} {'examples':>9} {'ok':>7} {'rejected':>9} {'crashes':>8} {'slow>1s':>8} {'seconds':>8}")
    for target, n, ok, rej, crash, slow_n, elapsed in rows:
        print(f"{target:15} {n:>9,} {ok:>7,} {rej:>9,} {crash:>8,} {slow_n:>8,} {elapsed:>8.1f}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
