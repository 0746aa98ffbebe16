"""Rate limits checked in the kernel (probes/rates.c): per watched container and signal
(structs.RATE_SIGNALS: syscalls, syscall errors, TCP connects, bytes out, bytes in), up to
RATE_LEVELS levels counted in 1 s windows; the programs report the first crossing of each level
in a window as a RateEvent whose `limit` is that level.

This module validates levels and writes a container's `rate_limits` row, through the same
table path as the kill and egress tables (enforcement.py). Writing a row restarts its windows:
a crossing already reported under the old levels may be reported again (the policy engine
keeps one state per rule, so a rule does not fire twice).
"""
from __future__ import annotations

import ctypes as ct
from typing import TYPE_CHECKING, Mapping, Sequence

from agent.errors import InvalidArgument
from agent.probes.structs import RATE_LEVELS, RATE_SIGNALS, RateTable

if TYPE_CHECKING:
    from agent.probes.compiled import CompiledProbes

# The probe (name in ProbeSet.status) whose program counts each signal.
PROBE_OF_SIGNAL = {"syscalls": "syscalls", "syscall_errors": "syscalls", "tcp_connects": "tcp_connect",
                   "net_tx_bytes": "network", "net_rx_bytes": "network"}
MAX_LIMIT = 2**63 - 1
UNUSED_LEVEL = 2**64 - 1        # a level no count goes above

# signal -> a count per second, or the levels (each one a count per second)
Limits = Mapping[str, int | Sequence[int]]


def validate(limits: Limits) -> dict[str, tuple[int, ...]]:
    """Signal -> its levels, ascending and distinct, or InvalidArgument naming the bad signal or
    value. A single count is one level."""
    checked = {}
    for signal, given in limits.items():
        if signal not in RATE_SIGNALS:
            raise InvalidArgument(f"rate limit signal {signal!r}: expected one of {', '.join(RATE_SIGNALS)}")
        levels = (given,) if isinstance(given, int) else tuple(given)
        for limit in levels:
            if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= MAX_LIMIT:
                raise InvalidArgument(f"rate limit of {signal}: expected a count per second 0-{MAX_LIMIT}, "
                                      f"got {limit!r}")
        levels = tuple(sorted(set(levels)))
        if not 1 <= len(levels) <= RATE_LEVELS:
            raise InvalidArgument(f"rate limit of {signal}: expected 1-{RATE_LEVELS} levels, got {len(levels)}")
        checked[signal] = levels
    return checked


def armable(limits: Mapping[str, tuple[int, ...]], status: Mapping[str, bool]) -> dict[str, tuple[int, ...]]:
    """The limits whose counting probe is attached (`status`: ProbeSet.status)."""
    return {signal: levels for signal, levels in limits.items() if status.get(PROBE_OF_SIGNAL[signal])}


def encode(limits: Mapping[str, tuple[int, ...]], generation: int) -> RateTable:
    table = RateTable()
    for signal, levels in limits.items():
        index = RATE_SIGNALS.index(signal)
        table.armed |= 1 << index
        row = table.limits[index]
        for level in range(RATE_LEVELS):
            row.levels[level] = levels[level] if level < len(levels) else UNUSED_LEVEL
    table.generation = generation if limits else 0
    return table


class RateLimits:
    """The rate_limits rows of one loaded probe object."""

    def __init__(self) -> None:
        self.generation = 0

    def set(self, probes: CompiledProbes, slot: int, limits: Limits) -> tuple[str, ...]:
        """Write the slot's limits (those whose probe is attached); the signals armed."""
        armed = armable(validate(limits), probes.status)
        if armed:
            self.generation = (self.generation + 1) & 0xFFFFFFFF
        probes.table("rate_limits")[ct.c_uint32(slot)] = encode(armed, self.generation)
        return tuple(signal for signal in RATE_SIGNALS if signal in armed)

    @staticmethod
    def in_kernel(probes: CompiledProbes, slot: int) -> dict[str, tuple[int, ...]]:
        """The slot's levels as the kernel holds them."""
        table = probes.table("rate_limits")[ct.c_uint32(slot)]
        return {signal: tuple(int(level) for level in table.limits[index].levels if level != UNUSED_LEVEL)
                for index, signal in enumerate(RATE_SIGNALS) if table.armed & (1 << index)}

    @staticmethod
    def clear(probes: CompiledProbes, slot: int) -> None:
        probes.table("rate_limits")[ct.c_uint32(slot)] = RateTable()
