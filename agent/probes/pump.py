"""Moving probe events from the BPF ring buffer into the event log (OOM kills, execs) and to
the policy service (syscall kills, refused connections: the service records the violation).

One thread blocks in the ring buffer's poll, so an OOM kill reaches `corral events` (and the
alerting that follows the event log) within a poll interval. Exec events can come in storms
(a shell loop); past `exec_per_second` they are counted, not logged, so the event log stays
readable and the daemon's disk use bounded. Enforcement reports go to `on_enforcement`, the
callback the daemon gives at construction (data flows one way: pump -> service), which
counts every one and rate-limits its own events.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from agent.events import Event, EventLog
from agent.probes.events import EgressEvent, ExecEvent, KillEvent, OomEvent

log = logging.getLogger(__name__)

POLL_MS = 200


class ProbeEventPump:
    """`owner(cgroup_id)` names the container of a cgroup id: (id, name), or None.
    `on_enforcement(container_id, name, event)` receives KillEvent and EgressEvent reports."""

    def __init__(self, probes, events: EventLog, owner: Callable[[int], tuple[str, str] | None],
                 *, exec_per_second: int = 50,
                 on_enforcement: Callable[[str, str, KillEvent | EgressEvent], None] | None = None) -> None:
        self._probes = probes
        self._events = events
        self._owner = owner
        self._on_enforcement = on_enforcement
        self._exec_budget = exec_per_second
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="probe-events", daemon=True)
        self.dropped_execs = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _run(self) -> None:
        window, used = int(time.time()), 0
        while not self._stop.is_set():
            try:
                batch = self._probes.poll_events(POLL_MS)
            except Exception:  # a broken poll must not end the thread that reports OOM kills
                log.exception("polling probe events failed")
                self._stop.wait(1.0)
                continue
            for event in batch:
                if isinstance(event, ExecEvent):
                    second = int(event.time)
                    if second != window:
                        window, used = second, 0
                    used += 1
                    if used > self._exec_budget:
                        self.dropped_execs += 1
                        continue
                self.handle(event)

    def handle(self, event: OomEvent | ExecEvent | KillEvent | EgressEvent) -> None:
        owner = self._owner(event.cgroup_id)
        if owner is None:
            return      # a cgroup unwatched since: nothing to attribute it to
        container_id, name = owner
        if isinstance(event, (KillEvent, EgressEvent)):
            if self._on_enforcement is not None:
                try:
                    self._on_enforcement(container_id, name, event)
                except Exception:  # one bad report must not end the thread that reports OOM kills
                    log.exception("recording a policy enforcement report failed")
            return
        if isinstance(event, OomEvent):
            self._events.emit(Event("container", "oom", container_id, name, time=event.time,
                                    attributes={"pid": event.pid, "comm": event.comm}))
        else:
            self._events.emit(Event("process", "exec", container_id, name, time=event.time,
                                    attributes={"pid": event.pid, "filename": event.filename}))
