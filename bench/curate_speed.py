"""Curation speed: a synthetic 1,000,000-row community-format CSV through `engine curate` (median of runs).

Prints rows, wall seconds (median of --runs), rows/s and peak RSS of the curating process, against the
targets (<= 60 s, <= 1 GiB RSS). Usage: python bench/curate_speed.py [--rows N] [--runs K]
"""

from __future__ import annotations

import argparse
import csv
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HARDWARE = [("AMD Ryzen AI MAX+ 395 (Radeon 8060S, Strix Halo)", "gfx1151 (RDNA 3.5)", "128", "true",
             ("rocm", "vulkan")),
            ("NVIDIA GeForce RTX 4090", "Ada Lovelace (sm_89)", "24", "false", ("cuda", "vulkan")),
            ("NVIDIA GeForce RTX 3090", "Ampere (sm_86)", "24", "false", ("cuda", "vulkan")),
            ("AMD Radeon RX 7900 XTX", "gfx1100 (RDNA 3)", "24", "false", ("rocm", "vulkan")),
            ("AMD Radeon RX 9070 XT", "gfx1201 (RDNA 4)", "16", "false", ("rocm", "vulkan")),
            ("Apple M3 Max (40-core GPU)", "Apple M3 Max", "64", "true", ("metal", "cpu")),
            ("Apple M2 Ultra (76-core GPU)", "Apple M2 Ultra", "192", "true", ("metal", "cpu")),
            ("NVIDIA GeForce RTX 4080", "Ada Lovelace (sm_89)", "16", "false", ("cuda", "vulkan"))]
MODELS = [f"Synth-{size}B{'-A3B' if moe else ''}-{q}" for size in (1, 3, 8, 14, 27, 32, 70, 120)
          for moe in (False, True) for q in ("Q4_K_M", "Q8_0", "BF16")]
TESTS = ["pp512", "tg128", "pp2048 @ d32768", "tg32 @ d32768", "pp4096"]
UBATCH = ["", "256", "1024", "2048"]
HEADER = ["source_url", "hardware", "gpu_family_or_arch", "vram_gb", "unified_memory", "backend", "model",
          "test", "ubatch", "flash_attn", "tokens_per_s", "tokens_per_s_std", "build", "gpu_count",
          "source_date"]


def make_csv(path: Path, rows: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        n = 0
        while n < rows:
            hw, arch, vram, uni, backends = rng.choice(HARDWARE)
            model, test = rng.choice(MODELS), rng.choice(TESTS)
            backend = rng.choice(backends)
            base = (3000.0 if test.startswith("pp") else 60.0) * (1.3 if backend in ("rocm", "cuda") else 1.0)
            w.writerow([f"https://example.invalid/synthetic/{n % 97}", hw, arch, vram, uni, backend, model, test,
                        rng.choice(UBATCH), rng.choice(("0", "1")), f"{base * rng.uniform(0.9, 1.1):.2f}",
                        f"{base * 0.01:.3f}", f"b{rng.randint(6000, 7000)}", "1",
                        f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"])
            n += 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="curate-speed-") as tmp:
        data = Path(tmp) / "synthetic.csv"
        t0 = time.perf_counter()
        make_csv(data, args.rows)
        print(f"generated {args.rows:,} rows ({data.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f} s",
              file=sys.stderr)
        walls = []
        for _ in range(args.runs):
            t = time.perf_counter()
            p = subprocess.run([sys.executable, "-m", "engine", "curate", str(data), "--out", str(Path(tmp) / "gen"),
                                "--json"], capture_output=True, text=True)
            walls.append(time.perf_counter() - t)
            if p.returncode not in (0, 1):
                print(p.stderr, file=sys.stderr)
                return 3
        rss_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    wall = statistics.median(walls)
    print(f"rows={args.rows:,} runs={args.runs} median_wall_s={wall:.1f} rows_per_s={args.rows / wall:,.0f} "
          f"peak_rss_mib={rss_mib:.0f} target_wall_s=60 target_rss_mib=1024 "
          f"wall_ratio={wall / 60:.2f} rss_ratio={rss_mib / 1024:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
