"""`KernelEventEvaluation`: the methods of PolicyService (service.py) that evaluate one
container at once when the kernel reports something of it, between the periodic ticks: a
watch fired (`evaluate_container`) or a rate limit crossed in the probes
(`evaluate_crossing`)."""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Mapping

from agent.catalog.catalog import ContainerCatalog
from agent.cgroups.driver import CgroupPaths
from agent.metrics.sampler import Sampler
from agent.metrics.snapshot import ContainerSnapshot
from agent.policy.enforcer import Enforcer
from agent.policy.engine import ContainerRef, Engine, Evaluation
from agent.policy.kernel_rates import KernelRates, crossed_rules
from agent.policy.merge import EffectivePolicy
from agent.policy.signals import compute_signals
from agent.probes.events import RateEvent

log = logging.getLogger("corral.policy")

MIN_RATE_WINDOW = 0.5    # an event's evaluation computes rates only over at least this long


@dataclass(frozen=True)
class Tracked:
    """What the service remembers of a container between ticks."""

    ref: ContainerRef
    paths: CgroupPaths
    snapshot: ContainerSnapshot


class KernelEventEvaluation:
    """PolicyService's evaluations of one container on a kernel event; PolicyService sets
    these attributes."""

    catalog: ContainerCatalog
    engine: Engine
    enforcer: Enforcer
    sampler: Sampler
    rates: KernelRates
    _clock: Callable[[], float]
    _lock: threading.RLock
    _tracked: dict[str, Tracked]
    _rate_base: dict[str, ContainerSnapshot]     # snapshot at a container's last crossing

    if TYPE_CHECKING:
        def policy_for(self, name: str, image: str, labels: Mapping[str, str] | None = None
                       ) -> EffectivePolicy: ...

        def _paths_of(self, container_id: str) -> CgroupPaths | None: ...

    def evaluate_container(self, container_id: str) -> Evaluation | None:
        """A kernel event of one container: evaluate it alone, now. Rates are computed from the
        last periodic snapshot when it is at least MIN_RATE_WINDOW old (unknown otherwise, which
        leaves their rules alone); that snapshot is kept, so the next tick's rates span its
        whole interval."""
        container = self.catalog.by_id(container_id)
        if container is None or not container.running:
            return None
        effective = self.policy_for(container.name, container.image, container.labels)
        if not effective.thresholds:
            return None
        snapshot = self.sampler.snapshots([container], with_syscalls=False, clock=self._clock)[0]
        ref = ContainerRef(container.id, container.name, container.image, dict(container.labels))
        with self._lock:
            previous = self._tracked.get(container.id)
            base = previous.snapshot if previous and snapshot.time - previous.snapshot.time >= MIN_RATE_WINDOW else None
            if previous is None:
                self._tracked[container.id] = Tracked(ref, container.cgroup, snapshot)
            evaluation = self.engine.evaluate(ref, effective, compute_signals(base, snapshot))
            self.enforcer.run_actions(evaluation, self._paths_of)
        return evaluation

    def evaluate_crossing(self, container_id: str, event: RateEvent) -> Evaluation | None:
        """The kernel saw a rate limit crossed (`event.count` in one 1 s window): the rules of
        that signal it is above advance now (Engine.cross), without a snapshot."""
        container = self.catalog.by_id(container_id)
        if container is None or not container.running:
            return None
        rules = crossed_rules(self.policy_for(container.name, container.image, container.labels), event,
                              self.rates.number)
        if not rules:
            return None
        log.info("container %s: %s%s crossed in the kernel (%d in 1 s, limit %d)", container.name, event.signal,
                 "" if event.nr is None else f" of {self.enforcer.syscall_label(event.nr)}", event.count, event.limit)
        ref = ContainerRef(container.id, container.name, container.image, dict(container.labels))
        with self._lock:
            evaluation = self.engine.cross(ref, rules, float(event.count), event.time)
            self.enforcer.run_actions(evaluation, lambda cid: self._paths_of(cid) or container.cgroup)
        if evaluation.violations and not any(a.kind == "kill" for a in evaluation.actions) or any(
                s.phase == "pending" for s in self.engine.states(container.id)):
            # The next evaluation judges these rules on the rate since now: a tick interval that
            # began before the storm would average it down and resolve (then re-fire) the rule.
            base = self.sampler.snapshots([container], with_syscalls=event.nr is not None, clock=self._clock)[0]
            with self._lock:
                self._rate_base[container.id] = base
        return evaluation
