"""The reconciler: one worker thread per service keeping its running replicas == desired.

A worker wakes when one of its replicas stops or is removed (the ContainerBus; the manager
passes the news on), when the service is changed through the API, when a back-off it set
expires, and every few seconds anyway (what an event could have missed, it sees then). Each
pass (`converge`) reads the service's saved desired state and the runtime's containers:

1. replicas that exited are noted in the service's history and removed, and the slot's
   back-off grows when the replica died young;
2. slots above the desired count, and second replicas of one slot, are drained and stopped;
3. empty slots get a new replica (restart condition and back-off permitting);
4. the balancer is pointed at the replicas that are ready (running, and their port listens);
5. during an update, one batch of outdated replicas is replaced (rolling.py).

Everything a worker does to its service happens on its own thread, so two passes never race;
the API writes the desired state and wakes it.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from agent.errors import CorralError, NotFound
from agent.events import Event, EventLog
from agent.runtime.model import CREATED, EXITED
from agent.runtime.service import RuntimeService
from agent.services.balancer import Balancer
from agent.services.model import PastReplica, Service
from agent.services.replicas import Replica, drain, listening, replica_spec, replicas_of
from agent.services.store import ServiceStore

log = logging.getLogger(__name__)

RESYNC = 5.0              # seconds between passes when nothing happens
YOUNG = 10.0              # a replica that exits sooner than this after its start grows the back-off
MAX_BACKOFF = 30.0
HISTORY = 5               # past replicas kept per slot, for `service ps`


@dataclass
class Context:
    """What every worker uses: the runtime and the daemon's parts, and the clock (tests)."""

    runtime: RuntimeService
    store: ServiceStore
    balancer: Balancer | None            # None: a daemon without networking
    events: EventLog
    proc: Path = Path("/proc")
    clock: Callable[[], float] = time.time


@dataclass
class SlotState:
    failures: int = 0
    not_before: float = 0.0
    complete: bool = False               # exited as its restart condition says is final


