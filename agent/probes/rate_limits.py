"""Rate limits checked in the kernel (probes/rates.c): per watched container, a limit per
signal (structs.RATE_SIGNALS: syscalls, syscall errors, TCP connects, bytes out, bytes in)
counted in 1 s windows; the programs report the first crossing of a window as a RateEvent.

This module validates limits and writes a container's `rate_limits` row, through the same
table path as the kill and egress tables (enforcement.py). Writing a row restarts its windows:
a crossing already reported under the old limits may be reported again (the policy engine
keeps one state per rule, so a rule does not fire twice).
"""
from __future__ import annotations

import ctypes as ct
from typing import TYPE_CHECKING, Mapping

from agent.errors import InvalidArgument
from agent.probes.structs import RATE_SIGNALS, RateTable

if TYPE_CHECKING:
    from agent.probes.compiled import CompiledProbes

# The probe (name in ProbeSet.status) whose program counts each signal.
PROBE_OF_SIGNAL = {"syscalls": "syscalls", "syscall_errors": "syscalls", "tcp_connects": "tcp_connect",
                   "net_tx_bytes": "network", "net_rx_bytes": "network"}
MAX_LIMIT = 2**63 - 1


def validate(limits: Mapping[str, int]) -> dict[str, int]:
    """The limits as a plain dict, or InvalidArgument naming the bad signal or value."""
    checked = {}
    for signal, limit in limits.items():
        if signal not in RATE_SIGNALS:
            raise InvalidArgument(f"rate limit signal {signal!r}: expected one of {', '.join(RATE_SIGNALS)}")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= MAX_LIMIT:
            raise InvalidArgument(f"rate limit of {signal}: expected a count per second 0-{MAX_LIMIT}, "
                                  f"got {limit!r}")
        checked[signal] = limit
    return checked


def armable(limits: Mapping[str, int], status: Mapping[str, bool]) -> dict[str, int]:
    """The limits whose counting probe is attached (`status`: ProbeSet.status)."""
    return {signal: limit for signal, limit in limits.items() if status.get(PROBE_OF_SIGNAL[signal])}


def encode(limits: Mapping[str, int], generation: int) -> RateTable:
    table = RateTable()
    for signal, limit in limits.items():
        index = RATE_SIGNALS.index(signal)
        table.armed |= 1 << index
        table.limits[index].limit = limit
    table.generation = generation if limits else 0
    return table


class RateLimits:
    """The rate_limits rows of one loaded probe object."""

    def __init__(self) -> None:
        self.generation = 0

    def set(self, probes: CompiledProbes, slot: int, limits: Mapping[str, int]) -> tuple[str, ...]:
        """Write the slot's limits (those whose probe is attached); the signals armed."""
        armed = armable(validate(limits), probes.status)
        if armed:
            self.generation = (self.generation + 1) & 0xFFFFFFFF
        probes.table("rate_limits")[ct.c_uint32(slot)] = encode(armed, self.generation)
        return tuple(signal for signal in RATE_SIGNALS if signal in armed)

    @staticmethod
    def in_kernel(probes: CompiledProbes, slot: int) -> dict[str, int]:
        """The slot's limits as the kernel holds them."""
        table = probes.table("rate_limits")[ct.c_uint32(slot)]
        return {signal: int(table.limits[index].limit) for index, signal in enumerate(RATE_SIGNALS)
                if table.armed & (1 << index)}

    @staticmethod
    def clear(probes: CompiledProbes, slot: int) -> None:
        probes.table("rate_limits")[ct.c_uint32(slot)] = RateTable()
