"""The signal history the daemon keeps for `corral policy replay`: a bounded ring of samples
per container, with what a selector needs to know about the container.

Memory is bounded by `capacity` samples per container (and by how many containers are kept:
removed containers stay, so a replay can cover them, until `max_containers` pushes the
oldest out). Safe to use from the evaluation thread and API threads at once.
"""
from __future__ import annotations

import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from agent.policy.engine import ContainerRef
from agent.policy.signals import SignalSample


@dataclass
class _Ring:
    container: ContainerRef
    samples: deque = field(default_factory=deque)


class SignalHistory:
    """Recent SignalSamples of each container, oldest first."""

    def __init__(self, capacity: int = 3600, max_containers: int = 256) -> None:
        if capacity < 1 or max_containers < 1:
            raise ValueError("capacity and max_containers must be at least 1")
        self.capacity = capacity
        self.max_containers = max_containers
        self._lock = threading.Lock()
        self._rings: OrderedDict[str, _Ring] = OrderedDict()

    def record(self, container: ContainerRef, sample: SignalSample) -> None:
        with self._lock:
            ring = self._rings.get(container.id)
            if ring is None:
                ring = self._rings[container.id] = _Ring(container, deque(maxlen=self.capacity))
                while len(self._rings) > self.max_containers:
                    self._rings.popitem(last=False)
            ring.container = container       # names and labels may change (rename)
            ring.samples.append(sample)
            self._rings.move_to_end(container.id)

    def containers(self) -> list[ContainerRef]:
        with self._lock:
            return [ring.container for ring in self._rings.values()]

    def samples(self, container_id: str, since: float = 0.0) -> list[SignalSample]:
        with self._lock:
            ring = self._rings.get(container_id)
            return [s for s in ring.samples if s.time >= since] if ring else []

    def latest(self, container_id: str) -> SignalSample | None:
        with self._lock:
            ring = self._rings.get(container_id)
            return ring.samples[-1] if ring and ring.samples else None

    def forget(self, container_id: str) -> None:
        with self._lock:
            self._rings.pop(container_id, None)
