"""`ProbeDouble`: the probes in memory, for unit tests of everything that uses them (metrics,
policy, discovery, the event pump, the daemon's wiring). It keeps the real `ProbeSet`'s rules
where callers depend on them: a container must be watched before it gets rules, slots run
out, unwatching forgets a container's counters and rules, kill and egress rules are
validated the same way. tests/unit/test_probe_interface.py checks that it has every method
of interface.py with the same signature as `loader.ProbeSet`, so the two cannot drift.

Tests set the counters (`counts`, `latency`, `net`, ...) directly, push events with `emit`,
make a reading fail with `fail` (method names whose call raises OSError(EIO)), and see how
often each reading was taken in `reads`.
"""
from __future__ import annotations

import errno
from typing import Any, Iterable, Mapping, Sequence, TypeVar

from agent.errors import Conflict, InvalidArgument, KernelError
from agent.probes.egress import EgressPolicy
from agent.probes.interface import KernelEnforcement, NetCounters, ProbeEvent, ProcessCounters, TcpCounters
from agent.probes.rate_limits import Limits, RateKey, armable, order, validate
from agent.probes.structs import NR_SYSCALLS

DEFAULT_STATUS = {"syscalls": True, "oom": True, "tcp_connect": True, "tcp_retransmit": True,
                  "process_exec": True, "process_fork": True, "process_exit": True, "network": True}

T = TypeVar("T")


