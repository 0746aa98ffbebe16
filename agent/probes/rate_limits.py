"""Rate limits checked in the kernel (probes/rates.c): per watched container and signal
(structs.RATE_SIGNALS: syscalls, syscall errors, TCP connects, bytes out, bytes in), and per
syscall (the calls or the errors of one syscall, up to RATE_SYSCALL_LIMITS per container), up to
RATE_LEVELS levels each, counted in 1 s windows; the programs report the first crossing of each
level in a window as a RateEvent whose `limit` is that level (and `nr` the syscall of a
per-syscall limit).

A limit's key is a signal name (container-wide) or (signal, syscall number) for "syscalls" and
"syscall_errors" of one syscall. This module validates levels and writes a container's
`rate_limits` row and, when it has per-syscall limits, its `syscall_rate_limits` row first (the
rate_limits row's RATE_PER_SYSCALL bit makes the programs read it), through the same table path
as the kill and egress tables (enforcement.py). Writing a row restarts its windows: a crossing
already reported under the old levels may be reported again (the policy engine keeps one state
per rule, so a rule does not fire twice).
"""
from __future__ import annotations

import ctypes as ct
from typing import TYPE_CHECKING, Mapping, Sequence

from agent.errors import InvalidArgument
from agent.probes.structs import (
    NR_SYSCALLS,
    RATE_LEVELS,
    RATE_PER_SYSCALL,
    RATE_SIGNALS,
    RATE_SYSCALL_LIMITS,
    RateLimitC,
    RateTable,
    SyscallRateTable,
)

if TYPE_CHECKING:
    from agent.probes.compiled import CompiledProbes

# The probe (name in ProbeSet.status) whose program counts each signal.
PROBE_OF_SIGNAL = {"syscalls": "syscalls", "syscall_errors": "syscalls", "tcp_connects": "tcp_connect",
                   "net_tx_bytes": "network", "net_rx_bytes": "network"}
PER_SYSCALL = ("syscalls", "syscall_errors")      # the signals a per-syscall limit may count
MAX_LIMIT = 2**63 - 1
UNUSED_LEVEL = 2**64 - 1        # a level no count goes above

# A limit: a signal of the whole container, or (signal, syscall number) of one syscall.
RateKey = str | tuple[str, int]
# key -> a count per second, or the levels (each one a count per second)
Limits = Mapping[RateKey, int | Sequence[int]]


def key_text(key: RateKey) -> str:
    return key if isinstance(key, str) else f"{key[0]} of syscall {key[1]}"


def _check_key(key: RateKey) -> None:
    if isinstance(key, str):
        if key not in RATE_SIGNALS:
            raise InvalidArgument(f"rate limit signal {key!r}: expected one of {', '.join(RATE_SIGNALS)}")
        return
    if not (isinstance(key, tuple) and len(key) == 2 and key[0] in PER_SYSCALL):
        raise InvalidArgument(f"rate limit {key!r}: expected a signal name or (signal, syscall number) "
                              f"with signal one of {', '.join(PER_SYSCALL)}")
    nr = key[1]
    if isinstance(nr, bool) or not isinstance(nr, int) or not 0 <= nr < NR_SYSCALLS - 1:
        raise InvalidArgument(f"rate limit of {key[0]} of syscall {nr!r}: expected a syscall number "
                              f"0-{NR_SYSCALLS - 2}")


def validate(limits: Limits) -> dict[RateKey, tuple[int, ...]]:
    """Key -> its levels, ascending and distinct, or InvalidArgument naming the bad key or value.
    A single count is one level."""
    checked: dict[RateKey, tuple[int, ...]] = {}
    for key, given in limits.items():
        _check_key(key)
        levels = (given,) if isinstance(given, int) else tuple(given)
        for limit in levels:
            if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= MAX_LIMIT:
                raise InvalidArgument(f"rate limit of {key_text(key)}: expected a count per second "
                                      f"0-{MAX_LIMIT}, got {limit!r}")
        levels = tuple(sorted(set(levels)))
        if not 1 <= len(levels) <= RATE_LEVELS:
            raise InvalidArgument(f"rate limit of {key_text(key)}: expected 1-{RATE_LEVELS} levels, "
                                  f"got {len(levels)}")
        checked[key] = levels
    per_syscall = sum(1 for key in checked if not isinstance(key, str))
    if per_syscall > RATE_SYSCALL_LIMITS:
        raise InvalidArgument(f"per-syscall rate limits: at most {RATE_SYSCALL_LIMITS} per container, "
                              f"got {per_syscall}")
    return checked


