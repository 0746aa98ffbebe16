"""Events the probes send through their ring buffer, decoded: OOM kills and execs.

The BPF side stamps events with bpf_ktime_get_ns() (CLOCK_MONOTONIC); `EventDecoder` turns
that into wall-clock seconds so events line up with the daemon's event log.
"""
from __future__ import annotations

import ctypes as ct
import time
from dataclasses import dataclass

from agent.probes.structs import EVENT_EXEC, EVENT_OOM, ExecEventC, OomEventC


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


class DecodeError(ValueError):
    """A ring buffer record that is not an event this version knows; counted, never raised up."""


class EventDecoder:
    """Decodes raw ring buffer records; `boot_offset` maps monotonic ns to epoch seconds."""

    def __init__(self, boot_offset: float | None = None) -> None:
        if boot_offset is None:
            boot_offset = time.time() - time.clock_gettime(time.CLOCK_MONOTONIC)
        self.boot_offset = boot_offset

    def decode(self, data: bytes) -> OomEvent | ExecEvent:
        if len(data) < 4:
            raise DecodeError(f"event record of {len(data)} bytes is too short")
        kind = int.from_bytes(data[:4], "little")
        if kind == EVENT_OOM:
            raw = self._struct(OomEventC, data)
            return OomEvent(raw.cgroup_id, raw.pid, _text(raw.comm), self._time(raw.time_ns))
        if kind == EVENT_EXEC:
            raw = self._struct(ExecEventC, data)
            return ExecEvent(raw.cgroup_id, raw.pid, _text(raw.filename), self._time(raw.time_ns))
        raise DecodeError(f"unknown event type {kind}")

    def _time(self, monotonic_ns: int) -> float:
        return self.boot_offset + monotonic_ns / 1e9

    @staticmethod
    def _struct(cls: type[ct.Structure], data: bytes) -> ct.Structure:
        if len(data) < ct.sizeof(cls):
            raise DecodeError(f"{cls.__name__} record of {len(data)} bytes, expected {ct.sizeof(cls)}")
        return cls.from_buffer_copy(data[:ct.sizeof(cls)])


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")
