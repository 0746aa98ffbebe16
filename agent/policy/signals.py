"""Threshold signals: the values rules compare, computed from two successive snapshots.

Counters in a ContainerSnapshot are totals since the container started; rates are their
difference over the time between the snapshots. A rate is None (unknown) when there is no
previous snapshot, when time did not advance, or when a counter went backwards (the container
restarted and its counters began again); the engine leaves a rule's state alone on None.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from agent.metrics.snapshot import ContainerSnapshot

SIGNAL_NAMES = (
    "memory_bytes", "memory_percent_of_limit", "cpu_percent", "syscalls_per_second",
    "syscall_errors_per_second", "tcp_connects_per_second", "network_tx_bytes_per_second",
    "network_rx_bytes_per_second", "pids", "oom_kills", "unhealthy", "memory_growth_bytes_per_second",
    "memory_pressure_some_percent", "memory_pressure_full_percent", "cpu_pressure_some_percent",
    "cpu_throttled_percent",
)


@dataclass(frozen=True)
class SignalSample:
    """Every signal of one container at one time; `syscalls` holds per-syscall rates
    (calls/s, errors/s) of the syscalls that were called at all since the previous sample."""

    time: float
    values: dict[str, float | None] = field(default_factory=dict)
    syscalls: dict[str, tuple[float, float]] = field(default_factory=dict)
    frozen: bool | None = None

    def value(self, signal: str, syscall: str | None = None) -> float | None:
        if syscall is not None and signal in ("syscalls_per_second", "syscall_errors_per_second"):
            if self.values.get(signal) is None:
                return None               # no rate at all yet: unknown, not zero
            calls, errors = self.syscalls.get(syscall, (0.0, 0.0))
            return calls if signal == "syscalls_per_second" else errors
        return self.values.get(signal)

    def to_dict(self) -> dict:
        return {"time": self.time, "values": dict(self.values),
                "syscalls": {k: list(v) for k, v in self.syscalls.items()}, "frozen": self.frozen}


def _rate(now: float | int | None, before: float | int | None, seconds: float) -> float | None:
    if now is None or before is None or seconds <= 0 or now < before:
        return None
    return (now - before) / seconds


def compute_signals(previous: ContainerSnapshot | None, current: ContainerSnapshot) -> SignalSample:
    """The signals at `current.time`; rates need `previous` (of the same container)."""
    values: dict[str, float | None] = {
        "memory_bytes": None if current.memory_bytes is None else float(current.memory_bytes),
        "memory_percent_of_limit": (100.0 * current.memory_bytes / current.memory_limit_bytes
                                    if current.memory_bytes is not None and current.memory_limit_bytes
                                    else None),
        "pids": None if current.pids is None else float(current.pids),
        "oom_kills": None if current.oom_kills is None else float(current.oom_kills),
        "unhealthy": None if current.unhealthy is None else float(current.unhealthy),
    }
    rates = ("cpu_percent", "syscalls_per_second", "syscall_errors_per_second", "tcp_connects_per_second",
             "network_tx_bytes_per_second", "network_rx_bytes_per_second", "memory_growth_bytes_per_second",
             "memory_pressure_some_percent", "memory_pressure_full_percent", "cpu_pressure_some_percent",
             "cpu_throttled_percent")
    per_syscall: dict[str, tuple[float, float]] = {}
    if previous is None or previous.id != current.id:
        values.update(dict.fromkeys(rates))
        return SignalSample(current.time, values, per_syscall, current.frozen)
    seconds = current.time - previous.time
    cpu = _rate(current.cpu_seconds, previous.cpu_seconds, seconds)
    values["cpu_percent"] = None if cpu is None else 100.0 * cpu     # of one CPU, as docker stats
    values["syscalls_per_second"] = _rate(current.syscalls, previous.syscalls, seconds)
    values["syscall_errors_per_second"] = _rate(current.syscall_errors, previous.syscall_errors, seconds)
    values["tcp_connects_per_second"] = _rate(current.tcp_connects, previous.tcp_connects, seconds)
    values["network_tx_bytes_per_second"] = _rate(current.net_tx_bytes, previous.net_tx_bytes, seconds)
    values["network_rx_bytes_per_second"] = _rate(current.net_rx_bytes, previous.net_rx_bytes, seconds)
    # A gauge's slope: negative when memory is freed (a counter's rate would call that a restart).
    values["memory_growth_bytes_per_second"] = (
        None if current.memory_bytes is None or previous.memory_bytes is None or seconds <= 0
        else (current.memory_bytes - previous.memory_bytes) / seconds)
    # PSI: the share of the interval in which some (or all) of the container's tasks stalled.
    for signal, now, before in (
            ("memory_pressure_some_percent", current.memory_pressure_some_seconds, previous.memory_pressure_some_seconds),
            ("memory_pressure_full_percent", current.memory_pressure_full_seconds, previous.memory_pressure_full_seconds),
            ("cpu_pressure_some_percent", current.cpu_pressure_some_seconds, previous.cpu_pressure_some_seconds)):
        stalled = _rate(now, before, seconds)
        values[signal] = None if stalled is None else min(100.0, 100.0 * stalled)
    periods = _rate(current.cpu_periods, previous.cpu_periods, 1.0)
    throttled = _rate(current.cpu_throttled_periods, previous.cpu_throttled_periods, 1.0)
    values["cpu_throttled_percent"] = (100.0 * throttled / periods if periods and throttled is not None
                                       else (0.0 if periods == 0 and throttled == 0 else None))
    if values["syscalls_per_second"] is not None:
        for name, (calls, errors) in current.by_syscall.items():
            before_calls, before_errors = previous.by_syscall.get(name, (0, 0))
            call_rate = _rate(calls, before_calls, seconds)
            error_rate = _rate(errors, before_errors, seconds)
            if call_rate or error_rate:     # only syscalls that were called: keeps history small
                per_syscall[name] = (call_rate or 0.0, error_rate or 0.0)
    return SignalSample(current.time, values, per_syscall, current.frozen)
