"""The cgroup driver interface shared by the v2 and hybrid implementations.

A container's cgroup is described by `CgroupPaths`: its unified (v2) directory, whose inode
number is the id `bpf_get_current_cgroup_id()` returns, and the directory holding each
controller's files (the same directory on pure v2, one per v1 hierarchy on hybrid hosts).
Everything above this module speaks only these types.
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

from agent.cgroups.devices import DeviceRule
from agent.errors import CorralError

if TYPE_CHECKING:
    from agent.cgroups.io import BlockIo  # io.py reads through files.py, which needs this module


@dataclass(frozen=True)
class Limits:
    """Resource limits of one container (`corral run`'s, or a policy's: there None leaves the
    resource to other policies or the spec); None means unlimited. The one Limits of Corral."""

    memory_bytes: int | None = None
    cpu_quota_us: int | None = None
    cpu_period_us: int = 100_000
    pids_max: int | None = None

    @classmethod
    def from_cpus(cls, memory_bytes: int | None, cpus: float | None, pids_max: int | None,
                  period_us: int = 100_000) -> Limits:
        """From the user's units (`--cpus 0.5`, a policy's `cpus: 0.5`)."""
        quota = int(cpus * period_us) if cpus else None
        return cls(memory_bytes=memory_bytes, cpu_quota_us=quota, cpu_period_us=period_us,
                   pids_max=pids_max)

    @property
    def cpus(self) -> float | None:
        """The CPU limit in CPUs (quota / period), None when unlimited."""
        return None if self.cpu_quota_us is None else self.cpu_quota_us / self.cpu_period_us

    def is_empty(self) -> bool:
        return self.memory_bytes is None and self.cpu_quota_us is None and self.pids_max is None

    def in_user_units(self) -> dict:
        """{"memory": bytes, "cpus": CPUs, "pids": count}: how policies and the CLI show them."""
        return {"memory": self.memory_bytes, "cpus": self.cpus, "pids": self.pids_max}


@dataclass(frozen=True)
class CgroupPaths:
    """Where one container's cgroup lives."""

    unified: str                                  # v2 directory: id, freeze, kill, PSI, BPF
    controllers: dict[str, str] = field(default_factory=dict)  # "memory"/"cpu"/"cpuacct"/"pids"/"freezer"/"devices" -> dir

    def to_dict(self) -> dict:
        return {"unified": self.unified, "controllers": dict(self.controllers)}

    @classmethod
    def from_dict(cls, data: dict | None) -> CgroupPaths:
        """From a container record (`Container.cgroup`); a record without one is an error here,
        not a TypeError further down."""
        if not data:
            raise CorralError("the container has no cgroup recorded", hint="it was never placed in one")
        return cls(unified=data["unified"], controllers=dict(data.get("controllers", {})))


@dataclass(frozen=True)
class Pressure:
    """PSI totals of one resource, in seconds (from `some`/`full` total= microseconds)."""

    some_seconds: float
    full_seconds: float


@dataclass(frozen=True)
class CgroupStats:
    """One reading of a container's cgroup files; None where the host does not expose a figure."""

    cpu_usage_seconds: float | None = None
    cpu_user_seconds: float | None = None
    cpu_system_seconds: float | None = None
    cpu_periods: int | None = None
    cpu_throttled_periods: int | None = None
    cpu_throttled_seconds: float | None = None
    cpu_quota_us: int | None = None          # None: unlimited
    cpu_period_us: int | None = None
    memory_usage_bytes: int | None = None
    memory_max_usage_bytes: int | None = None
    memory_working_set_bytes: int | None = None
    memory_rss_bytes: int | None = None
    memory_cache_bytes: int | None = None
    memory_failcnt: int | None = None
    memory_limit_bytes: int | None = None    # None: unlimited
    oom_kills: int | None = None
    oom_events: int | None = None
    memory_high_events: int | None = None    # v2 memory.events `high`: times memory.high throttled it
    pids_current: int | None = None
    pids_limit: int | None = None            # None: unlimited
    frozen: bool | None = None
    pressure: dict[str, Pressure] = field(default_factory=dict)  # "cpu", "memory", "io"


