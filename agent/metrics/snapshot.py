"""Cumulative figures of every watched container at one instant: what `corral stats`, `corral top`
and the policy engine turn into rates by comparing two snapshots.

One call reads each BPF map once and each container's cgroup files once, like a scrape does.
A container whose cgroup cannot be read gets None figures rather than failing the others.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

from agent.cgroups.driver import CgroupDriver
from agent.metrics.model import WatchedContainer


@dataclass(frozen=True)
class ContainerSnapshot:
    """Counters are totals since the container started; gauges are values now."""

    id: str
    name: str
    image: str
    time: float
    cpu_seconds: float | None = None
    memory_bytes: int | None = None
    memory_limit_bytes: int | None = None       # None: unlimited
    cpu_quota_us: int | None = None
    cpu_period_us: int | None = None
    pids: int | None = None
    oom_kills: int = 0
    net_rx_bytes: int = 0
    net_tx_bytes: int = 0
    tcp_connects: int = 0
    syscalls: int = 0
    syscall_errors: int = 0
    frozen: bool | None = None
    by_syscall: dict[str, tuple[int, int]] = field(default_factory=dict)   # name -> (calls, errors)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["by_syscall"] = {k: list(v) for k, v in self.by_syscall.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "ContainerSnapshot":
        data = dict(data)
        data["by_syscall"] = {k: tuple(v) for k, v in data.get("by_syscall", {}).items()}
        return cls(**data)


def take_snapshots(containers: Iterable[WatchedContainer], cgroups: CgroupDriver, probes: Any | None,
                   syscall_name: Callable[[int], str] = str, *, with_syscalls: bool = True,
                   clock: Callable[[], float] = time.time) -> list[ContainerSnapshot]:
    containers = list(containers)
    counts = _read(probes, "syscall_counts")
    network = _read(probes, "network")
    tcp = _read(probes, "tcp")
    ooms = _read(probes, "oom_kills")
    result = []
    for container in containers:
        now = clock()
        try:
            stats = cgroups.stats(container.cgroup)
        except Exception:  # removed mid-read: report the container with what is known
            stats = None
        per_syscall = counts.get(container.cgroup_id, {})
        net = network.get(container.cgroup_id)
        result.append(ContainerSnapshot(
            id=container.id, name=container.name, image=container.image, time=now,
            cpu_seconds=stats.cpu_usage_seconds if stats else None,
            memory_bytes=stats.memory_usage_bytes if stats else None,
            memory_limit_bytes=stats.memory_limit_bytes if stats else None,
            cpu_quota_us=stats.cpu_quota_us if stats else None,
            cpu_period_us=stats.cpu_period_us if stats else None,
            pids=stats.pids_current if stats else None,
            oom_kills=(stats.oom_kills if stats and stats.oom_kills is not None
                       else ooms.get(container.cgroup_id, 0)),
            net_rx_bytes=net.rx_bytes if net else 0,
            net_tx_bytes=net.tx_bytes if net else 0,
            tcp_connects=tcp[container.cgroup_id].connects if container.cgroup_id in tcp else 0,
            syscalls=sum(calls for calls, _ in per_syscall.values()),
            syscall_errors=sum(errors for _, errors in per_syscall.values()),
            frozen=stats.frozen if stats else None,
            by_syscall={syscall_name(nr) or str(nr): value for nr, value in per_syscall.items()}
            if with_syscalls else {},
        ))
    return result


def _read(probes: Any | None, method: str) -> dict:
    if probes is None:
        return {}
    try:
        return getattr(probes, method)() or {}
    except Exception:  # an unreadable map leaves its figures at zero, as in a scrape
        return {}
