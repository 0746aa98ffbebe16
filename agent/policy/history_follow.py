"""The policy history's last look at a container: when it stops, its probe counters are read
once more (they are kept until it is removed) and recorded, so what it did between the last
policy tick and its exit is in the history too (a short-lived container may never have been
sampled by a tick at all). A ContainerBus subscriber; the daemon adds it with the policies.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from agent.catalog.bus import BusEvent, ContainerStopped
from agent.metrics.sampler import Sampler
from agent.policy.engine import ContainerRef
from agent.policy.history import SignalHistory
from agent.policy.signals import compute_signals


def record_on_stop(history: SignalHistory, sampler: Sampler,
                   clock: Callable[[], float] = time.time) -> Callable[[BusEvent], None]:
    def on_event(event: BusEvent) -> None:
        if not isinstance(event, ContainerStopped) or event.aborted:
            return
        entry = event.entry
        if not entry.probes or not entry.cgroup_id:
            return      # nothing counted it: there is nothing more to learn
        snapshot = sampler.snapshots([entry], with_syscalls=True, clock=clock)[0]
        if any(e.startswith("probes") for e in snapshot.errors) or not snapshot.by_syscall:
            return      # unreadable, or not counted (a container known from before a restart)
        destinations = (sampler.destinations([entry]) or {}).get(entry.id)
        ref = ContainerRef(entry.id, entry.name, entry.image, dict(entry.labels))
        # No previous snapshot here: the sample has the gauges and no rates.
        history.record(ref, compute_signals(None, snapshot), syscall_totals=snapshot.by_syscall,
                       tcp_destinations=destinations)
    return on_event
