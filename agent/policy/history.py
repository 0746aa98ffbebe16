"""The history the daemon keeps of each container: the signal samples `corral policy replay`
evaluates, and what `corral policy suggest` needs on top of them (every syscall the container
made and every destination it connected to, each with when it was first and last seen).

Memory is bounded by `capacity` samples per container (and by how many containers are kept:
removed containers stay, so a replay or a suggestion can cover them, until `max_containers`
pushes the oldest out). With a `store` (agent/policy/history_store.py) every record is also
written under the daemon's --root, so a restart keeps the history. Safe to use from the
evaluation thread and API threads at once.
"""
from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from agent.policy.engine import ContainerRef
from agent.policy.signals import SignalSample

LAST_SEEN_STEP = 60.0       # seconds: a `last` time moving less than this is not written again


@dataclass
class Seen:
    """When something was first and last seen, and how many times (a counter's total)."""

    first: float
    last: float
    count: int = 0
    written: float = field(default=0.0, compare=False, repr=False)   # the `last` a store holds

    def to_list(self) -> list:
        return [self.first, self.last, self.count]


@dataclass(frozen=True)
class Behaviour:
    """A copy of what a container did, for the suggestion engine (agent/policy/suggest.py)."""

    container: ContainerRef
    samples: tuple[SignalSample, ...]
    syscalls: dict[str, Seen]                # syscall name -> seen
    destinations: dict[str, Seen]            # "tcp 10.0.0.1 80" -> seen (see destination_key)


def destination_key(protocol: str, address: str, port: int) -> str:
    return f"{protocol} {address} {port}"


def parse_destination(key: str) -> tuple[str, str, int]:
    protocol, address, port = key.split(" ")
    return protocol, address, int(port)


class HistoryWriter(Protocol):
    """Where records go to survive a restart (HistoryStore); every call may be a no-op."""

    def container(self, ref: ContainerRef) -> None: ...
    def sample(self, container_id: str, sample: SignalSample) -> None: ...
    def seen(self, container_id: str, kind: str, changed: Mapping[str, Seen]) -> None: ...
    def forget(self, container_id: str) -> None: ...
    def compact_due(self, container_id: str) -> bool: ...
    def rewrite(self, ref: ContainerRef, samples: list[SignalSample], syscalls: Mapping[str, Seen],
                destinations: Mapping[str, Seen]) -> None: ...


@dataclass
class _Ring:
    container: ContainerRef
    samples: deque = field(default_factory=deque)
    syscalls: dict[str, Seen] = field(default_factory=dict)
    destinations: dict[str, Seen] = field(default_factory=dict)


class SignalHistory:
    """Recent SignalSamples of each container, oldest first, and what it was seen doing."""

    def __init__(self, capacity: int = 3600, max_containers: int = 256,
                 store: HistoryWriter | None = None) -> None:
        if capacity < 1 or max_containers < 1:
            raise ValueError("capacity and max_containers must be at least 1")
        self.capacity = capacity
        self.max_containers = max_containers
        self._lock = threading.Lock()
        self._rings: OrderedDict[str, _Ring] = OrderedDict()
        self._store = store

    def record(self, container: ContainerRef, sample: SignalSample, *,
               syscall_totals: Mapping[str, tuple[int, int]] | None = None,
               tcp_destinations: Mapping[tuple[str, int], int] | None = None) -> None:
        """Add a sample; `syscall_totals` (name -> (calls, errors) since the container started)
        and `tcp_destinations` ((address, port) -> connects since start) update what was seen."""
        with self._lock:
            ring = self._ring(container)
            ring.samples.append(sample)
            if self._store is not None:
                self._store.sample(container.id, sample)
            for kind, totals, seen in (("syscalls", {k: v[0] for k, v in (syscall_totals or {}).items()},
                                        ring.syscalls),
                                       ("destinations", {destination_key("tcp", a, p): n for (a, p), n
                                                         in (tcp_destinations or {}).items()},
                                        ring.destinations)):
                changed = _update_seen(seen, totals, sample.time)
                if changed and self._store is not None:
                    self._store.seen(container.id, kind, changed)
            if self._store is not None and self._store.compact_due(container.id):
                self._store.rewrite(ring.container, list(ring.samples), ring.syscalls, ring.destinations)

    def _ring(self, container: ContainerRef) -> _Ring:
        ring = self._rings.get(container.id)
        if ring is None:
            ring = self._rings[container.id] = _Ring(container, deque(maxlen=self.capacity))
            while len(self._rings) > self.max_containers:
                gone, _ = self._rings.popitem(last=False)
                if self._store is not None:
                    self._store.forget(gone)
        if ring.container != container or not ring.samples:
            ring.container = container       # names and labels may change (rename)
            if self._store is not None:
                self._store.container(container)
        self._rings.move_to_end(container.id)
        return ring

    def restore(self, container: ContainerRef, samples: list[SignalSample],
                syscalls: dict[str, Seen], destinations: dict[str, Seen]) -> None:
        """Put back what a store kept (at start, before any record); writes nothing."""
        with self._lock:
            ring = _Ring(container, deque(sorted(samples, key=lambda s: s.time), maxlen=self.capacity),
                         dict(syscalls), dict(destinations))
            self._rings[container.id] = ring
            while len(self._rings) > self.max_containers:
                self._rings.popitem(last=False)

    def containers(self) -> list[ContainerRef]:
        with self._lock:
            return [ring.container for ring in self._rings.values()]

    def samples(self, container_id: str, since: float = 0.0) -> list[SignalSample]:
        with self._lock:
            ring = self._rings.get(container_id)
            return [s for s in ring.samples if s.time >= since] if ring else []

    def behaviour(self, container_id: str) -> Behaviour | None:
        with self._lock:
            ring = self._rings.get(container_id)
            if ring is None:
                return None
            return Behaviour(ring.container, tuple(ring.samples),
                             {k: Seen(v.first, v.last, v.count) for k, v in ring.syscalls.items()},
                             {k: Seen(v.first, v.last, v.count) for k, v in ring.destinations.items()})

    def latest(self, container_id: str) -> SignalSample | None:
        with self._lock:
            ring = self._rings.get(container_id)
            return ring.samples[-1] if ring and ring.samples else None

    def forget(self, container_id: str) -> None:
        with self._lock:
            self._rings.pop(container_id, None)
            if self._store is not None:
                self._store.forget(container_id)


def _update_seen(seen: dict[str, Seen], totals: Mapping[str, int], now: float) -> dict[str, Seen]:
    """Fold counters (totals since the container started) into `seen`; returns the entries
    worth writing: new ones, and ones whose last time moved by LAST_SEEN_STEP or more. A total
    below the one kept means the container restarted: its calls since count as new ones."""
    changed: dict[str, Seen] = {}
    for key, total in totals.items():
        if total <= 0:
            continue
        entry = seen.get(key)
        if entry is None:
            seen[key] = changed[key] = Seen(now, now, total, written=now)
            continue
        if total != entry.count:
            entry.last, entry.count = now, total
            if now - entry.written >= LAST_SEEN_STEP:
                entry.written = now
                changed[key] = entry
    return changed
