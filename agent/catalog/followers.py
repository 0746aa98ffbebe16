"""Bus subscribers that turn container events into work of parts that know nothing of the bus:
the probes follow cgroups, the event log records observed containers coming and going."""
from __future__ import annotations

from typing import Protocol

from agent.catalog.bus import (
    BusEvent,
    ContainerPlaced,
    ContainerRemoved,
    ContainerStarted,
    ContainerStopped,
    Subscriber,
)
from agent.events import Event, EventLog


class CgroupWatcher(Protocol):
    """What follows containers by cgroup id: the probes (agent.probes.loader.ProbeSet)."""

    def watch(self, cgroup_id: int, unified_dir: str) -> None: ...

    def unwatch(self, cgroup_id: int, unified_dir: str | None) -> None: ...


def probes_follow(watcher: CgroupWatcher) -> Subscriber:
    """Watch a container's cgroup once placed, forget it once removed or its start aborted. A
    failing watch on `placed` propagates (the publisher aborts or notes it); unwatch is best effort."""

    def on_event(event: BusEvent) -> None:
        entry = event.entry
        if not entry.cgroup_id or not entry.probes:
            return
        if isinstance(event, ContainerPlaced):
            watcher.watch(entry.cgroup_id, entry.cgroup.unified)
        elif isinstance(event, ContainerRemoved) or (isinstance(event, ContainerStopped) and event.aborted):
            watcher.unwatch(entry.cgroup_id, entry.cgroup.unified or None)
    return on_event


def log_observed(events: EventLog) -> Subscriber:
    """`container observe` / `container vanish` events for containers Corral did not start
    (its own containers' lifecycle events are written by the runtime, with more detail)."""

    def on_event(event: BusEvent) -> None:
        entry = event.entry
        if not entry.observed:
            return
        if isinstance(event, ContainerStarted) and not event.again:
            action = "observe"
        elif isinstance(event, ContainerRemoved) and not event.moved:
            action = "vanish"
        else:
            return
        events.emit(Event("container", action, entry.id, entry.name,
                          attributes={"observed": True, "runtime": entry.runtime,
                                      "cgroup": entry.cgroup_path, "probes": entry.probes, "note": entry.note}))
    return on_event
