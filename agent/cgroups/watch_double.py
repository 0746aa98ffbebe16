"""`WatchDouble`: a `ThresholdWatch` in memory, for unit tests of what arms and waits (the policy
service). Tests read `armed` (key -> spec), call `fire(key)` as the kernel would, and choose which
sources it can arm (`supports`: a v1 host arms memory, a v2 one only with `memory_high`)."""
from __future__ import annotations

import threading

from agent.cgroups.driver import CgroupPaths
from agent.cgroups.watch import MEMORY, OOM, Armed, WatchSpec


class WatchDouble:
    def __init__(self, mode: str = "hybrid") -> None:
        self.mode = mode
        self.armed: dict[str, WatchSpec] = {}
        self.paths: dict[str, CgroupPaths] = {}
        self.arms = 0                      # how many times arm() was called
        self.refused: set[str] = set()     # sources that fail to arm (a missing file)
        self.closed = False
        self._fired: set[str] = set()
        self._cond = threading.Condition()
        self._woken = False

    def arm(self, key: str, paths: CgroupPaths, spec: WatchSpec) -> Armed:
        self.arms += 1
        self.armed[key] = spec
        self.paths[key] = paths
        wanted = set()
        if spec.memory_bytes and (self.mode == "hybrid" or spec.memory_high):
            wanted.add(MEMORY)
        if spec.oom:
            wanted.add(OOM)
        wanted.update(t.source for t in spec.pressure)
        return Armed(frozenset(wanted - self.refused),
                     tuple(f"{s}: refused" for s in sorted(wanted & self.refused)))

    def disarm(self, key: str) -> None:
        self.armed.pop(key, None)
        self.paths.pop(key, None)

    def fire(self, key: str) -> None:
        with self._cond:
            self._fired.add(key)
            self._cond.notify_all()

    def wait(self, timeout: float | None) -> set[str]:
        with self._cond:
            self._cond.wait_for(lambda: self._fired or self._woken, timeout)
            fired, self._fired, self._woken = self._fired, set(), False
            return fired

    def wake(self) -> None:
        with self._cond:
            self._woken = True
            self._cond.notify_all()

    def open_fds(self) -> int:
        return len(self.armed)

    def close(self) -> None:
        self.closed = True
        self.armed.clear()
