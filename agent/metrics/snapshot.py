"""Cumulative figures of a container at one instant: what `corral stats`, `corral top` and the
policy engine turn into rates by comparing two snapshots. The Sampler (agent/metrics/sampler.py)
takes them.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class ContainerSnapshot:
    """Counters are totals since the container started; gauges are values now. None: unknown
    (its read failed, named in `errors`, or the probes do not count this container)."""

    id: str
    name: str
    image: str
    time: float
    cpu_seconds: float | None = None
    memory_bytes: int | None = None
    memory_limit_bytes: int | None = None       # None: unlimited (or unknown: see errors)
    cpu_quota_us: int | None = None
    cpu_period_us: int | None = None
    pids: int | None = None
    oom_kills: int | None = 0
    net_rx_bytes: int | None = 0
    net_tx_bytes: int | None = 0
    tcp_connects: int | None = 0
    syscalls: int | None = 0
    syscall_errors: int | None = 0
    frozen: bool | None = None
    by_syscall: dict[str, tuple[int, int]] = field(default_factory=dict)   # name -> (calls, errors)
    observed: bool = False
    errors: tuple[str, ...] = ()
    # Totals since start (seconds stalled, periods): their rates are the pressure and throttling signals.
    memory_pressure_some_seconds: float | None = None
    memory_pressure_full_seconds: float | None = None
    cpu_pressure_some_seconds: float | None = None
    cpu_periods: int | None = None
    cpu_throttled_periods: int | None = None
    unhealthy: int | None = None                # 1 unhealthy, 0 starting or healthy; None: no health check                # sources whose read failed: cgroup, probes:<map>

    def to_dict(self) -> dict:
        data = asdict(self)
        data["by_syscall"] = {k: list(v) for k, v in self.by_syscall.items()}
        data["errors"] = list(self.errors)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ContainerSnapshot:
        data = dict(data)
        data["by_syscall"] = {k: tuple(v) for k, v in data.get("by_syscall", {}).items()}
        data["errors"] = tuple(data.get("errors", ()))
        return cls(**data)
