"""Noticing cgroups that appear and vanish, within a fraction of a second, for little CPU.

`CgroupTrees` says where the host's cgroup trees are: one cgroup2 tree on v2 hosts; on hybrid
hosts the cgroup2 tree at <root>/unified (ids, BPF, freeze, PSI) and one v1 hierarchy per
controller (limits and figures). Foreign runtimes on hybrid hosts make a directory in every v1
hierarchy and, under systemd, one in the unified tree too; `scan()` joins them by their path
below the mount into one `CgroupPaths` per container. A container found only in v1 hierarchies
gets an empty `unified`: it is observed without BPF probes.

Corral's own parent (`/corral`, as the cgroup driver names it) is never walked nor watched:
its containers are Corral's, and every `corral run` makes and removes directories there.

`CgroupWatcher` walks every tree once at start, watching each directory it lists with inotify
(IN_CREATE|IN_DELETE|IN_ONLYDIR) before listing it, so a child made meanwhile is either listed
or reported. An event re-examines only the directory it names: the containers recorded below
it are dropped and, if it still exists, it alone is walked again. A full walk still runs every
`rescan_interval` seconds (stretched so that walks cost at most `cpu_budget` of a core), and at
once when inotify overflows: it settles whatever inotify could not report (the watch limit, a
directory gone and remade between reads). Each change hands the whole set found to `on_scan`;
the registry works out what changed.
"""
from __future__ import annotations

import logging
import os
import select
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, cast

from agent.cgroups.driver import CgroupPaths
from agent.discovery.classify import classify
from agent.discovery.inotify import DirEvent, Inotify
from agent.errors import InvalidArgument, KernelError

log = logging.getLogger(__name__)

V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "pids", "freezer")
V2_CONTROLLERS = ("memory", "cpu", "pids")
MAX_DEPTH = 8          # kubepods.slice/<qos>.slice/<pod>.slice/<scope> is 4; leave room for roots
OWN_PARENT = "corral"  # the cgroup drivers' parent (agent/cgroups/detect.py); the daemon passes its own
DEGRADED_INTERVAL = 2.0  # full walks this often when inotify cannot watch the whole tree



@dataclass(frozen=True)
class CgroupTrees:
    """The mounts of the host's cgroup trees."""

    unified: str | None                                  # the cgroup2 tree, if any
    controllers: dict[str, str] = field(default_factory=dict)   # v1 controller -> its mount (hybrid)

    @classmethod
    def detect(cls, root: str = "/sys/fs/cgroup") -> CgroupTrees:
        from agent.cgroups.hybrid import find_hierarchy
        if os.path.isfile(os.path.join(root, "cgroup.controllers")):
            return cls(unified=root)
        unified = os.path.join(root, "unified")
        controllers = {}
        for controller in V1_CONTROLLERS:
            mount = find_hierarchy(root, controller)
            if mount is not None:
                controllers[controller] = mount
        has_unified = os.path.isfile(os.path.join(unified, "cgroup.controllers"))
        if not controllers and not has_unified:
            raise KernelError(f"no cgroup filesystem is mounted at {root}",
                              hint="observe mode needs the host's cgroup trees; check `corral doctor`")
        return cls(unified=unified if has_unified else None, controllers=controllers)

    @property
    def hybrid(self) -> bool:
        return bool(self.controllers)

    def mounts(self) -> list[str]:
        """Every tree to walk, each once (joint v1 mounts such as cpu,cpuacct are one tree)."""
        seen: dict[str, str] = {}
        for mount in ([self.unified] if self.unified else []) + list(self.controllers.values()):
            seen.setdefault(os.path.realpath(mount), mount)
        return list(seen.values())

    def paths(self, cgroup: str) -> CgroupPaths:
        """The directories of the cgroup at `cgroup` (a path below the mounts) that exist."""
        rel = cgroup.strip("/")
        unified = os.path.join(self.unified, rel) if self.unified else ""
        if unified and not os.path.isdir(unified):
            unified = ""
        if not self.hybrid:
            return CgroupPaths(unified=unified, controllers={c: unified for c in V2_CONTROLLERS} if unified else {})
        controllers = {}
        for controller, mount in self.controllers.items():
            directory = os.path.join(mount, rel)
            if os.path.isdir(directory):
                controllers[controller] = directory
        return CgroupPaths(unified=unified, controllers=controllers)


