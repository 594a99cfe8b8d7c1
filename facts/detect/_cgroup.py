"""Container limits: cgroup v2/v1 memory limit and CPU quota for this process, read under `root`."""

from __future__ import annotations

import math
import os
from pathlib import PurePosixPath

from facts.detect._probe import Probe

_UNLIMITED = 1 << 60  # v1 reports "no limit" as 9223372036854771712 (page-rounded LONG_MAX)


def _memberships(probe: Probe) -> tuple[str | None, dict[str, str]]:
    """(v2 path, {v1 controller: path}) from /proc/self/cgroup."""
    text = probe.read("/proc/self/cgroup") or ""
    v2: str | None = None
    v1: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hier, controllers, path = parts
        if hier == "0" and controllers == "":
            v2 = path
        for c in controllers.split(","):
            if c:
                v1[c] = path
    return v2, v1


def _ancestors(path: str) -> list[str]:
    """`/a/b` → ["a/b", "a", ""]: a limit anywhere up the tree applies."""
    p = PurePosixPath(path or "/")
    rels = [str(p.relative_to("/")) if p.is_absolute() else str(p)]
    rels += [str(q.relative_to("/")) for q in p.parents if q.is_absolute()]
    return [("" if r == "." else r) for r in dict.fromkeys(rels)]


def _limits(probe: Probe, base: str, path: str, name: str) -> list[tuple[str, str]]:
    """(file, value) for every readable `name` file from the cgroup up to the mount root."""
    found = []
    for rel in _ancestors(path):
        f = f"{base}/{rel}/{name}" if rel else f"{base}/{name}"
        text = probe.read(f)
        if text is not None:
            found.append((f, text.strip()))
    return found


def memory_limit(probe: Probe) -> tuple[int | None, str | None]:
    """The lowest cgroup memory limit in bytes and the file that set it, or (None, None) when unlimited."""
    v2, v1 = _memberships(probe)
    cands: list[tuple[int, str]] = []
    if v2 is not None:
        for f, value in _limits(probe, "/sys/fs/cgroup", v2, "memory.max"):
            if value.isdigit() and int(value) > 0:
                cands.append((int(value), f"cgroup v2 {f}"))
    if "memory" in v1:
        for f, value in _limits(probe, "/sys/fs/cgroup/memory", v1["memory"], "memory.limit_in_bytes"):
            if value.isdigit() and 0 < int(value) < _UNLIMITED:
                cands.append((int(value), f"cgroup v1 {f}"))
    if not cands:
        return None, None
    return min(cands)


def cpu_quota(probe: Probe) -> tuple[float | None, str | None]:
    """CPUs allowed by the cgroup CPU quota (quota / period) and its source, or (None, None)."""
    v2, v1 = _memberships(probe)
    cands: list[tuple[float, str]] = []
    if v2 is not None:
        for f, value in _limits(probe, "/sys/fs/cgroup", v2, "cpu.max"):
            quota, _, period = value.partition(" ")
            if quota.isdigit() and period.isdigit() and int(period) > 0:
                cands.append((int(quota) / int(period), f"cgroup v2 {f}"))
    if "cpu" in v1:
        for base in ("/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"):
            quotas = _limits(probe, base, v1["cpu"], "cpu.cfs_quota_us")
            periods = dict(_limits(probe, base, v1["cpu"], "cpu.cfs_period_us"))
            for f, q in quotas:
                p = periods.get(f.replace("cpu.cfs_quota_us", "cpu.cfs_period_us"), "")
                if q.lstrip("-").isdigit() and int(q) > 0 and p.isdigit() and int(p) > 0:
                    cands.append((int(q) / int(p), f"cgroup v1 {f}"))
    if not cands:
        return None, None
    return min(cands)


def usable_threads(probe: Probe, threads: int | None) -> tuple[int | None, str | None]:
    """min(threads, CPU affinity, ceil(cgroup quota)) and why, when something lowers it."""
    best, why = threads, None
    if probe.live and hasattr(os, "sched_getaffinity"):
        n = len(os.sched_getaffinity(0))
        if best is None or n < best:
            best, why = n, "os.sched_getaffinity(0)"
    quota, src = cpu_quota(probe)
    if quota is not None:
        n = max(1, math.ceil(quota))
        if best is None or n < best:
            best, why = n, f"{src} ({quota:g} CPUs)"
    return best, why
