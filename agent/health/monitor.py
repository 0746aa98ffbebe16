"""`HealthMonitor`: runs the health check of every running container of Corral's that has one,
each on a thread of its own (never a request thread), and tells the others what changed.

It follows the ContainerBus: a container `started` gets its checker (its state reloaded when
the daemon adopted it after a restart), `stopped` or `removed` ends it. A change of status is
published on the bus (`ContainerHealth`, which the catalogue keeps, so metrics and the policies'
`unhealthy` signal read it there) and written to the event log as `health_status`. The state
(status, streak, the last results) is kept in the container's state directory, so inspect
shows it after a daemon restart and after the container exits.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from agent.atomic_file import write_atomically
from agent.catalog.bus import (
    BusEvent,
    ContainerBus,
    ContainerHealth,
    ContainerRemoved,
    ContainerStarted,
    ContainerStopped,
)
from agent.catalog.entry import CatalogEntry
from agent.errors import CorralError
from agent.events import Event, EventLog
from agent.health.model import HealthCheck, HealthConfig, effective
from agent.health.probe import run_check
from agent.health.state import HealthState

if TYPE_CHECKING:
    from agent.runtime.containers import Runtime
    from agent.runtime.model import Container

log = logging.getLogger(__name__)

STATE_FILE = "health.json"


def health_check_of(container: Container, image_healthcheck: dict | None) -> HealthCheck | None:
    """The container's check: its spec's over its image's HEALTHCHECK (docker's format)."""
    try:
        image = HealthConfig.from_docker(image_healthcheck, f"image {container.spec.image}")
    except CorralError as error:
        log.warning("container %s: the image's health check is ignored: %s", container.name, error)
        image = None
    return effective(container.spec.healthcheck, image)


class _Checker:
    """One container's checks: a thread that waits `interval`, runs the check, records it."""

    def __init__(self, monitor: HealthMonitor, entry: CatalogEntry, check: HealthCheck, state: HealthState) -> None:
        self.monitor = monitor
        self.entry = entry
        self.check = check
        self.state = state
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"health-{entry.name}", daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(self.check.interval):
            try:
                self.monitor.check_once(self)
            except Exception:  # noqa: BLE001 - one bad round must not end the container's checks
                log.exception("health check of container %s failed", self.entry.name)


class HealthMonitor:
    def __init__(self, runtime: Runtime, events: EventLog, bus: ContainerBus, *,
                 clock: Callable[[], float] = time.time) -> None:
        self._runtime = runtime
        self._events = events
        self._bus = bus
        self._clock = clock
        self._lock = threading.Lock()
        self._checkers: dict[str, _Checker] = {}

    # ---- the bus subscriber -------------------------------------------------------------------

    def on_container(self, event: BusEvent) -> None:
        entry = event.entry
        if entry.observed:
            return
        if isinstance(event, ContainerStarted):
            self.follow(entry)
        elif isinstance(event, (ContainerStopped, ContainerRemoved)):
            self.forget(entry.id)

    def follow(self, entry: CatalogEntry) -> None:
        """Start checking a container that has started (again), if it has a check."""
        self.forget(entry.id)
        container = self._runtime.get(entry.id)
        image_healthcheck = None
        try:
            image_healthcheck = self._runtime.images.get(container.image_id).config.healthcheck
        except CorralError:
            pass                                # the image is gone: the spec's check alone
        check = health_check_of(container, image_healthcheck)
        if check is None:
            return
        started_at = container.started_at or self._clock()
        state = self._load(entry.id)
        if state is None or state.started_at != started_at:
            state = HealthState(started_at=started_at)      # a new start: docker starts over
        checker = _Checker(self, entry, check, state)
        with self._lock:
            self._checkers[entry.id] = checker
        self._publish(checker, state.status, previous="")
        checker.thread.start()

    def forget(self, container_id: str) -> None:
        with self._lock:
            checker = self._checkers.pop(container_id, None)
        if checker is not None:
            checker.stop.set()                 # a check under way ends within its timeout

    def close(self) -> None:
        with self._lock:
            checkers, self._checkers = list(self._checkers.values()), {}
        for checker in checkers:
            checker.stop.set()
        for checker in checkers:
            checker.thread.join(timeout=1.0)

    # ---- checking ---------------------------------------------------------------------------

    def check_once(self, checker: _Checker) -> None:
        """Run the check once, record it, save the state, tell the others of a change."""
        entry, check = checker.entry, checker.check
        result = run_check(lambda: self._runtime.exec(entry.id, check.command, announce=False),
                           check.timeout, clock=self._clock)
        if checker.stop.is_set():
            return                             # the container stopped meanwhile: nothing to say
        previous = checker.state.status
        changed = checker.state.record(result, check)
        self._save(entry.id, checker.state)
        if changed:
            self._publish(checker, changed, previous)

    def _publish(self, checker: _Checker, status: str, previous: str) -> None:
        entry, state = checker.entry, checker.state
        self._bus.publish(ContainerHealth(entry, status, previous, state.failing_streak))
        if not previous:
            return                             # the first status of a start is no change to log
        last = state.log[-1] if state.log else None
        attributes = {"status": status, "failing_streak": state.failing_streak}
        if last is not None:
            attributes.update(exitCode=last.exit_code, output=last.output[:256])
        self._events.emit(Event("container", "health_status", entry.id, entry.name, attributes=attributes))

    # ---- what inspect and ps show -----------------------------------------------------------

    def status(self, container_id: str) -> str | None:
        """What `ps` shows: the status of a running container's check, None without one."""
        with self._lock:
            checker = self._checkers.get(container_id)
        return None if checker is None else checker.state.status

    def describe(self, container_id: str) -> dict | None:
        """inspect's State.Health: the live state, else the saved one (an exited container)."""
        with self._lock:
            checker = self._checkers.get(container_id)
        state = checker.state if checker is not None else self._load(container_id)
        return None if state is None else state.to_docker()

    def _path(self, container_id: str) -> Path:
        return self._runtime.store.directory(container_id) / STATE_FILE

    def _save(self, container_id: str, state: HealthState) -> None:
        try:
            write_atomically(self._path(container_id), json.dumps(state.to_dict()), durable=False)
        except OSError as error:       # removed meanwhile; the next round tries again
            log.debug("cannot save the health of %s: %s", container_id, error)

    def _load(self, container_id: str) -> HealthState | None:
        try:
            return HealthState.from_dict(json.loads(self._path(container_id).read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            return None
