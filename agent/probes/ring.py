"""The probes' event ring buffer, decoded: BCC calls `on_event` from inside its poll, the
events gather until `drain`. An event that does not decode is counted against its probe
(by its type word) and dropped; it never stops the poll."""
from __future__ import annotations

import ctypes as ct
import logging
from typing import Any, Callable

from agent.probes.events import DecodeError, EgressEvent, EventDecoder
from agent.probes.interface import ProbeEvent
from agent.probes.structs import EVENT_EGRESS, EVENT_EXEC, EVENT_KILL, EVENT_OOM, EVENT_RATE

log = logging.getLogger("corral.probes")

_PROBE_OF_EVENT = {EVENT_OOM: "oom", EVENT_EXEC: "process_exec", EVENT_KILL: "syscall_kill",
                   EVENT_EGRESS: "egress", EVENT_RATE: "rate_limits"}


class EventRing:
    """`on_error(probe)` counts an undecodable event; `name_rule` fills in an egress event's
    policy and rule names."""

    def __init__(self, on_error: Callable[[str], None],
                 name_rule: Callable[[EgressEvent], EgressEvent]) -> None:
        self._decoder = EventDecoder()
        self._on_error = on_error
        self._name_rule = name_rule
        self._pending: list[ProbeEvent] = []

    def on_event(self, _ctx: Any, data: Any, size: int) -> None:
        raw = ct.string_at(data, size)
        try:
            event: ProbeEvent = self._decoder.decode(raw)
        except DecodeError as error:
            kind = int.from_bytes(raw[:4], "little") if len(raw) >= 4 else 0
            self._on_error(_PROBE_OF_EVENT.get(kind, "events"))
            log.debug("undecodable probe event: %s", error)
            return
        if isinstance(event, EgressEvent):
            event = self._name_rule(event)
        self._pending.append(event)

    def push(self, events: list[ProbeEvent]) -> None:
        """Events read elsewhere (a retired generation's ring), delivered with the next drain."""
        self._pending.extend(events)

    def drain(self) -> list[ProbeEvent]:
        events, self._pending = self._pending, []
        return events
