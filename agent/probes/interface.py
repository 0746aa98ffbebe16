"""The probes as the rest of Corral sees them: typed seams, so the daemon, the runtime, the
metrics, the policy service and the event pump never depend on BCC.

`ProbeControl` follows containers and holds their enforcement tables, `ProbeReader` is what a
scrape or a policy tick reads, `ProbeEvents` is the ring buffer's feed. `loader.ProbeSet` is
the real implementation, `double.ProbeDouble` the in-memory one for unit tests;
tests/unit/test_probe_interface.py checks both have every method with the same signature.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Protocol, Sequence, runtime_checkable

from agent.probes.egress import EgressPolicy
from agent.probes.events import EgressEvent, ExecEvent, KillEvent, OomEvent, RateEvent
from agent.probes.rate_limits import Limits, RateKey

ProbeEvent = OomEvent | ExecEvent | KillEvent | EgressEvent | RateEvent


@dataclass(frozen=True)
class NetCounters:
    rx_bytes: int
    rx_packets: int
    tx_bytes: int
    tx_packets: int


@dataclass(frozen=True)
class TcpCounters:
    connects: int                   # active opens (connect())
    retransmits: int                # on sockets the container connected


@dataclass(frozen=True)
class ProcessCounters:
    execs: int
    forks: int                      # tasks created, threads included
    exits: int                      # tasks ended, threads included


@dataclass(frozen=True)
class KernelEnforcement:
    """What the kernel holds for one container's BPF rules, read back from the kernel itself
    (not from the daemon's memory of what it pushed): `corral policy prove`'s evidence."""

    kill: Mapping[int, int]             # syscall number -> signal, from the armed kill table
    egress_rules: bool                  # the container's egress table has rules
    egress_missing: tuple[str, ...]     # egress programs not attached to its directory
    # rate signal, or (signal, syscall number) -> the levels its rate_limits (syscall_rate_limits)
    # row holds (rate_limits.RateLimits.in_kernel)
    rate_levels: Mapping[RateKey, tuple[int, ...]] = field(default_factory=dict)


@runtime_checkable
class ProbeControl(Protocol):
    """Following containers (by cgroup v2 id and directory) and their BPF enforcement."""

    def watch(self, cgroup_id: int, unified_dir: str) -> None:
        """Count the container: a slot for its counters, the network counters on its directory."""

    def unwatch(self, cgroup_id: int, unified_dir: str | None) -> None:
        """Forget it: its slot, its attachments, its enforcement tables."""

    def set_syscall_actions(self, cgroup_id: int, kill: Iterable[int] | Mapping[int, int]) -> None:
        """Replace its syscall kill rules (numbers -> signal; a plain iterable means SIGKILL)."""

    def set_egress(self, cgroup_id: int, unified_dir: str, policies: Sequence[EgressPolicy]) -> int:
        """Replace its egress rules; returns the update's generation."""

    def set_rate_limits(self, cgroup_id: int, limits: Limits) -> tuple[RateKey, ...]:
        """Replace its rate limits (a structs.RATE_SIGNALS name, or ("syscalls" or
        "syscall_errors", syscall number) for one syscall -> a count per second, or up to
        structs.RATE_LEVELS of them; empty clears them): one RateEvent when a 1 s window's count
        goes above each. Returns the keys armed, those whose probe is attached; the others are
        not checked in the kernel."""

    def watch_epoch(self, cgroup_id: int) -> int | None:
        """A number that changes whenever the container's slot is (re)assigned, the probes
        reloaded included (its rows then start empty: limits must be written again); None
        when it is not watched."""

    def enforcement(self) -> dict[str, bool]:
        """Which enforcement is available: {"syscall_kill": ..., "egress": ...}."""

    def egress_attached(self) -> dict[int, str]:
        """cgroup id -> directory, for every container whose egress programs are attached."""

    def enforcement_in_kernel(self, cgroup_id: int, unified_dir: str) -> KernelEnforcement:
        """Read the container's kill table, egress table and program attachments back from the
        kernel (KernelError when the probes are not loaded or it is not watched)."""

    def adopt_pinned(self) -> int:
        """Retire the enforcement an earlier daemon left pinned (call once this daemon's rules
        are pushed); returns the events it lost while no daemon ran."""

    def pinned(self) -> str | None:
        """The bpffs directory this daemon's enforcement is pinned in; None: not pinned."""

    def close(self) -> None:
        """Detach everything and unload (pinned enforcement stays in force)."""


@runtime_checkable
class ProbeReader(Protocol):
    """The counters, keyed by cgroup id of the watched containers, read when asked."""

    def syscall_counts(self) -> dict[int, dict[int, tuple[int, int]]]:
        """cgroup id -> syscall number -> (calls, errors)."""

    def syscall_latency(self) -> dict[int, dict[int, list[int]]]:
        """cgroup id -> syscall number -> log2 latency buckets ({} when not compiled in)."""

    def network(self) -> dict[int, NetCounters]:
        """cgroup id -> bytes and packets in and out."""

    def tcp(self) -> dict[int, TcpCounters]:
        """cgroup id -> TCP connects and retransmits."""

    def tcp_destinations(self) -> dict[int, dict[tuple[str, int], int]]:
        """cgroup id -> (address, port) -> TCP connects to it (`corral policy suggest`)."""

    def processes(self) -> dict[int, ProcessCounters]:
        """cgroup id -> execs, forks, exits."""

    def oom_kills(self) -> dict[int, int]:
        """cgroup id -> OOM kills seen by the probe."""

    def map_entries(self) -> dict[str, int]:
        """Entries held in each keyed map (0 everywhere once no container is watched)."""

    def status(self) -> dict[str, bool]:
        """Probe name -> attached."""

    def errors(self) -> dict[str, int]:
        """Probe name -> errors counted (by the BPF programs and by the Python side)."""

    def events_lost(self) -> dict[str, int]:
        """Events that found the ring buffer full: {"ring_full": n, "daemon_down": n}."""


@runtime_checkable
class ProbeEvents(Protocol):
    """The probes' ring buffer: OOM kills, execs and enforcement reports."""

    def poll_events(self, timeout_ms: int = 0) -> list[ProbeEvent]:
        """Events since the last call, waiting up to `timeout_ms` for the first one."""


class Probes(ProbeControl, ProbeReader, ProbeEvents, Protocol):
    """All of it: what the daemon holds."""
