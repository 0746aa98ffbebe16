"""`ContainerCatalog`: every container on the host, indexed by id, name and cgroup id.

Written by the bus thread that publishes (the API thread for Corral's own containers, the
cgroup watcher for observed ones) and read by metrics scrapes, the policy tick, the probe event
pump and the API. Writers change the three indexes under one lock; entries are immutable, so a
lookup is one dict access (atomic in CPython) and returns a whole entry, old or new.
"""
from __future__ import annotations

import dataclasses
import threading

from agent.catalog.bus import BusEvent, ContainerHealth, ContainerRemoved
from agent.catalog.entry import CatalogEntry, Origin
from agent.errors import InvalidArgument, NotFound


class ContainerCatalog:
    """The one place that knows every container. `apply` is its bus subscriber."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, CatalogEntry] = {}
        self._by_name: dict[str, CatalogEntry] = {}
        self._by_cgroup: dict[int, CatalogEntry] = {}

    # --- fed by the bus -----------------------------------------------------------------------

    def apply(self, event: BusEvent) -> None:
        """Every event carries the whole entry: placed/started/stopped put it, removed drops it;
        a health change updates only the health of the entry there is (it may have stopped
        since the check began)."""
        if isinstance(event, ContainerRemoved):
            self.remove(event.entry.id)
        elif isinstance(event, ContainerHealth):
            self.set_health(event.entry.id, event.status)
        else:
            self.put(event.entry)

    def put(self, entry: CatalogEntry) -> None:
        with self._lock:
            old = self._by_id.get(entry.id)
            if old is not None:
                self._unindex(old)      # its name and cgroup id; the id is overwritten below
            self._by_id[entry.id] = entry
            self._by_name[entry.name] = entry
            if entry.cgroup_id:
                self._by_cgroup[entry.cgroup_id] = entry

    def set_health(self, container_id: str, status: str) -> None:
        with self._lock:
            old = self._by_id.get(container_id)
            if old is None or not old.running or old.health == status:
                return
            new = dataclasses.replace(old, health=status)
            self._by_id[container_id] = new
            if self._by_name.get(new.name) is old:
                self._by_name[new.name] = new
            if new.cgroup_id and self._by_cgroup.get(new.cgroup_id) is old:
                self._by_cgroup[new.cgroup_id] = new

    def remove(self, container_id: str) -> CatalogEntry | None:
        with self._lock:
            old = self._by_id.pop(container_id, None)
            if old is not None:
                self._unindex(old)
            return old

    def _unindex(self, entry: CatalogEntry) -> None:
        if self._by_name.get(entry.name) is entry:
            del self._by_name[entry.name]
        if entry.cgroup_id and self._by_cgroup.get(entry.cgroup_id) is entry:
            del self._by_cgroup[entry.cgroup_id]

    # --- reading ----------------------------------------------------------------------------------

    def by_cgroup_id(self, cgroup_id: int) -> CatalogEntry | None:
        """The container whose unified cgroup has this inode: how a probe event finds its owner."""
        return self._by_cgroup.get(cgroup_id)

    def by_id(self, container_id: str) -> CatalogEntry | None:
        return self._by_id.get(container_id)

    def get(self, ref: str) -> CatalogEntry:
        """By id, name or unique id prefix; NotFound, or InvalidArgument when ambiguous."""
        entry = self._by_id.get(ref) or self._by_name.get(ref)
        if entry is not None:
            return entry
        with self._lock:
            matches = [e for i, e in self._by_id.items() if ref and i.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise InvalidArgument(f"container {ref!r}: the prefix matches {len(matches)} containers",
                                  hint="give more of the id")
        raise NotFound(f"no such container: {ref}",
                       hint="`corral ps` lists Corral's containers, `corral ps --all-cgroups` observed ones")

    def list(self, *, running: bool = False, origin: Origin | None = None) -> list[CatalogEntry]:
        with self._lock:
            entries = list(self._by_id.values())
        return [e for e in entries if (not running or e.running) and (origin is None or e.origin == origin)]

    def __len__(self) -> int:
        return len(self._by_id)
