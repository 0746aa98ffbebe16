"""Restart policies (`--restart no|always|unless-stopped|on-failure[:N]`), as docker applies them.

`RestartPolicies` follows the ContainerBus: each `stopped` event of one of Corral's containers
(not an aborted start) is weighed against the container's record, and a restart is scheduled
after docker's back-off: 100 ms, doubling at each restart up to a minute, back to 100 ms once a
run lasted 10 s. Nothing calls it back: the runtime publishes the exit as it does for every
other follower, and the restart goes through the runtime's own start.

At the daemon's start the reconciler publishes `stopped` for every container that is not
running, including those whose shim went away while the daemon was down or the host rebooted.
Those events are held until `start()` (the daemon calls it once every container is reconciled),
and then weighed as docker weighs them when it restores containers: `always` comes back even
after a user's stop, `unless-stopped` only if the user did not stop it.

The timer is injected (`schedule(delay, action) -> cancel`), so tests drive the back-off
without waiting; the daemon uses threading.Timer.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from agent.catalog.bus import BusEvent, ContainerStopped
from agent.errors import CorralError, NotFound
from agent.events import Event, EventLog
from agent.runtime.model import EXITED, Container, RestartPolicy

log = logging.getLogger(__name__)

FIRST_DELAY = 0.1       # seconds before the first restart (docker's defaultTimeout)
MAX_DELAY = 60.0        # the back-off stops doubling here (docker's maxRestartTimeout)
RESET_AFTER = 10.0      # a run this long starts the back-off again from FIRST_DELAY

Cancel = Callable[[], None]
Schedule = Callable[[float, Callable[[], None]], Cancel]


class Restarter(Protocol):
    """What the policies need of the runtime (agent.runtime.containers.Runtime)."""

    def get(self, ref: str) -> Container: ...

    def start_container(self, container_id: str, *, by_policy: bool = False) -> Container: ...


class Backoff:
    """The delay before each restart of one container: docker's restart manager timeout."""

    def __init__(self) -> None:
        self.delay = 0.0

    def next(self, ran_for: float) -> float:
        """The delay before the restart that follows a run of `ran_for` seconds."""
        if ran_for >= RESET_AFTER:
            self.delay = 0.0
        self.delay = FIRST_DELAY if self.delay == 0.0 else min(self.delay * 2, MAX_DELAY)
        return self.delay


def should_restart(policy: RestartPolicy, exit_code: int | None, *, stopped_by_user: bool,
                   restart_count: int, at_daemon_start: bool = False) -> bool:
    """Whether a container that exited with `exit_code` comes back under `policy`."""
    if policy.name == "no":
        return False
    if stopped_by_user and not (at_daemon_start and policy.name == "always"):
        return False
    if policy.name in ("always", "unless-stopped"):
        return True
    limit = policy.maximum_retry_count          # on-failure; 0: no limit
    return exit_code != 0 and (limit == 0 or restart_count < limit)


def thread_timer(delay: float, action: Callable[[], None]) -> Cancel:
    timer = threading.Timer(delay, action)
    timer.daemon = True
    timer.name = "restart-policy"
    timer.start()
    return timer.cancel


class RestartPolicies:
    """The ContainerBus follower that restarts containers by their restart policy."""

    def __init__(self, runtime: Restarter, events: EventLog, *, schedule: Schedule = thread_timer,
                 clock: Callable[[], float] = time.time) -> None:
        self._runtime = runtime
        self._events = events
        self._schedule = schedule
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: dict[str, Cancel] = {}
        self._backoff: dict[str, Backoff] = {}
        self._held: list[str] | None = []     # stopped before start(): weighed at start()

    def on_container(self, event: BusEvent) -> None:
        """The bus subscriber: only `stopped` of Corral's own containers matters."""
        if not isinstance(event, ContainerStopped) or event.aborted or event.entry.observed:
            return
        with self._lock:
            if self._held is not None:
                self._held.append(event.entry.id)
                return
        self._consider(event.entry.id, at_daemon_start=False)

    def start(self) -> None:
        """The daemon is up: weigh the containers that stopped while it was down."""
        with self._lock:
            held, self._held = self._held or [], None
        for container_id in dict.fromkeys(held):
            self._consider(container_id, at_daemon_start=True)

    def close(self) -> None:
        """Cancel every scheduled restart (the daemon stops; the next one weighs them again)."""
        with self._lock:
            pending, self._pending = self._pending, {}
            self._held = []
        for cancel in pending.values():
            cancel()

    def pending(self) -> list[str]:
        """Ids of the containers waiting out their back-off."""
        with self._lock:
            return sorted(self._pending)

    def _wanted(self, container_id: str, at_daemon_start: bool) -> Container | None:
        try:
            container = self._runtime.get(container_id)
        except NotFound:
            return None       # removed meanwhile
        if container.state != EXITED or not should_restart(
                container.spec.restart_policy, container.exit_code, stopped_by_user=container.stopped_by_user,
                restart_count=container.restart_count, at_daemon_start=at_daemon_start):
            return None
        return container

    def _consider(self, container_id: str, *, at_daemon_start: bool) -> None:
        container = self._wanted(container_id, at_daemon_start)
        if container is None:
            return
        now = self._clock()
        ran_for = (container.finished_at or now) - (container.started_at or now)
        with self._lock:
            if container_id in self._pending:
                return
            if container.restart_count == 0:       # the user's own start began a new series
                self._backoff.pop(container_id, None)
            delay = self._backoff.setdefault(container_id, Backoff()).next(ran_for)
            self._pending[container_id] = self._schedule(
                delay, lambda: self._restart(container_id, at_daemon_start))
        log.info("container %s exited (%s): restart %d by policy %s in %.1fs", container.name,
                 container.exit_code, container.restart_count + 1, container.spec.restart_policy, delay)

    def _restart(self, container_id: str, at_daemon_start: bool) -> None:
        with self._lock:
            if self._pending.pop(container_id, None) is None:
                return        # cancelled
        # Weighed again: the user may have stopped, started or removed it during the back-off.
        container = self._wanted(container_id, at_daemon_start)
        if container is None:
            self._backoff.pop(container_id, None)
            return
        try:
            self._runtime.start_container(container_id, by_policy=True)
        except CorralError as exc:
            # Not retried: a start that fails (its image's command is gone, a policy refuses it)
            # would fail again; docker gives up the same way.
            log.error("restarting container %s by its policy failed: %s", container.name, exc)
            self._events.emit(Event("container", "restart_failed", container.id, container.name,
                                    attributes={"error": exc.message}))
