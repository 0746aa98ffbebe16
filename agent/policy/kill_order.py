"""Kill order: which containers the kernel's OOM killer takes first when the host itself runs
out of memory (a host-wide OOM, not a container hitting its own limit).

The kernel picks the process with the highest badness (its memory share plus
`oom_score_adj`), so a policy's `limits.killOrder` is written as every process's
`oom_score_adj`. It is written on the container's init while it waits to exec (so everything
it starts inherits it) and on every process when a reload changes it. `last` is -999, never
-1000: -1000 exempts a process from the OOM killer altogether, and one container that can
never be killed can take the host down.
"""
from __future__ import annotations

KILL_ORDER = {"first": 1000, "early": 500, "normal": 0, "late": -500, "last": -999}


def adjustment(order: str) -> int:
    return KILL_ORDER[order]


def order_of(adj: int) -> str:
    """The word for an adjustment (the nearest one, for values written by someone else)."""
    return min(KILL_ORDER, key=lambda word: abs(KILL_ORDER[word] - adj))


def apply(pids: list[int], adj: int, proc: str = "/proc") -> list[int]:
    """Write `adj` as each process's oom_score_adj; the pids that could not be written (gone
    meanwhile, or not permitted) are returned."""
    failed = []
    data = str(adj).encode()
    for pid in pids:
        try:
            with open(f"{proc}/{pid}/oom_score_adj", "wb", buffering=0) as handle:
                handle.write(data)
        except OSError:
            failed.append(pid)
    return failed


def read(pids: list[int], proc: str = "/proc") -> dict[int, int]:
    """pid -> oom_score_adj (processes gone meanwhile are left out)."""
    found = {}
    for pid in pids:
        try:
            with open(f"{proc}/{pid}/oom_score_adj", "rb") as handle:
                found[pid] = int(handle.read())
        except (OSError, ValueError):
            continue
    return found