def check_observe_root(root: str) -> str:
    """The observe root as a normalised cgroup path ("/" or "/a/b")."""
    if not isinstance(root, str) or not root.startswith("/") or "\0" in root \
            or any(part == ".." for part in root.split("/")):
        raise InvalidArgument(f"--observe-root {root!r}: expected an absolute cgroup path like / or "
                              "/kubepods.slice, as /proc/PID/cgroup shows it")
    return "/" + "/".join(p for p in root.split("/") if p)


def _below(rel: str, top: str) -> bool:
    return rel == top or rel.startswith(top + "/") or top == "/"


def _directory(mount: str, rel: str) -> str:
    return mount if rel == "/" else os.path.join(mount, rel.strip("/"))


def walk(mount: str, root: str, *, start: str | None = None, skip: tuple[str, ...] = (),
         before_listing: Callable[[str, str], None] | None = None) -> Iterator[tuple[str, bool]]:
    """(cgroup path below the mount, is a container) for every directory below `root`, or only
    for `start` (a cgroup path below `root`) and below it; the subtrees at `skip` are left out.

    A container's own children (nested cgroups inside it) are not walked: they are its.
    `before_listing(directory, rel)` is called for every directory just before it is listed
    (the watcher adds its inotify watch there, so a child made meanwhile is listed or reported).
    """
    first = start or root
    if not _below(first, root) or any(_below(first, s) for s in skip):
        return
    base_depth = len([p for p in root.split("/") if p])
    if len([p for p in first.split("/") if p]) - base_depth > MAX_DEPTH:
        return
    stack = [first]
    while stack:
        rel = stack.pop()
        depth = len([p for p in rel.split("/") if p]) - base_depth
        below_root = rel[len(root):] if root != "/" else rel
        matched = depth > 0 and classify(below_root) is not None
        yield rel, matched
        if matched or depth >= MAX_DEPTH:
            continue
        directory = _directory(mount, rel)
        if before_listing is not None:
            before_listing(directory, rel)
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        child = rel.rstrip("/") + "/" + entry.name
                        if not any(_below(child, s) for s in skip):
                            stack.append(child)
        except OSError:
            continue        # removed while walking: its IN_DELETE or the next rescan settles it


def _skipped(own_parent: str | None) -> tuple[str, ...]:
    return ("/" + own_parent.strip("/"),) if own_parent else ()


def scan(trees: CgroupTrees, root: str = "/", *,
         own_parent: str | None = OWN_PARENT) -> tuple[dict[str, CgroupPaths], list[str]]:
    """Every foreign container below `root` in any tree, and every directory listed (to watch).
    Corral's own parent (`/<own_parent>` in every tree) is left out."""
    found: set[str] = set()
    walked: list[str] = []
    for mount in trees.mounts():
        for rel, matched in walk(mount, root, skip=_skipped(own_parent),
                                 before_listing=lambda directory, _rel: walked.append(directory)):
            if matched:
                found.add(rel)
    return {rel: trees.paths(rel) for rel in sorted(found)}, walked


