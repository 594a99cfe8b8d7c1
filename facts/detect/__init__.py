"""`detect()`: this machine's hardware facts, dispatched once to a private per-OS probe module."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from facts.backends import supported_backends
from facts.catalog import enrich
from facts.models import Absent, HardwareFacts

__all__ = ["detect"]


def detect(
    *,
    root: str | os.PathLike[str] = "/",
    timeout: float = 3.0,
    env: Mapping[str, str] | None = None,
    platform: str | None = None,
) -> HardwareFacts:
    """Detect OS, CPU, RAM, GPUs (MIG instances as devices) and the AMD NPU. Never raises for a missing tool,
    permission error, timeout or unparsable output: that fact stays None and `HardwareFacts.absent` says why.

    `root` points the file probes at another tree (canned /proc and /sys in tests); `env` supplies PATH and
    the visibility variables (CUDA_VISIBLE_DEVICES, HSA_OVERRIDE_GFX_VERSION); `platform` overrides
    `sys.platform`. Live APIs (NVML, psutil, sched_getaffinity) are only asked when `root` is "/".

    `GPU.index` is the device's index in its vendor's enumeration (NVML / nvidia-smi index, AMD KFD GPU
    order), not its position in `gpus`."""
    from facts.detect._probe import Probe

    plat = platform or sys.platform
    probe = Probe(root, timeout, env)
    if plat.startswith("linux"):
        from facts.detect import _linux as probes
    elif plat == "darwin":
        from facts.detect import _macos as probes  # type: ignore[no-redef]
    elif plat in ("win32", "cygwin"):
        from facts.detect import _windows as probes  # type: ignore[no-redef]
    else:
        return HardwareFacts(absent=(Absent(fact="os", reason=f"unsupported platform {plat!r}"),))
    osinfo, cpu, memory, gpus = probes.collect(probe)
    npu = probes.npu(probe)
    if npu is not None and npu.name == "AMD NPU" and cpu.name:  # Lemonade names the NPU after the CPU
        npu = npu.model_copy(update={"name": cpu.name, "provenance": {**npu.provenance, "name": "the CPU name"}})
    # catalog facts (marketing name, family, bandwidth, ...) for every detected GPU
    gpus = [enrich(g, cpu_name=cpu.name, nominal_ram_gb=memory.nominal_gb) for g in gpus]
    hw = HardwareFacts(os=osinfo, cpu=cpu, memory=memory, gpus=tuple(gpus), npu=npu, source="detect")
    # `recipe:backend` strings, keeping Lemonade's preference order per recipe (resolution reads it)
    backends = tuple(f"{recipe}:{b}" for recipe, names in sorted(supported_backends(hw).items()) for b in names)
    return hw.model_copy(update={"backends": backends, "absent": tuple(probe.absent),
                                 "warnings": tuple(probe.warnings)})