@dataclass
class ServiceWorker:
    name: str
    context: Context
    slots: dict[int, SlotState] = field(default_factory=dict)
    draining: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._next: float | None = None
        self.converged = threading.Condition()
        self.passes = 0
        self.exits = 0                   # replicas that exited or were found unhealthy, for /metrics
        self.health: dict[str, str] = {}  # container id -> starting | healthy | unhealthy (health events)

    # ---- the thread -----------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"service {self.name}", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=60)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._next = None
            try:
                self.converge()
            except NotFound:
                return                   # the service was removed
            except Exception:  # noqa: BLE001 - a failed pass is logged and tried again; the worker must live
                log.exception("service %s: reconciliation failed", self.name)
            with self.converged:
                self.passes += 1
                self.converged.notify_all()
            timeout = RESYNC if self._next is None else max(0.0, min(RESYNC, self._next - self.context.clock()))
            self._wake.wait(timeout)
            self._wake.clear()

    def note_health(self, container_id: str, status: str) -> None:
        """A replica's health check changed its verdict: balance or replace it at once."""
        self.health[container_id] = status
        self.wake()

    def later(self, seconds: float) -> None:
        """Run the next pass after `seconds` at the latest."""
        when = self.context.clock() + seconds
        self._next = when if self._next is None else min(self._next, when)

    def sleep(self, seconds: float) -> bool:
        """Wait, unless the worker is stopped meanwhile; False then."""
        return not self._stopping.wait(seconds)

    # ---- one pass -------------------------------------------------------------------

    def replicas(self) -> list[Replica]:
        return replicas_of(self.context.runtime.list(all=True), self.name)

    def converge(self) -> None:
        from agent.services.rolling import roll_batch
        service = self.context.store.get(self.name)
        for replica in self.replicas():
            if not replica.running and replica.container.state in (EXITED, CREATED):
                self._note_exit(service, replica)
        desired = service.spec.replicas
        kept: dict[int, Replica] = {}
        for replica in self.replicas():
            if not replica.running:
                continue
            if self.health.get(replica.id) == "unhealthy":
                self.exits += 1
                self._back_off(self.slots.setdefault(replica.slot, SlotState()))
                self.retire(replica, "unhealthy")
            elif replica.slot < 1 or replica.slot > desired:
                self.retire(replica, "removed")
            elif replica.slot in kept:
                # Two in one slot (a restart in the middle of an update): keep the current version.
                older, newer = sorted((kept[replica.slot], replica), key=lambda r: r.version == service.version)
                kept[replica.slot] = newer
                self.retire(older, "replaced")
            else:
                kept[replica.slot] = replica
        for slot in range(1, desired + 1):
            if slot not in kept and not self.stopping:
                started = self._fill(service, slot)
                if started is not None:
                    kept[slot] = started
        self.balance()
        if service.update_state in ("updating", "rollback_started") and not self.stopping:
            outdated = [r for r in kept.values() if r.version != service.version]
            if not outdated and len(kept) == desired:
                self._finish_update(service)
            elif not outdated:
                self.later(0.5)          # an empty slot is refilled first (after its back-off)
            else:
                roll_batch(self, service, outdated[:service.spec.update.parallelism])
                self.later(0)

    # ---- the steps ------------------------------------------------------------------

    def start_replica(self, service: Service, slot: int) -> Replica:
        container = self.context.runtime.run(replica_spec(service, slot))
        self.context.events.emit(Event("service", "replica_start", container.id, self.name,
                                       attributes={"replica": container.name, "slot": slot}))
        return Replica(container, slot, service.version)

    def _fill(self, service: Service, slot: int) -> Replica | None:
        state = self.slots.setdefault(slot, SlotState())
        if state.complete:
            return None
        wait = state.not_before - self.context.clock()
        if wait > 0:
            self.later(wait)
            return None
        try:
            return self.start_replica(service, slot)
        except CorralError as exc:
            self._back_off(state)
            log.warning("service %s: slot %d: cannot start a replica: %s", self.name, slot, exc)
            self.context.events.emit(Event("service", "replica_fail", "", self.name,
                                           attributes={"slot": slot, "error": str(exc)}))
            return None

    def _back_off(self, state: SlotState) -> None:
        state.failures += 1
        delay = min(MAX_BACKOFF, 0.25 * 2 ** state.failures)
        state.not_before = self.context.clock() + delay
        self.later(delay)

    def _note_exit(self, service: Service, replica: Replica) -> None:
        container = replica.container
        self.exits += 1
        state = self.slots.setdefault(replica.slot, SlotState())
        lived = (container.finished_at or 0) - (container.started_at or 0)
        if container.started_at is None or lived < YOUNG:
            self._back_off(state)
        else:
            state.failures, state.not_before = 0, 0.0
        condition = service.spec.restart_condition
        if condition == "none" or (condition == "on-failure" and container.exit_code == 0):
            state.complete = True
        self.context.events.emit(Event("service", "replica_exit", container.id, self.name,
                                       attributes={"replica": container.name, "exitCode": container.exit_code}))
        self._forget(replica, "exited")

    def retire(self, replica: Replica, why: str) -> None:
        """Out of the balancer first, then drained (its connections finish), then stopped."""
        self.draining.add(replica.id)
        try:
            self.balance()
            spec = self.context.store.get(self.name).spec
            drain(replica, spec, self.context.proc)
            self.context.runtime.stop(replica.id, timeout=spec.stop_grace_period)
            self._forget(replica, why)
        finally:
            self.draining.discard(replica.id)

    def _forget(self, replica: Replica, why: str) -> None:
        container = self.context.runtime.get(replica.id)
        past = PastReplica(name=container.name, slot=replica.slot, image=container.spec.image,
                           version=replica.version, state=why, exit_code=container.exit_code,
                           finished_at=container.finished_at or self.context.clock())
        try:
            self.context.runtime.remove(replica.id, force=True)
        except NotFound:
            pass
        self.health.pop(replica.id, None)

        def note(service: Service) -> Service:
            same_slot = [p for p in service.history if p.slot == replica.slot][-(HISTORY - 1):]
            others = [p for p in service.history if p.slot != replica.slot]
            return service.replace(history=others + same_slot + [past])
        try:
            self.context.store.modify(self.name, note)
        except NotFound:
            pass   # the service is being removed

    def ready(self, replica: Replica, service: Service) -> bool:
        if not replica.running or replica.id in self.draining or not replica.address:
            return False
        if self.health.get(replica.id) in ("starting", "unhealthy"):
            return False                 # with a health check, traffic waits for `healthy`
        port = service.spec.port
        if port is None or port.protocol != "tcp" or not replica.container.pid:
            return True
        return listening(replica.container.pid, port.container_port, self.context.proc)

    def balance(self) -> None:
        """Point the published port at the ready replicas (a not-yet-ready one is looked at again soon)."""
        service = self.context.store.get(self.name)
        if service.spec.port is None or self.context.balancer is None:
            return
        live = [r for r in self.replicas() if r.running and r.id not in self.draining]
        ready = [r for r in live if self.ready(r, service)]
        if len(ready) < len(live):
            self.later(0.1)
        self.context.balancer.apply(self.name, service.spec.port, sorted(r.address for r in ready if r.address))

    def _finish_update(self, service: Service) -> None:
        final = "completed" if service.update_state == "updating" else "rollback_completed"
        message = service.update_message if final == "rollback_completed" else ""
        self.context.store.modify(self.name, lambda s: s.replace(update_state=final, update_message=message,
                                                                 updated_at=self.context.clock()))
        self.context.events.emit(Event("service", "update_" + final, "", self.name,
                                       attributes={"version": service.version}))
