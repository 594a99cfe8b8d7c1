"""Cold start of the CLI against a bare interpreter: `engine recommend --json` (target <= 10x) and
`engine facts --json` (target <= 8x) over `python -c pass`.

Each round runs the three commands once, in turn (alternating, so a busy machine slows all of them alike),
as real subprocesses from a directory outside the checkout; medians over the rounds and their ratios are
printed. The compiled-rulebook cache is warmed first (what every run after the first one sees); `--cold`
points it at an empty directory each time instead. Bytecode files are allowed (PYTHONDONTWRITEBYTECODE is
dropped for the children): an installed wheel has them, pip compiles them at install time.

    python bench/cold_start.py [-n 21] [--system-info FILE] [--model NAME] [--cold] [--engine PATH]

`--engine` times another install's `engine` script (e.g. a venv with the wheel installed, which is what
users run: an editable install adds its import hook to every start); its interpreter is the baseline.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"recommend": 10.0, "facts": 8.0}


def _engine(path: str | None) -> tuple[list[str], str]:
    """The engine command and the interpreter it runs on."""
    if path:
        return [path], str(Path(path).parent / "python")
    script = shutil.which("engine", path=str(Path(sys.executable).parent))
    return ([script] if script else [sys.executable, "-m", "engine"]), sys.executable


def _run(cmd: list[str], env: dict[str, str], cwd: str) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env, cwd=cwd)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--rounds", type=int, default=21, help="rounds (default 21)")
    parser.add_argument("--system-info", metavar="FILE",
                        default=str(ROOT / "tests" / "fixtures" / "system-info" / "rtx-4090-desktop-linux.json"),
                        help="system-info for recommend (default: the RTX 4090 example)")
    parser.add_argument("--model", default="Qwen3-8B-GGUF", help="model for recommend (default Qwen3-8B-GGUF)")
    parser.add_argument("--cold", action="store_true", help="an empty compiled-rulebook cache for every run")
    parser.add_argument("--engine", metavar="PATH", help="another install's engine script (default: this venv's)")
    args = parser.parse_args(argv)
    engine, python = _engine(args.engine)
    cmds = {"pass": [python, "-c", "pass"],
            "recommend": [*engine, "recommend", "--model", args.model, "--system-info", args.system_info, "--json"],
            "facts": [*engine, "facts", "--json"]}
    times: dict[str, list[float]] = {k: [] for k in cmds}
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "LEMONADE_AUTOTUNE_CACHE_DIR": str(Path(tmp) / "cache")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        for cmd in cmds.values():  # warm-up: OS file cache, .pyc files, the compiled-rulebook cache
            _run(cmd, env, tmp)
        for i in range(args.rounds):
            for name, cmd in cmds.items():
                if args.cold:
                    env["LEMONADE_AUTOTUNE_CACHE_DIR"] = str(Path(tmp) / f"cold-{i}-{name}")
                times[name].append(_run(cmd, env, tmp))
    base = statistics.median(times["pass"])
    print(f"{'python -c pass':<28} median {base * 1000:7.1f} ms  ({args.rounds} rounds, alternating)")
    for name in ("recommend", "facts"):
        med = statistics.median(times[name])
        print(f"{'engine ' + name + ' --json':<28} median {med * 1000:7.1f} ms  ratio {med / base:5.1f}x "
              f"(target <= {TARGETS[name]:g}x){'  [cold cache]' if args.cold and name == 'recommend' else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
