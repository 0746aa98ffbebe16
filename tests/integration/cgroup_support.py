"""Helpers of the real-cgroup driver tests (test_cgroups_hybrid.py, test_cgroups_v2.py)."""
from __future__ import annotations

import time
from collections.abc import Callable

WAIT = 20.0   # generous upper bound for the kernel to get somewhere; never asserted on


def wait_until(predicate: Callable[[], object], timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())


def cgroup_lines(pid: int) -> dict[str, str]:
    """/proc/PID/cgroup as {controllers: path}; "" is the unified (0::) line."""
    result = {}
    with open(f"/proc/{pid}/cgroup") as handle:
        for line in handle:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            result[controllers] = path
    return result


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])   # utime + stime
