"""`ContainerBus`: typed container events from the runtime and discovery to whoever follows them.

Publishers (agent/runtime/containers.py, agent/discovery/observed.py) say what happened to a
container; subscribers (the catalogue, the probes, the policy enforcer, the event log) act on it.
Delivery is synchronous, in subscription order, in the publisher's thread: `placed` is published
between the init landing in its cgroup and its exec, and what the subscribers do then (the
probes count the cgroup, the enforcer pushes its BPF rules) must be done before the first
instruction. So a subscriber failing on `placed` fails the publish (the runtime aborts the
start, discovery notes the container as not counted); failures on the other events are logged
and the rest of the subscribers still run.

The life of a container on the bus:
    placed   its cgroup holds its init (own: before exec; observed: when first seen)
    started  it runs (own: exec succeeded; observed: right after placed)
    stopped  it exited, or its start was aborted (`aborted`): the probes forget it then
    removed  its cgroup is gone (own: `rm`; observed: vanished); `moved` when the same
             container is about to be placed again with new cgroup directories
    health   its health check's status changed (agent/health/monitor.py): starting, healthy,
             unhealthy; for whoever acts on it (a restart manager, a services reconciler)
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Callable

from agent.catalog.entry import CatalogEntry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ContainerPlaced:
    entry: CatalogEntry
    moved: bool = False          # the same container, placed again with new cgroup directories


@dataclass(frozen=True)
class ContainerStarted:
    entry: CatalogEntry
    again: bool = False          # an observed container seen again (moved or renamed), not new


@dataclass(frozen=True)
class ContainerStopped:
    entry: CatalogEntry
    aborted: bool = False        # its start failed after placed: nothing of it runs


@dataclass(frozen=True)
class ContainerRemoved:
    entry: CatalogEntry
    moved: bool = False


@dataclass(frozen=True)
class ContainerHealth:
    """The container's health status changed; `entry` carries the new one in `health`."""

    entry: CatalogEntry
    status: str                  # starting | healthy | unhealthy
    previous: str                # "" for the first status of a start
    failing_streak: int = 0


BusEvent = ContainerPlaced | ContainerStarted | ContainerStopped | ContainerRemoved | ContainerHealth
Subscriber = Callable[[BusEvent], None]


class ContainerBus:
    """Synchronous publish/subscribe of container events; safe to use from several threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: tuple[tuple[str, Subscriber], ...] = ()

    def subscribe(self, name: str, subscriber: Subscriber) -> Callable[[], None]:
        """Deliver every event from now on to `subscriber` (after those subscribed before it);
        returns the function that unsubscribes it. `name` is for the log."""
        with self._lock:
            self._subscribers = self._subscribers + ((name, subscriber),)

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = tuple(s for s in self._subscribers if s[1] is not subscriber)
        return unsubscribe

    def publish(self, event: BusEvent) -> None:
        for name, subscriber in self._subscribers:
            if isinstance(event, ContainerPlaced):
                subscriber(event)        # the publisher undoes the placement on failure
                continue
            try:
                subscriber(event)
            except Exception:  # noqa: BLE001 - one follower failing must not keep the rest from the news
                log.exception("%s failed on %s of container %s", name, type(event).__name__, event.entry.name)
