"""Start-up cost of `engine facts --json` compared with a bare `python -c pass` (target: <= 10x).

Runs each command N times as a real subprocess and prints both medians and their ratio. Without an input,
`engine facts` detects this machine; `--system-info FILE` / `--llama-devices FILE` time the parsers instead.

    python bench/facts_speed.py [-n 15] [--system-info FILE] [--llama-devices FILE]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def median_seconds(cmd: list[str], runs: int) -> float:
    """Median wall time of `runs` executions (one warm-up run first); fails loudly if the command fails."""
    subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=15, help="runs per command (default 15)")
    parser.add_argument("--system-info", metavar="FILE", help="time parsing this system-info document")
    parser.add_argument("--llama-devices", metavar="FILE", help="time parsing this llama.cpp device output")
    args = parser.parse_args(argv)
    script = shutil.which("engine", path=str(Path(sys.executable).parent))
    engine = [script] if script else [sys.executable, "-m", "engine"]
    cmd = [*engine, "facts", "--json"]
    if args.system_info:
        cmd += ["--system-info", args.system_info]
    if args.llama_devices:
        cmd += ["--llama-devices", args.llama_devices]
    base = median_seconds([sys.executable, "-c", "pass"], args.runs)
    facts = median_seconds(cmd, args.runs)
    print(f"python -c pass        median {base * 1000:8.1f} ms  ({args.runs} runs)")
    print(f"{' '.join(Path(cmd[0]).name if i == 0 else c for i, c in enumerate(cmd)):<21} "
          f"median {facts * 1000:8.1f} ms  ({args.runs} runs)")
    print(f"ratio                 {facts / base:8.1f}x  (target <= 10x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