class CgroupWatcher:
    """Calls `on_scan(found)` at start, within ~`settle` seconds of any cgroup created or removed
    below `root`, and after every full rescan (every `rescan_interval` seconds or more).

    `walked` counts the directories examined since start: what the watcher's CPU goes into."""

    def __init__(self, trees: CgroupTrees, on_scan: Callable[[dict[str, CgroupPaths]], None], *,
                 root: str = "/", rescan_interval: float = 10.0, settle: float = 0.05,
                 own_parent: str | None = OWN_PARENT, cpu_budget: float = 0.002) -> None:
        self.trees = trees
        self.root = check_observe_root(root)
        self._on_scan = on_scan
        self.rescan_interval = rescan_interval
        self.settle = settle
        self.cpu_budget = cpu_budget    # share of one core full rescans may use when idle
        self._skip = _skipped(own_parent)
        self._mounts = trees.mounts()
        self._inotify: Inotify | None = None
        self._lock = threading.Lock()   # the state below; on_scan is called under it, so in order
        self._containers: dict[str, set[str]] = {m: set() for m in self._mounts}   # mount -> paths
        self._found: dict[str, CgroupPaths] = {}
        self._interval = rescan_interval    # until the next full rescan, set after each one
        self.walked = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = -1, -1

    def start(self) -> None:
        """Scan once now (so the first listing is complete) and follow changes in a thread."""
        try:
            self._inotify = Inotify(degraded_interval=DEGRADED_INTERVAL)
        except KernelError as exc:
            log.warning("observe: %s; discovering by rescans every %.0fs", exc, DEGRADED_INTERVAL)
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self.rescan()
        self._thread = threading.Thread(target=self._run, name="observe", daemon=True)
        self._thread.start()

    def rescan(self) -> dict[str, CgroupPaths]:
        """Walk every tree (below the observe root, outside Corral's parent) and report all found."""
        started = time.thread_time()
        with self._lock:
            if self._inotify is not None:
                self._inotify.limit_reached = False
            self._containers = {mount: set(self._walk(mount)) for mount in self._mounts}
            self._found = {rel: self.trees.paths(rel) for rel in sorted(set().union(*self._containers.values()))}
            found = dict(self._found)
            self._on_scan(found)
            degraded = self._inotify is None or self._inotify.limit_reached
        # A full walk costs about the same each time: space walks so they use at most
        # `cpu_budget` of a core (10 ms every 10 s is 0.1%), however big the host's trees are.
        cost = time.thread_time() - started
        floor = min(self.rescan_interval, DEGRADED_INTERVAL) if degraded else self.rescan_interval
        self._interval = max(floor, cost / self.cpu_budget if self.cpu_budget > 0 else 0.0)
        return found

    def apply(self, events: list[DirEvent]) -> bool:
        """Re-examine the directories the events name; True (and `on_scan` called) when any
        container appeared, vanished or changed."""
        touched: set[str] = set()
        with self._lock:
            for mount, rel in dict.fromkeys(self._event_paths(events)):
                mine = self._containers.setdefault(mount, set())
                gone = {c for c in mine if _below(c, rel)}
                mine -= gone
                # Whatever the events said, the directory as it is now decides.
                new = set(self._walk(mount, rel)) if os.path.isdir(_directory(mount, rel)) else set()
                mine |= new
                touched |= gone | new
            if not touched:
                return False
            for rel in touched:
                if any(rel in paths for paths in self._containers.values()):
                    self._found[rel] = self.trees.paths(rel)
                else:
                    self._found.pop(rel, None)
            self._on_scan(dict(sorted(self._found.items())))
        return True

    def _event_paths(self, events: list[DirEvent]) -> Iterator[tuple[str, str]]:
        for event in events:
            mount, parent = cast(tuple[str, str], event.where)     # the tags this watcher gives: (mount, rel)
            rel = parent.rstrip("/") + "/" + event.name
            if any(_below(rel, s) for s in self._skip):
                continue    # Corral's own parent appearing at the top of a tree
            yield mount, rel

    def _walk(self, mount: str, start: str | None = None) -> Iterator[str]:
        """The containers below `start` (default: the observe root) in one tree, watching every
        directory listed."""
        def watch(directory: str, rel: str) -> None:
            if self._inotify is not None:
                self._inotify.add(directory, (mount, rel))

        for rel, matched in walk(mount, self.root, start=start, skip=self._skip, before_listing=watch):
            self.walked += 1
            if matched:
                yield rel

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        if self._inotify is not None:
            poller.register(self._inotify.fd, select.POLLIN)
        next_rescan = time.monotonic() + self._interval
        while not self._stop.is_set():
            ready = poller.poll(max(0.0, next_rescan - time.monotonic()) * 1000)
            if self._stop.is_set():
                return
            try:
                if ready and self._inotify is not None:
                    # A container's mkdirs come several at once (one per hierarchy): let them
                    # land, then look at them together.
                    self._stop.wait(self.settle)
                    events, overflow = self._inotify.read()
                    if overflow:
                        next_rescan = time.monotonic()
                    elif events:
                        self.apply(events)
                    if self._inotify.limit_reached:    # new directories went unwatched
                        next_rescan = min(next_rescan, time.monotonic() + DEGRADED_INTERVAL)
                if time.monotonic() >= next_rescan:
                    self.rescan()
                    next_rescan = time.monotonic() + self._interval
            except Exception:   # one failed scan must not end discovery
                log.exception("observe: scanning cgroups failed")
                next_rescan = time.monotonic() + self._interval

    def stop(self) -> None:
        self._stop.set()
        if self._wake_w >= 0:
            try:
                os.write(self._wake_w, b"x")
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1
        if self._inotify is not None:
            self._inotify.close()
            self._inotify = None
