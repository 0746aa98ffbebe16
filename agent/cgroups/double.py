"""`CgroupDouble`: a cgroup driver in memory, for unit tests of what sits above the drivers
(policy actions and service, metrics, the runtime's bookkeeping). It implements the whole
`CgroupDriver` interface (tests/unit/test_cgroup_driver_interface.py checks it with the real
drivers), keeps Corral's ownership rule (only cgroups it created, below its parent, are
written or removed), and lets tests set what the kernel would report.

Tests set `memory` / `stats_by_dir` / `procs_by_dir` / `io_by_dir` (keyed by the unified directory), read
`limits`, `frozen`, `killed`, and set `fail` to make every write raise KernelError.
"""
from __future__ import annotations

import os

from agent.cgroups.driver import CgroupDriver, CgroupPaths, CgroupStats, Limits
from agent.cgroups.io import BlockIo
from agent.errors import Conflict, InvalidArgument, KernelError


class CgroupDouble(CgroupDriver):
    def __init__(self, mode: str = "v2", parent: str = "corral", root: str = "/fake") -> None:
        self.mode = mode
        self.parent = parent
        self.parent_dir = os.path.join(root, parent)
        self.created: dict[str, CgroupPaths] = {}          # name -> paths
        self.limits: dict[str, Limits] = {}                # unified dir -> limits in force
        self.memory: dict[str, int] = {}                   # unified dir -> memory usage
        self.stats_by_dir: dict[str, CgroupStats] = {}     # unified dir -> a full reading
        self.procs_by_dir: dict[str, list[int]] = {}
        self.io_by_dir: dict[str, BlockIo] = {}            # unified dir -> block I/O
        self.frozen: set[str] = set()
        self.killed: set[str] = set()
        self.ids: dict[str, int] = {}                     # unified dir -> made-up cgroup id
        self.fail = False
        self.closed = False

    def _write(self, paths: CgroupPaths) -> str:
        if self.fail:
            raise KernelError(f"cgroup {paths.unified}: write refused")
        return paths.unified

    def create(self, name: str, limits: Limits) -> CgroupPaths:
        paths = self.paths_for(name)
        if name in self.created:
            raise Conflict(f"cgroup {paths.unified} already exists")
        self.created[name] = paths
        self.ids.setdefault(paths.unified, 1000 + len(self.ids))
        self.limits[paths.unified] = limits
        return paths

    def procs_files(self, paths: CgroupPaths) -> list[str]:
        return [os.path.join(paths.unified, "cgroup.procs")]

    def add_process(self, paths: CgroupPaths, pid: int) -> None:
        self.procs_by_dir.setdefault(self._write(paths), []).append(pid)

    def set_limits(self, paths: CgroupPaths, limits: Limits) -> None:
        self.limits[self._write(paths)] = limits

    def read_limits(self, paths: CgroupPaths) -> Limits:
        return self.limits.get(paths.unified, Limits())

    def block_io(self, paths: CgroupPaths) -> BlockIo:
        return self.io_by_dir.get(paths.unified, BlockIo())

    def stats(self, paths: CgroupPaths) -> CgroupStats:
        if paths.unified in self.stats_by_dir:
            return self.stats_by_dir[paths.unified]
        return CgroupStats(memory_usage_bytes=self.memory.get(paths.unified, 0), cpu_usage_seconds=0.0,
                           pids_current=len(self.procs_by_dir.get(paths.unified, [])))

    def pids(self, paths: CgroupPaths) -> list[int]:
        return sorted(self.procs_by_dir.get(paths.unified, []))

    def procs(self, paths: CgroupPaths) -> list[int]:
        return self.pids(paths)

    def freeze(self, paths: CgroupPaths) -> None:
        self.frozen.add(self._write(paths))

    def thaw(self, paths: CgroupPaths) -> None:
        self.frozen.discard(self._write(paths))

    def kill(self, paths: CgroupPaths) -> None:
        self.killed.add(self._write(paths))
        self.procs_by_dir.pop(paths.unified, None)

    def remove(self, paths: CgroupPaths) -> None:
        name = os.path.basename(self._write(paths))
        if self.created.get(name) != paths:
            raise InvalidArgument(f"cgroup {paths.unified}: not below {self.parent_dir}; "
                                  "Corral only touches cgroups it created")
        del self.created[name]
        for table in (self.limits, self.memory, self.stats_by_dir, self.procs_by_dir):
            table.pop(paths.unified, None)
        self.frozen.discard(paths.unified)

    def exists(self, paths: CgroupPaths) -> bool:
        return paths in self.created.values()

    def close(self) -> None:
        self.closed = True

    def paths_for(self, name: str) -> CgroupPaths:
        return CgroupPaths(unified=os.path.join(self.parent_dir, name))

    def list_names(self) -> list[str]:
        return sorted(self.created)

    def parent_dirs(self) -> list[str]:
        return [self.parent_dir]

    def remove_parent(self) -> None:
        if self.created:
            raise Conflict(f"cgroup {self.parent_dir} is not empty")

    def cgroup_id(self, paths: CgroupPaths) -> int:
        """A made-up id, stable for the double's life (there is no inode to read)."""
        return self.ids.get(paths.unified, 0)
