"""`ObservedContainers`: the daemon's registry of the foreign containers it follows.

The watcher hands it every scan's findings (`update`); it works out which containers appeared,
changed (a unified directory made after the v1 ones) or vanished, names new ones from the
runtimes' state (classify.describe), and publishes them on the ContainerBus (`placed` and
`started` when they appear, `removed` when they vanish; a change is removed+placed, `moved`),
the same events the runtime publishes for Corral's own, so the catalogue, the probes and the
policies follow foreign containers like Corral's own. A container with no unified (v2)
directory cannot carry BPF probes: it is observed with `probes=False` and a note saying why,
never silently left out.

The registry is read from API, metrics and policy threads while the watcher thread updates
it: every reading is a copy of an immutable snapshot, replaced whole under a lock.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, replace
from typing import Callable

from agent.catalog.bus import ContainerBus, ContainerPlaced, ContainerRemoved, ContainerStarted
from agent.catalog.entry import OBSERVED, CatalogEntry
from agent.cgroups.driver import CgroupPaths
from agent.discovery.classify import ForeignContainer, HostState, classify, describe
from agent.errors import CorralError, InvalidArgument, NotFound

log = logging.getLogger(__name__)

NO_UNIFIED = ("no cgroup v2 directory: observed from its v1 cgroups only, without BPF probes "
              "(syscalls, network and process counters)")


@dataclass(frozen=True)
class ObservedContainer:
    """One foreign container as Corral follows it. `observed` is always True, so callers that
    mix these with Corral's own containers (policy explain, ps) can tell them apart."""

    container: ForeignContainer
    cgroup: CgroupPaths                 # read-only to Corral except through ForeignCgroups
    cgroup_id: int                      # inode of the unified directory; 0 when there is none
    first_seen: float                   # when Corral noticed it
    started_at: float                   # when its cgroup was made (container_start_time_seconds)
    probes: bool = False                # the probes count this container
    note: str = ""                      # why something does not apply (no probes, ...)
    observed: bool = True

    @property
    def id(self) -> str:
        return self.container.id

    @property
    def name(self) -> str:
        return self.container.name

    @property
    def image(self) -> str:
        return self.container.image

    def to_dict(self) -> dict:
        return {**self.container.to_dict(), "observed": True, "state": "running",
                "cgroup_paths": self.cgroup.to_dict(), "cgroup_id": self.cgroup_id,
                "first_seen": self.first_seen, "started_at": self.started_at, "probes": self.probes, "note": self.note,
                # Not applicable to containers Corral did not start (seccomp is installed
                # before exec, by the launcher).
                "not_applicable": ["seccomp"]}

    def entry(self) -> CatalogEntry:
        """This container as the catalogue holds it."""
        return CatalogEntry(id=self.id, name=self.name, image=self.image, cgroup=self.cgroup,
                            cgroup_id=self.cgroup_id, origin=OBSERVED, runtime=self.container.runtime,
                            labels=dict(self.container.labels), created_at=self.first_seen,
                            started_at=self.started_at, cgroup_path=self.container.cgroup,
                            probes=self.probes, note=self.note)


def _cgroup_id(paths: CgroupPaths) -> int:
    if not paths.unified:
        return 0
    try:
        return os.stat(paths.unified).st_ino
    except OSError:
        return 0


def _made_at(paths: CgroupPaths, default: float) -> float:
    """When the cgroup was made: cgroupfs stamps a directory's times at mkdir."""
    times = []
    for directory in [paths.unified, *paths.controllers.values()]:
        if directory:
            try:
                times.append(os.stat(directory).st_ctime)
            except OSError:
                continue
    return min(times) if times else default