class CgroupDriver(ABC):
    """Creates, limits, reads, freezes, kills and removes the cgroups of containers.

    Only cgroups this driver created are ever written to or removed: every path it touches is
    below its own parent directory (`corral` by default).
    """

    mode: str    # "v2" or "hybrid"
    parent: str  # the directory name below which every cgroup of Corral's lives ("corral")

    @abstractmethod
    def create(self, name: str, limits: Limits) -> CgroupPaths:
        """Make the cgroup of container `name` with its limits; on failure nothing is left."""

    @abstractmethod
    def procs_files(self, paths: CgroupPaths) -> list[str]:
        """The cgroup.procs files a pid is written to so it joins every hierarchy of the container."""

    @abstractmethod
    def add_process(self, paths: CgroupPaths, pid: int) -> None:
        """Move `pid` into the container's cgroup (every hierarchy)."""

    def oom_kills(self, paths: CgroupPaths) -> int | None:
        """The container's OOM kills so far (None: not counted here). The exit path asks only
        this: a whole `stats()` read ~16 files before the waiters could be told of the exit."""
        return self.stats(paths).oom_kills

    def placement(self, paths: CgroupPaths) -> list[str]:
        """The cgroup.procs files a container's init joins, in order, for the launcher to place
        it (launcher/place.h: born in the cgroup2 one, written into the others). Drivers check
        that the paths are their own, as add_process does."""
        return self.procs_files(paths)

    @abstractmethod
    def set_limits(self, paths: CgroupPaths, limits: Limits) -> None:
        """Apply new limits to a live cgroup."""

    def set_devices(self, paths: CgroupPaths, rules: Sequence[DeviceRule]) -> None:
        """Allow exactly `rules` (agent/cgroups/devices.py) to the container's processes: every
        other mknod or open of a device node is refused by the kernel with EPERM."""
        from agent.errors import KernelError
        raise KernelError(f"the {self.mode} cgroup driver cannot control devices")

    @abstractmethod
    def read_limits(self, paths: CgroupPaths) -> Limits:
        """The limits in force now, as the kernel reports them."""

    @abstractmethod
    def stats(self, paths: CgroupPaths) -> CgroupStats:
        """Read every figure the host exposes; a missing file leaves its fields None."""

    def block_io(self, paths: CgroupPaths) -> BlockIo:
        """Bytes and operations the container read and wrote per disk (agent/cgroups/io.py), as
        Docker's `blkio_stats`; empty where the host keeps no figure."""
        from agent.cgroups.io import BlockIo
        return BlockIo()

    @abstractmethod
    def pids(self, paths: CgroupPaths) -> list[int]:
        """Pids of every process in the cgroup (on hybrid hosts, of every hierarchy's list)."""

    @abstractmethod
    def procs(self, paths: CgroupPaths) -> list[int]:
        """Pids of the container's processes in one read, for observers (metrics, stats)."""

    @abstractmethod
    def freeze(self, paths: CgroupPaths) -> None: ...

    @abstractmethod
    def thaw(self, paths: CgroupPaths) -> None: ...

    @abstractmethod
    def kill(self, paths: CgroupPaths) -> None:
        """SIGKILL every process in the cgroup (cgroup.kill where the kernel has it)."""

    @abstractmethod
    def remove(self, paths: CgroupPaths) -> None:
        """Kill what is left and remove every directory; missing directories are not an error."""

    @abstractmethod
    def exists(self, paths: CgroupPaths) -> bool: ...

    @abstractmethod
    def close(self) -> None:
        """Close the cgroup files kept open for stats (the driver stays usable)."""

    # --- Corral's own cgroups, by container name (reconcile, tests, uninstall) ------------------

    @abstractmethod
    def paths_for(self, name: str) -> CgroupPaths:
        """Where container `name`'s cgroup is, whether or not it exists (reconcile finds the
        cgroup of a container whose record was lost by its name)."""

    @abstractmethod
    def list_names(self) -> list[str]:
        """Names of the cgroups below the parent (for reconciling after a restart)."""

    @abstractmethod
    def parent_dirs(self) -> list[str]:
        """The parent directory in every hierarchy (the unified one last)."""

    @abstractmethod
    def remove_parent(self) -> None:
        """Remove the (empty) parent directories; for tests and uninstall."""

    def cgroup_id(self, paths: CgroupPaths) -> int:
        """The v2 cgroup id: the inode number of the unified directory."""
        return os.stat(paths.unified).st_ino