def armable(limits: Mapping[RateKey, tuple[int, ...]], status: Mapping[str, bool]) -> dict[RateKey, tuple[int, ...]]:
    """The limits whose counting probe is attached (`status`: ProbeSet.status)."""
    return {key: levels for key, levels in limits.items()
            if status.get(PROBE_OF_SIGNAL[key if isinstance(key, str) else key[0]])}


def _fill(row: RateLimitC, levels: tuple[int, ...]) -> None:
    for level in range(RATE_LEVELS):
        row.levels[level] = levels[level] if level < len(levels) else UNUSED_LEVEL


def encode(limits: Mapping[RateKey, tuple[int, ...]], generation: int) -> tuple[RateTable, SyscallRateTable | None]:
    """The rate_limits row and, when there are per-syscall limits, the syscall_rate_limits row."""
    table = RateTable()
    syscalls = SyscallRateTable()
    entries = 0
    for key, levels in limits.items():
        if isinstance(key, str):
            index = RATE_SIGNALS.index(key)
            table.armed |= 1 << index
            _fill(table.limits[index], levels)
            continue
        signal, nr = key
        _fill(syscalls.limits[entries], levels)
        entries += 1
        (syscalls.calls if signal == "syscalls" else syscalls.errors)[nr] = entries
    if entries:
        table.armed |= RATE_PER_SYSCALL
    table.generation = generation if limits else 0
    return table, syscalls if entries else None


def _levels(row: RateLimitC) -> tuple[int, ...]:
    return tuple(int(level) for level in row.levels if level != UNUSED_LEVEL)


def order(key: RateKey) -> tuple:
    """Container-wide signals first (RATE_SIGNALS order), then per-syscall limits by number."""
    return (0, RATE_SIGNALS.index(key), 0) if isinstance(key, str) else (1, key[1], PER_SYSCALL.index(key[0]))


class RateLimits:
    """The rate_limits and syscall_rate_limits rows of one loaded probe object."""

    def __init__(self) -> None:
        self.generation = 0

    def set(self, probes: CompiledProbes, slot: int, limits: Limits) -> tuple[RateKey, ...]:
        """Write the slot's limits (those whose probe is attached); the keys armed, container-wide
        signals first (in RATE_SIGNALS order), then per-syscall ones by syscall number."""
        armed = armable(validate(limits), probes.status)
        if armed:
            self.generation = (self.generation + 1) & 0xFFFFFFFF
        table, syscalls = encode(armed, self.generation)
        if syscalls is not None:            # before the bit that makes the programs read it
            probes.table("syscall_rate_limits")[ct.c_uint32(slot)] = syscalls
        probes.table("rate_limits")[ct.c_uint32(slot)] = table
        return tuple(sorted(armed, key=order))

    @staticmethod
    def in_kernel(probes: CompiledProbes, slot: int) -> dict[RateKey, tuple[int, ...]]:
        """The slot's levels as the kernel holds them."""
        table = probes.table("rate_limits")[ct.c_uint32(slot)]
        found: dict[RateKey, tuple[int, ...]] = {
            signal: _levels(table.limits[index])
            for index, signal in enumerate(RATE_SIGNALS) if table.armed & (1 << index)}
        if table.armed & RATE_PER_SYSCALL:
            syscalls = probes.table("syscall_rate_limits")[ct.c_uint32(slot)]
            for signal, column in (("syscalls", syscalls.calls), ("syscall_errors", syscalls.errors)):
                for nr, entry in enumerate(column):
                    if 1 <= entry <= RATE_SYSCALL_LIMITS:
                        found[(signal, nr)] = _levels(syscalls.limits[entry - 1])
        return found

    @staticmethod
    def clear(probes: CompiledProbes, slot: int) -> None:
        probes.table("rate_limits")[ct.c_uint32(slot)] = RateTable()