class ObservedContainers:
    """The registry. Publishes each container's comings and goings on `bus`; `probes` says
    whether the host's probes are loaded (a container they cannot count says why in its note)."""

    def __init__(self, *, bus: ContainerBus | None = None, probes: bool = True, state: HostState | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._bus = bus or ContainerBus()
        self._probes = probes
        self._state = state or HostState()
        self._clock = clock
        self._lock = threading.Lock()
        self._by_cgroup: dict[str, ObservedContainer] = {}   # cgroup path -> container
        self._dirs: frozenset[str] = frozenset()            # every directory of every container

    # --- reading -------------------------------------------------------------------------------

    def list(self) -> list[ObservedContainer]:
        with self._lock:
            return sorted(self._by_cgroup.values(), key=lambda c: c.container.cgroup)

    def get(self, ref: str) -> ObservedContainer:
        """By id, unique id prefix, name or cgroup path; NotFound or InvalidArgument (ambiguous)."""
        containers = self.list()
        for container in containers:
            if ref in (container.id, container.name, container.container.cgroup):
                return container
        matches = [c for c in containers if ref and c.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise InvalidArgument(f"observed container {ref!r}: the prefix matches {len(matches)} containers",
                                  hint="give more of the id")
        raise NotFound(f"no observed container {ref!r}", hint="see `corral ps --all-cgroups`")

    def owns(self, paths: CgroupPaths) -> bool:
        """Whether every directory of `paths` belongs to one observed container."""
        dirs = [d for d in [paths.unified, *paths.controllers.values()] if d]
        current = self._dirs
        return bool(dirs) and all(os.path.normpath(d) in current for d in dirs)

    # --- the watcher's findings ------------------------------------------------------------------

    def update(self, found: dict[str, CgroupPaths]) -> None:
        """Make the registry match one scan: add new containers, refresh changed ones, drop gone ones."""
        with self._lock:
            before = dict(self._by_cgroup)
        after: dict[str, ObservedContainer] = {}
        for cgroup, paths in found.items():
            old = before.get(cgroup)
            cgroup_id = _cgroup_id(paths)
            if old is not None and old.cgroup == paths and old.cgroup_id == cgroup_id:
                after[cgroup] = old
                continue
            if old is not None:
                self._unwatch(old, moved=True)
                entry = replace(old, cgroup=paths, cgroup_id=cgroup_id)
            else:
                match = classify(cgroup)
                now = self._clock()
                entry = ObservedContainer(container=self._describe(match, cgroup), cgroup=paths,
                                          cgroup_id=cgroup_id, first_seen=now,
                                          started_at=_made_at(paths, now))
            after[cgroup] = self._watch(entry, moved=old is not None)
        after = self._unique_names(after)
        gone = [c for key, c in before.items() if key not in after]
        with self._lock:
            self._by_cgroup = after
            self._dirs = frozenset(os.path.normpath(d) for c in after.values()
                                   for d in [c.cgroup.unified, *c.cgroup.controllers.values()] if d)
        for container in gone:
            self._unwatch(container)
        for key, container in after.items():
            if before.get(key) is not container:     # new, moved or renamed
                self._bus.publish(ContainerStarted(container.entry(), again=key in before))

    def close(self) -> None:
        """Stop the probes following every observed container (at daemon shutdown); said as
        `moved` so the event log does not record them as vanished."""
        with self._lock:
            containers, self._by_cgroup, self._dirs = list(self._by_cgroup.values()), {}, frozenset()
        for container in containers:
            self._unwatch(container, moved=True)

    # --- helpers ---------------------------------------------------------------------------------

    def _describe(self, match, cgroup: str) -> ForeignContainer:
        if match is None:     # the watcher only reports classified paths; keep going if not
            return ForeignContainer(id=cgroup, name=cgroup, runtime="unknown", cgroup=cgroup)
        try:
            return describe(match, self._state)
        except Exception:     # unreadable runtime state must not hide the container
            log.warning("observe: cannot read %s's state for %s", match.runtime, match.id, exc_info=True)
            return ForeignContainer(id=match.id, name=match.id[:12], runtime=match.runtime, cgroup=cgroup)

    def _watch(self, entry: ObservedContainer, *, moved: bool = False) -> ObservedContainer:
        """Publish `placed`; a subscriber refusing it (the probes) leaves the container observed
        without probes, with the reason. `started` follows once the registry holds it."""
        if not entry.cgroup_id:
            entry = replace(entry, probes=False, note=NO_UNIFIED)
        else:
            entry = replace(entry, probes=self._probes, note="")
        try:
            self._bus.publish(ContainerPlaced(entry.entry(), moved=moved))
        except CorralError as exc:
            log.warning("observe: probes do not follow %s: %s", entry.name, exc)
            return replace(entry, probes=False, note=f"not counted by the probes: {exc}")
        return entry

    def _unwatch(self, entry: ObservedContainer, *, moved: bool = False) -> None:
        self._bus.publish(ContainerRemoved(entry.entry(), moved=moved))

    @staticmethod
    def _unique_names(entries: dict[str, ObservedContainer]) -> dict[str, ObservedContainer]:
        """Names label metric series: two containers must never share one. The later-seen one
        (or, at equal times, the later path) gets its short id appended."""
        taken: set[str] = set()
        result = {}
        for key, entry in sorted(entries.items(), key=lambda kv: (kv[1].first_seen, kv[0])):
            name = entry.container.name
            if name in taken:
                name = f"{name}-{entry.id[:12]}" if not entry.id.startswith(name) else entry.container.cgroup
                entry = replace(entry, container=replace(entry.container, name=name))
            taken.add(name)
            result[key] = entry
        return result

