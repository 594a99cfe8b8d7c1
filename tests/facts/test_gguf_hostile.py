"""A GGUF header that declares a huge array or string (a bit-flipped length in a real model file) is read
without reading the huge value: peak memory stays flat, and the facts after it are still found."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import sparse_gguf

ROOT = Path(__file__).resolve().parents[2]
# peak RSS of this process image: VmHWM (reset by exec; ru_maxrss would carry the forking pytest's size over)
CHILD = """
import re, sys
from facts._gguf_header import read_header
h = read_header(sys.argv[1])
hwm = re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read())
print(h.metadata["general.architecture"], int(hwm.group(1)) // 1024)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak RSS is read from /proc (Linux)")
@pytest.mark.parametrize("kind", ["u8-array", "string", "string-array"])
def test_a_2_gib_header_value_is_skipped_in_under_100_mib(tmp_path, kind):
    path = sparse_gguf.write(tmp_path / "huge.gguf", kind, 2 << 30)
    out = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, cwd=ROOT,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    arch, peak_mib = out.stdout.split()
    assert arch == "llama" and int(peak_mib) < 100, out.stdout  # it was 4,134 MiB


def test_a_declared_length_past_the_end_of_the_file_is_located(tmp_path):
    from facts._gguf_header import read_header
    from facts.errors import ModelFactsError

    path = sparse_gguf.write(tmp_path / "huge.gguf", "u8-array", 1 << 20)
    data = path.read_bytes()
    path.write_bytes(data[: 200])  # the declared megabyte is no longer there
    with pytest.raises(ModelFactsError, match="huge.array: array of 1048576 items runs past the end of the file"):
        read_header(path)
