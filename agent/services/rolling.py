"""The rolling update: one batch of outdated replicas replaced by replicas of the new version.

`stop-first` drains and stops the old replica before its successor starts (capacity drops by
the batch for a moment); `start-first` starts the successor, lets it take traffic once ready
and only then drains the old one (capacity never drops). A successor that does not become
ready, or exits within the monitor period, fails the update: `pause` stops rolling and says why
(`service inspect`); `rollback` makes the previous spec desired again under a new version, so
the same rolling puts the old replicas back. The reconciler's worker calls `roll_batch` once per
pass, then waits the update delay.
"""
from __future__ import annotations

import logging
import time

from agent.errors import CorralError
from agent.events import Event
from agent.services.model import Service
from agent.services.replicas import Replica

log = logging.getLogger(__name__)

READY_TIMEOUT = 60.0      # a successor whose port does not listen by then has failed
POLL = 0.05


def roll_batch(worker, service: Service, batch: list[Replica]) -> bool:
    """Replace `batch` (replicas of an older version); False when the update failed."""
    update = service.spec.update
    successors: list[Replica] = []
    try:
        if update.order == "stop-first":
            for old in batch:
                worker.retire(old, "replaced")
        for old in batch:
            successors.append(worker.start_replica(service, old.slot))
        failure = settle(worker, service, successors)
    except CorralError as exc:
        failure = f"a replica of version {service.version} could not start: {exc}"
    if failure is not None:
        for new in successors:
            if worker.context.runtime.get(new.id).state == "running":
                worker.retire(new, "replaced")
        fail(worker, service, failure)
        return False
    if update.order == "start-first":
        for old in batch:
            worker.retire(old, "replaced")
    if update.delay:
        worker.sleep(update.delay)
    return True


def settle(worker, service: Service, successors: list[Replica]) -> str | None:
    """Wait until every successor is ready (it then takes traffic) and still runs after the
    monitor period; the failure, said in words, or None."""
    runtime = worker.context.runtime
    deadline = time.monotonic() + READY_TIMEOUT
    waiting = list(successors)
    while waiting:
        current = [Replica(runtime.get(r.id), r.slot, r.version) for r in waiting]
        for replica in current:
            if not replica.running:
                return exited(replica)
        waiting = [r for r in current if not worker.ready(r, service)]
        worker.balance()
        if waiting and (time.monotonic() > deadline or worker.stopping):
            return f"replica {waiting[0].name} was not ready (its port did not listen) within {READY_TIMEOUT:.0f}s"
        if waiting:
            time.sleep(POLL)
    watch_until = time.monotonic() + service.spec.update.monitor
    while time.monotonic() < watch_until and not worker.stopping:
        for replica in successors:
            container = runtime.get(replica.id)
            if container.state != "running":
                return exited(Replica(container, replica.slot, replica.version))
        time.sleep(POLL)
    return None


def exited(replica: Replica) -> str:
    return f"replica {replica.name} exited with code {replica.container.exit_code} within the monitor period"


def fail(worker, service: Service, message: str) -> None:
    store, events = worker.context.store, worker.context.events
    action = service.spec.update.failure_action
    log.warning("service %s: update to version %d failed: %s (%s)", service.name, service.version, message, action)
    if action == "rollback" and service.previous is not None and service.update_state == "updating":
        store.modify(service.name, lambda current: current.rolled_back(
            f"update failed, rolled back: {message}", worker.context.clock()))
        events.emit(Event("service", "update_rollback", "", service.name, attributes={"reason": message}))
        return
    store.modify(service.name, lambda current: current.replace(
        update_state="paused", update_message=f"update paused: {message}", updated_at=worker.context.clock()))
    events.emit(Event("service", "update_paused", "", service.name, attributes={"reason": message}))
