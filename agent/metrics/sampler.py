"""`Sampler`: the one reader of a container's cgroup figures and BPF counters, for the Prometheus
collector, `corral stats` snapshots and the policy engine alike.

One error policy for all three: a read that fails is counted by source (`cgroup`, `probes`) in
the caller's tally (the collector's corral_scrape_errors_total) and in the sampler's own
totals, logged at debug level, and leaves the figure unknown (None, or absent from the reading)
rather than 0: a policy must not see a rate drop to zero because a map could not be read, and
`corral stats` shows "--" instead of a made-up figure. A container the probes do not count (an
observed one without a cgroup v2 directory) has no probe figures either, for the same reason.

Every BPF map is read once per call for all containers (not once per container), as a scrape
always did; nothing here adds work per syscall or per container.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from agent.catalog.entry import CatalogEntry
from agent.cgroups.driver import CgroupDriver, CgroupStats
from agent.metrics.snapshot import ContainerSnapshot
from agent.probes.interface import NetCounters, ProbeReader, ProcessCounters, TcpCounters

log = logging.getLogger(__name__)

# ProbeReading attribute -> the probe (agent.probes.loader.ProbeSet) method that reads its map.
PROBE_READERS = {"syscalls": "syscall_counts", "latency": "syscall_latency", "network": "network",
                 "tcp": "tcp", "destinations": "tcp_destinations", "processes": "processes",
                 "oom_kills": "oom_kills", "status": "status", "errors": "errors", "map_entries": "map_entries",
                 "events_lost": "events_lost"}


@dataclass
class ProbeReading:
    """Every BPF map asked for, read once; `failed` names the ones that could not be read (their
    dicts stay empty: callers must tell "failed" from "no entry" by it)."""

    syscalls: dict[int, dict[int, tuple[int, int]]] = field(default_factory=dict)
    latency: dict[int, dict[int, list[int]]] = field(default_factory=dict)
    network: dict[int, NetCounters] = field(default_factory=dict)
    tcp: dict[int, TcpCounters] = field(default_factory=dict)
    destinations: dict[int, dict[tuple[str, int], int]] = field(default_factory=dict)
    processes: dict[int, ProcessCounters] = field(default_factory=dict)
    oom_kills: dict[int, int] = field(default_factory=dict)
    status: dict[str, bool] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    map_entries: dict[str, int] = field(default_factory=dict)
    events_lost: dict[str, int] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)


class Sampler:
    """Reads for catalogue entries. `probes` is the loaded ProbeSet or None without BPF."""

    def __init__(self, cgroups: CgroupDriver, probes: ProbeReader | None,
                 syscall_name: Callable[[int], str | None] | None = None) -> None:
        self.cgroups = cgroups
        self.probes = probes
        self._syscall_name = syscall_name or str
        self._lock = threading.Lock()
        self._failures: dict[str, int] = {}

    @property
    def failures(self) -> dict[str, int]:
        """Failed reads so far, by source, whoever asked."""
        with self._lock:
            return dict(self._failures)

    def _failed(self, source: str, tally: dict[str, int] | None, what: str, error: Exception) -> None:
        log.debug("sampler: reading %s failed: %r", what, error)
        with self._lock:
            self._failures[source] = self._failures.get(source, 0) + 1
        if tally is not None:
            tally[source] = tally.get(source, 0) + 1

    def read_probes(self, wanted: Iterable[str], tally: dict[str, int] | None = None) -> ProbeReading:
        """Each wanted map (ProbeReading attribute names) once; a failing one is counted under
        `probes` and named in `failed`."""
        reading = ProbeReading()
        if self.probes is None:
            return reading
        for attribute in wanted:
            method = PROBE_READERS[attribute]
            try:
                setattr(reading, attribute, getattr(self.probes, method)() or {})
            except Exception as error:  # noqa: BLE001 - a map read or decode error never fails the caller
                reading.failed.add(attribute)
                self._failed("probes", tally, f"probe map {method}", error)
        return reading

    def cgroup_stats(self, entry: CatalogEntry, tally: dict[str, int] | None = None) -> CgroupStats | None:
        """The entry's cgroup figures, or None (counted under `cgroup`) when they cannot be read."""
        try:
            return self.cgroups.stats(entry.cgroup)
        except Exception as error:  # noqa: BLE001 - removed mid-read, an unreadable file: counted, the others go on
            self._failed("cgroup", tally, f"cgroup stats of {entry.name}", error)
            return None

    def snapshots(self, entries: Iterable[CatalogEntry], *, with_syscalls: bool = True,
                  clock: Callable[[], float] = time.time) -> list[ContainerSnapshot]:
        """Cumulative figures of each entry at one instant (`corral stats`, the policy tick)."""
        entries = list(entries)
        reading = self.read_probes(("syscalls", "network", "tcp", "oom_kills"))
        return [self._snapshot(entry, reading, with_syscalls, clock()) for entry in entries]

    def destinations(self, entries: Iterable[CatalogEntry]) -> dict[str, dict[tuple[str, int], int]] | None:
        """Container id -> (address, port) -> TCP connects since it started, for the policy
        history (`corral policy suggest`); None when the probes cannot say (none, or a failed read)."""
        reading = self.read_probes(("destinations",))
        if self.probes is None or reading.failed:
            return None
        return {entry.id: reading.destinations.get(entry.cgroup_id, {})
                for entry in entries if entry.probes and entry.cgroup_id}

    def _snapshot(self, entry: CatalogEntry, reading: ProbeReading, with_syscalls: bool,
                  now: float) -> ContainerSnapshot:
        errors: list[str] = [f"probes:{name}" for name in sorted(reading.failed)]
        stats = self.cgroup_stats(entry)
        if stats is None:
            errors.append("cgroup")
        counted = self.probes is not None and entry.probes and bool(entry.cgroup_id)
        key = entry.cgroup_id

        def probe(name: str, figure: Callable[[Any], int], default: int = 0) -> int | None:
            if not counted or name in reading.failed:
                return None
            value = getattr(reading, name).get(key)
            return default if value is None else figure(value)

        per_syscall = reading.syscalls.get(key, {}) if counted else {}
        syscalls = probe("syscalls", lambda v: sum(calls for calls, _ in v.values()))
        oom_kills = stats.oom_kills if stats is not None and stats.oom_kills is not None \
            else probe("oom_kills", int)
        return ContainerSnapshot(
            id=entry.id, name=entry.name, image=entry.image, time=now,
            cpu_seconds=stats.cpu_usage_seconds if stats else None,
            memory_bytes=stats.memory_usage_bytes if stats else None,
            memory_limit_bytes=stats.memory_limit_bytes if stats else None,
            cpu_quota_us=stats.cpu_quota_us if stats else None,
            cpu_period_us=stats.cpu_period_us if stats else None,
            pids=stats.pids_current if stats else None,
            oom_kills=oom_kills,
            net_rx_bytes=probe("network", lambda v: v.rx_bytes),
            net_tx_bytes=probe("network", lambda v: v.tx_bytes),
            tcp_connects=probe("tcp", lambda v: v.connects),
            syscalls=syscalls,
            syscall_errors=probe("syscalls", lambda v: sum(failed for _, failed in v.values())),
            frozen=stats.frozen if stats else None,
            by_syscall={self._syscall_name(nr) or str(nr): value for nr, value in per_syscall.items()}
            if with_syscalls else {},
            observed=entry.observed, errors=tuple(errors),
            unhealthy=None if not entry.health else int(entry.health == "unhealthy"),
            memory_pressure_some_seconds=_pressure(stats, "memory", "some_seconds"),
            memory_pressure_full_seconds=_pressure(stats, "memory", "full_seconds"),
            cpu_pressure_some_seconds=_pressure(stats, "cpu", "some_seconds"),
            cpu_periods=stats.cpu_periods if stats else None,
            cpu_throttled_periods=stats.cpu_throttled_periods if stats else None)


def _pressure(stats: CgroupStats | None, resource: str, which: str) -> float | None:
    """A PSI total of the cgroup (None on hosts without PSI, and on cgroup v1 without it)."""
    pressure = stats.pressure.get(resource) if stats is not None else None
    return None if pressure is None else float(getattr(pressure, which))
