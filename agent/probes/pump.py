"""Moving probe events from the BPF ring buffer into the event log (OOM kills, execs) and to
the policy service (syscall kills, refused connections: the service records the violation;
rate limit crossings: the service evaluates the rules of that rate at once).

Each event names its container by cgroup id; the ContainerCatalog answers in one lookup, for
Corral's own containers and observed ones alike (an event of a cgroup no longer known is
counted in `unattributed` and dropped).

One thread blocks in the ring buffer's poll, so an OOM kill reaches `corral events` (and the
alerting that follows the event log) within a poll interval. Exec events can come in storms
(a shell loop); past `exec_per_second` they are counted, not logged, so the event log stays
readable and the daemon's disk use bounded. Enforcement reports go to `reports`, the
EnforcementReports the daemon gives at construction (data flows one way: pump -> service),
which counts every one and rate-limits its own events.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Protocol

from agent.catalog.catalog import ContainerCatalog
from agent.catalog.entry import CatalogEntry
from agent.events import Event, EventLog
from agent.probes.events import EgressEvent, ExecEvent, KillEvent, OomEvent, RateEvent
from agent.probes.interface import ProbeEvents

log = logging.getLogger(__name__)

POLL_MS = 200


class EnforcementReports(Protocol):
    """Where KillEvent, EgressEvent and RateEvent reports go: the policy service."""

    def record_enforcement(self, container: CatalogEntry, event: KillEvent | EgressEvent | RateEvent) -> None: ...


class ProbeEventPump:
    """Attributes each probe event to its container through `catalog`, then logs it or hands
    it to `reports`."""

    def __init__(self, probes: ProbeEvents, events: EventLog, catalog: ContainerCatalog,
                 *, exec_per_second: int = 50, reports: EnforcementReports | None = None,
                 shed: Callable[[str], bool] | None = None) -> None:
        """`shed(what)`: the agent's budget (agent/budget); exec events are dropped (counted)
        while it sheds `exec_events`."""
        self._probes = probes
        self._events = events
        self._catalog = catalog
        self._reports = reports
        self._exec_budget = exec_per_second
        self._shed = shed
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="probe-events", daemon=True)
        self.dropped_execs = 0
        self.unattributed = 0

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
                    if self._shed is not None and self._shed("exec_events"):
                        self.dropped_execs += 1
                        continue
                    second = int(event.time)
                    if second != window:
                        window, used = second, 0
                    used += 1
                    if used > self._exec_budget:
                        self.dropped_execs += 1
                        continue
                self.handle(event)

    def handle(self, event: OomEvent | ExecEvent | KillEvent | EgressEvent | RateEvent) -> None:
        owner = self._catalog.by_cgroup_id(event.cgroup_id)
        if owner is None:
            self.unattributed += 1
            return      # a cgroup unwatched since: nothing to attribute it to
        if isinstance(event, (KillEvent, EgressEvent, RateEvent)):
            if self._reports is not None:
                try:
                    self._reports.record_enforcement(owner, event)
                except Exception:  # one bad report must not end the thread that reports OOM kills
                    log.exception("recording a policy enforcement report failed")
            return
        marks = {"observed": True, "runtime": owner.runtime} if owner.observed else {}
        if isinstance(event, OomEvent):
            log.warning("OOM kill in container %s: pid %d (%s)", owner.name, event.pid, event.comm)
            self._events.emit(Event("container", "oom", owner.id, owner.name, time=event.time,
                                    attributes={"pid": event.pid, "comm": event.comm, **marks}))
        else:
            self._events.emit(Event("process", "exec", owner.id, owner.name, time=event.time,
                                    attributes={"pid": event.pid, "filename": event.filename, **marks}))
