"""Events the probes send through their ring buffer, decoded: OOM kills, execs, and the
enforcement reports of probes/enforce.c (a process killed by a syscall rule, a connection an
egress rule refused or, in audit mode, would have refused), and the rate limit crossings of
probes/rates.c.

The BPF side stamps events with bpf_ktime_get_ns() (CLOCK_MONOTONIC); `EventDecoder` turns
that into wall-clock seconds so events line up with the daemon's event log.
"""
from __future__ import annotations

import ctypes as ct
import ipaddress
import sys
import time
from dataclasses import dataclass

from agent.probes.structs import (
    EGRESS_DEFAULT_RULE,
    EVENT_EGRESS,
    EVENT_EXEC,
    EVENT_KILL,
    EVENT_OOM,
    EVENT_RATE,
    RATE_ALL_SYSCALLS,
    RATE_SIGNALS,
    EgressEventC,
    ExecEventC,
    KillEventC,
    OomEventC,
    RateEventC,
)

PROTOCOLS = {6: "tcp", 17: "udp"}


@dataclass(frozen=True)
class OomEvent:
    """The OOM killer chose a victim in a watched container."""

    cgroup_id: int
    pid: int
    comm: str
    time: float          # seconds since the epoch


@dataclass(frozen=True)
class ExecEvent:
    """A process of a watched container called execve successfully."""

    cgroup_id: int
    pid: int
    filename: str        # as passed to execve (may be relative), at most 255 bytes
    time: float


@dataclass(frozen=True)
class KillEvent:
    """A syscall kill rule signalled a process of a watched container (after the call ran)."""

    cgroup_id: int
    pid: int
    comm: str
    nr: int              # the syscall number
    signal: int
    result: int          # bpf_send_signal(): 0 sent, else -errno
    time: float


@dataclass(frozen=True)
class EgressEvent:
    """An egress rule refused a connect/sendmsg (`blocked`), or an audit policy would have.

    `policy_index`/`rule_index` index the policies given to ProbeSet.set_egress in the update
    `generation` (rule_index None: the policy's default); the loader fills `policy` and `rule`
    with their names."""

    cgroup_id: int
    pid: int
    comm: str
    address: str
    port: int
    protocol: str        # tcp | udp (or the protocol number)
    blocked: bool
    policy_index: int
    rule_index: int | None
    generation: int
    time: float
    policy: str = ""
    rule: str = ""


@dataclass(frozen=True)
class RateEvent:
    """A watched container's count of `signal` (agent/probes/structs.py RATE_SIGNALS) went above
    the limit set by ProbeSet.set_rate_limits within one 1 s window: `count` when it did. `nr`:
    the syscall of a per-syscall limit (the calls or errors of that syscall alone), else None."""

    cgroup_id: int
    pid: int             # 0 for bytes (counted in softirq context)
    comm: str
    signal: str
    count: int
    limit: int
    generation: int
    time: float
    nr: int | None = None


class DecodeError(ValueError):
    """A ring buffer record that is not an event this version knows; counted, never raised up."""


class EventDecoder:
    """Decodes raw ring buffer records; `boot_offset` maps monotonic ns to epoch seconds."""

    def __init__(self, boot_offset: float | None = None) -> None:
        if boot_offset is None:
            boot_offset = time.time() - time.clock_gettime(time.CLOCK_MONOTONIC)
        self.boot_offset = boot_offset

    def decode(self, data: bytes) -> OomEvent | ExecEvent | KillEvent | EgressEvent | RateEvent:
        if len(data) < 4:
            raise DecodeError(f"event record of {len(data)} bytes is too short")
        kind = int.from_bytes(data[:4], "little")
        if kind == EVENT_OOM:
            raw = self._struct(OomEventC, data)
            return OomEvent(raw.cgroup_id, raw.pid, _text(raw.comm), self._time(raw.time_ns))
        if kind == EVENT_EXEC:
            raw = self._struct(ExecEventC, data)
            return ExecEvent(raw.cgroup_id, raw.pid, _text(raw.filename), self._time(raw.time_ns))
        if kind == EVENT_KILL:
            raw = self._struct(KillEventC, data)
            return KillEvent(raw.cgroup_id, raw.pid, _text(raw.comm), raw.nr, raw.signal, raw.result,
                             self._time(raw.time_ns))
        if kind == EVENT_EGRESS:
            raw = self._struct(EgressEventC, data)
            return EgressEvent(raw.cgroup_id, raw.pid, _text(raw.comm), _address(raw.family, raw.addr),
                               raw.port, PROTOCOLS.get(raw.protocol, str(raw.protocol)), bool(raw.blocked),
                               raw.policy, None if raw.rule == EGRESS_DEFAULT_RULE else raw.rule,
                               raw.generation, self._time(raw.time_ns))
        if kind == EVENT_RATE:
            raw = self._struct(RateEventC, data)
            if raw.signal >= len(RATE_SIGNALS):
                raise DecodeError(f"rate event with signal {raw.signal}")
            return RateEvent(raw.cgroup_id, raw.pid, _text(raw.comm), RATE_SIGNALS[raw.signal], raw.count,
                             raw.limit, raw.generation, self._time(raw.time_ns),
                             None if raw.nr == RATE_ALL_SYSCALLS else raw.nr)
        raise DecodeError(f"unknown event type {kind}")

    def _time(self, monotonic_ns: int) -> float:
        return self.boot_offset + monotonic_ns / 1e9

    @staticmethod
    def _struct(cls: type[ct.Structure], data: bytes) -> ct.Structure:
        if len(data) < ct.sizeof(cls):
            raise DecodeError(f"{cls.__name__} record of {len(data)} bytes, expected {ct.sizeof(cls)}")
        return cls.from_buffer_copy(data[:ct.sizeof(cls)])


def _address(family: int, words) -> str:
    """The destination as text from its network-byte-order words."""
    packed = b"".join(int(w).to_bytes(4, sys.byteorder) for w in words)   # the bytes, in order
    if family == 4:
        return str(ipaddress.IPv4Address(packed[:4]))
    if family == 6:
        return str(ipaddress.IPv6Address(packed))
    raise DecodeError(f"egress event with address family {family}")


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")