class ProbeDouble:
    def __init__(self, *, max_containers: int = 128, status: Mapping[str, bool] | None = None,
                 egress: bool = True, latency: bool = False) -> None:
        self.max_containers = max_containers
        self.probe_status: dict[str, bool] = dict(DEFAULT_STATUS if status is None else status)
        self.egress_loaded = egress
        self.latency_enabled = latency
        self.watched: dict[int, str] = {}                 # cgroup id -> unified directory
        self.kill: dict[int, dict[int, int]] = {}         # cgroup id -> syscall nr -> signal
        self.egress: dict[int, tuple[EgressPolicy, ...]] = {}
        self.egress_dirs: dict[int, str] = {}
        self.rate_limits: dict[int, dict[RateKey, tuple[int, ...]]] = {}  # cgroup id -> key -> levels armed
        self.epochs: dict[int, int] = {}                  # cgroup id -> its watch's number
        self._watches = 0
        self.tampered: set[int] = set()          # cgroup ids whose egress programs a test "detached"
        self.generation = 0
        # The maps' contents, as tests set them; readings return them as they are.
        self.counts: dict[int, dict[int, tuple[int, int]]] = {}
        self.latency: dict[int, dict[int, list[int]]] = {}
        self.net: dict[int, NetCounters] = {}
        self.tcp_counts: dict[int, TcpCounters] = {}
        self.destinations: dict[int, dict[tuple[str, int], int]] = {}
        self.process_counts: dict[int, ProcessCounters] = {}
        self.ooms: dict[int, int] = {}
        self.probe_errors: dict[str, int] = {}
        self.entries: dict[str, int] | None = None        # map_entries(); None: computed
        self.events: list[ProbeEvent] = []
        self.fail: set[str] = set()
        self.reads: dict[str, int] = {}
        self.closed = False
        self.lost: dict[str, int] = {"ring_full": 0, "daemon_down": 0}
        self.left_pinned = 0                               # adopt_pinned() returns it once

    # -- test helpers ----------------------------------------------------------------------------

    _READINGS = {"syscall_counts": "counts", "syscall_latency": "latency", "network": "net", "tcp": "tcp_counts",
                 "tcp_destinations": "destinations",
                 "processes": "process_counts", "oom_kills": "ooms", "status": "probe_status",
                 "errors": "probe_errors", "map_entries": "entries"}

    @classmethod
    def with_readings(cls, **readings: Any) -> ProbeDouble:
        """A double whose readings, named by method (`network={7: NetCounters(...)}`), are set."""
        double = cls()
        for method, value in readings.items():
            setattr(double, cls._READINGS[method], value)
        return double

    def emit(self, *events: ProbeEvent) -> None:
        self.events.extend(events)

    def _read(self, name: str, value: T) -> T:
        self.reads[name] = self.reads.get(name, 0) + 1
        if name in self.fail:
            raise OSError(errno.EIO, "Input/output error", name)
        return value

    def _require_watched(self, cgroup_id: int) -> None:
        if cgroup_id not in self.watched:
            raise InvalidArgument(f"cgroup {cgroup_id} is not watched by the probes",
                                  hint="call ProbeSet.watch() first (the runtime does at start)")

    # -- ProbeControl ----------------------------------------------------------------------------

    def watch(self, cgroup_id: int, unified_dir: str) -> None:
        if cgroup_id not in self.watched and len(self.watched) >= self.max_containers:
            raise Conflict(f"cannot watch cgroup {cgroup_id}: all {self.max_containers} "
                           "probe slots are in use", hint="raise ProbeOptions.max_containers")
        if cgroup_id not in self.watched:
            self._watches += 1
            self.epochs[cgroup_id] = self._watches
        self.watched[cgroup_id] = unified_dir

    def unwatch(self, cgroup_id: int, unified_dir: str | None) -> None:
        self.watched.pop(cgroup_id, None)
        self.epochs.pop(cgroup_id, None)
        self.kill.pop(cgroup_id, None)
        self.egress.pop(cgroup_id, None)
        self.egress_dirs.pop(cgroup_id, None)
        self.rate_limits.pop(cgroup_id, None)
        for reading in (self.counts, self.latency, self.net, self.tcp_counts, self.destinations,
                        self.process_counts, self.ooms):
            reading.pop(cgroup_id, None)

    def set_syscall_actions(self, cgroup_id: int, kill: Iterable[int] | Mapping[int, int]) -> None:
        self._require_watched(cgroup_id)
        signals = dict(kill) if isinstance(kill, Mapping) else {nr: 9 for nr in kill}
        if signals and not self.probe_status.get("syscalls"):
            raise KernelError("syscall kill rules need the syscalls probe, which is not attached")
        for nr, signal in signals.items():
            if not 0 <= nr < NR_SYSCALLS - 1:
                raise InvalidArgument(f"syscall number {nr}: the kill table holds 0..{NR_SYSCALLS - 2}")
            if not 1 <= signal <= 64:
                raise InvalidArgument(f"signal {signal} for syscall {nr}: expected 1-64")
        if signals:
            self.kill[cgroup_id] = signals
        else:
            self.kill.pop(cgroup_id, None)

    def set_egress(self, cgroup_id: int, unified_dir: str, policies: Sequence[EgressPolicy]) -> int:
        self._require_watched(cgroup_id)
        policies = tuple(policies)
        if not policies:
            self.egress.pop(cgroup_id, None)
            self.egress_dirs.pop(cgroup_id, None)
            return self.generation
        if not self.egress_loaded:
            raise KernelError("egress rules need the cgroup sock_addr programs, which did not load")
        self.generation = (self.generation + 1) & 0xFFFFFFFF
        self.egress[cgroup_id] = policies
        self.egress_dirs[cgroup_id] = unified_dir
        return self.generation

    def set_rate_limits(self, cgroup_id: int, limits: Limits) -> tuple[RateKey, ...]:
        self._require_watched(cgroup_id)
        armed = armable(validate(limits), self.probe_status)
        if armed:
            self.rate_limits[cgroup_id] = armed
        else:
            self.rate_limits.pop(cgroup_id, None)
        return tuple(sorted(armed, key=order))

    def watch_epoch(self, cgroup_id: int) -> int | None:
        return self.epochs.get(cgroup_id)

    def enforcement(self) -> dict[str, bool]:
        return {"syscall_kill": not self.closed and bool(self.probe_status.get("syscalls")),
                "egress": not self.closed and self.egress_loaded}

    def egress_attached(self) -> dict[int, str]:
        return dict(self.egress_dirs)

    def enforcement_in_kernel(self, cgroup_id: int, unified_dir: str) -> KernelEnforcement:
        """What the tables hold; `tampered` (cgroup ids) plays a program detached behind our back."""
        self._require_watched(cgroup_id)
        rules = bool(self.egress.get(cgroup_id))
        missing = ("egress",) if rules and cgroup_id in self.tampered else ()
        return KernelEnforcement(dict(self.kill.get(cgroup_id, {})), rules, missing,
                                 dict(self.rate_limits.get(cgroup_id, {})))

    def adopt_pinned(self) -> int:
        adopted, self.left_pinned = self.left_pinned, 0
        self.lost["daemon_down"] = self.lost.get("daemon_down", 0) + adopted
        return adopted

    def pinned(self) -> str | None:
        return "/sys/fs/bpf/corral/double/gen-1" if self.kill or self.egress else None

    def close(self) -> None:
        for cgroup_id in list(self.watched):
            self.unwatch(cgroup_id, None)
        self.closed = True
        self.probe_status = {name: False for name in self.probe_status}

    # -- ProbeReader -----------------------------------------------------------------------------

    def syscall_counts(self) -> dict[int, dict[int, tuple[int, int]]]:
        return self._read("syscall_counts", self.counts)

    def syscall_latency(self) -> dict[int, dict[int, list[int]]]:
        return self._read("syscall_latency", self.latency)

    def network(self) -> dict[int, NetCounters]:
        return self._read("network", self.net)

    def tcp(self) -> dict[int, TcpCounters]:
        return self._read("tcp", self.tcp_counts)

    def tcp_destinations(self) -> dict[int, dict[tuple[str, int], int]]:
        return self._read("tcp_destinations", self.destinations)

    def processes(self) -> dict[int, ProcessCounters]:
        return self._read("processes", self.process_counts)

    def oom_kills(self) -> dict[int, int]:
        return self._read("oom_kills", self.ooms)

    def map_entries(self) -> dict[str, int]:
        entries = self.entries
        if entries is None:
            entries = {"slots": len(self.watched), "watch_index": len(self.watched), "watch_overflow": 0,
                       "tcp_owner": 0, "tcp_destinations": sum(len(v) for v in self.destinations.values()),
                       "kill_tables": len(self.kill), "egress_tables": len(self.egress)}
            if self.latency_enabled:
                entries["syscall_latency"] = sum(len(v) for v in self.latency.values())
        return self._read("map_entries", entries)

    def status(self) -> dict[str, bool]:
        return self._read("status", dict(self.probe_status))

    def errors(self) -> dict[str, int]:
        result = {name: 0 for name in self.probe_status}
        result.update(self.probe_errors)
        return self._read("errors", result)

    def events_lost(self) -> dict[str, int]:
        return self._read("events_lost", dict(self.lost))

    # -- ProbeEvents -----------------------------------------------------------------------------

    def poll_events(self, timeout_ms: int = 0) -> list[ProbeEvent]:
        self._read("poll_events", None)
        events, self.events = self.events, []
        return events
