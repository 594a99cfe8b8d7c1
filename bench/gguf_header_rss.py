"""Peak RSS of reading a GGUF header that declares a huge array or string (a sparse file: no disk is used).

    python bench/gguf_header_rss.py            # 2 GiB values, each read in a fresh process
    python bench/gguf_header_rss.py --gib 8

Each kind is read by `facts.gguf`'s header reader in a child process; the script prints the child's peak RSS,
the baseline of a child that only imports the reader, and the difference. Goal: under 100 MiB peak.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import sparse_gguf  # noqa: E402

CHILD = """
import re, resource, sys, time
from facts._gguf_header import read_header
t = time.perf_counter()
if sys.argv[1] != "-":
    h = read_header(sys.argv[1])
    assert h.metadata["general.architecture"] == "llama", h.metadata.keys()
try:  # VmHWM: this process image's peak (ru_maxrss would carry a forking parent's size over)
    peak = int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) / 1024
except OSError:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(peak, time.perf_counter() - t)
"""


def peak(path: str) -> tuple[float, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, path], capture_output=True, text=True, cwd=ROOT, check=True)
    mib, seconds = out.stdout.split()
    return float(mib), float(seconds)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gib", type=float, default=2.0)
    args = ap.parse_args()
    size = int(args.gib * (1 << 30))
    base, _ = peak("-")
    print(f"baseline (import only): {base:.1f} MiB peak RSS")
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("u8-array", "string", "string-array"):
            path = sparse_gguf.write(Path(tmp) / f"{kind}.gguf", kind, size)
            mib, seconds = peak(str(path))
            worst = max(worst, mib)
            print(f"{kind:13} {args.gib:g} GiB declared: {mib:6.1f} MiB peak RSS (+{mib - base:.1f}), "
                  f"{seconds * 1000:.1f} ms")
    print(f"worst {worst:.1f} MiB: {'under' if worst < 100 else 'OVER'} the 100 MiB goal")
    return 0 if worst < 100 else 1


if __name__ == "__main__":
    sys.exit(main())
