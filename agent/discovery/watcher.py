"""Noticing cgroups that appear and vanish, within a fraction of a second.

`CgroupTrees` says where the host's cgroup trees are: one cgroup2 tree on v2 hosts; on hybrid
hosts the cgroup2 tree at <root>/unified (ids, BPF, freeze, PSI) and one v1 hierarchy per
controller (limits and figures). Foreign runtimes on hybrid hosts make a directory in every v1
hierarchy and, under systemd, one in the unified tree too; `scan()` joins them by their path
below the mount into one `CgroupPaths` per container. A container found only in v1 hierarchies
gets an empty `unified`: it is observed without BPF probes.

`CgroupWatcher` runs `scan()` when inotify reports a directory created or removed in any
directory it walked (IN_CREATE|IN_DELETE|IN_ONLYDIR, added as directories appear), and every
`rescan_interval` seconds in any case: inotify can overflow, and a watch cannot be added to a
directory made between a scan and its watch. Each scan hands the whole set found to
`on_scan`; the registry works out what changed.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import select
import struct
import threading
from dataclasses import dataclass, field
from typing import Callable, Iterator

from agent.cgroups.driver import CgroupPaths
from agent.discovery.classify import classify
from agent.errors import InvalidArgument, KernelError

log = logging.getLogger(__name__)

V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "pids", "freezer")
V2_CONTROLLERS = ("memory", "cpu", "pids")
MAX_DEPTH = 8          # kubepods.slice/<qos>.slice/<pod>.slice/<scope> is 4; leave room for roots

IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
_EVENT = struct.Struct("iIII")      # struct inotify_event: wd, mask, cookie, len (then the name)


@dataclass(frozen=True)
class CgroupTrees:
    """The mounts of the host's cgroup trees."""

    unified: str | None                                  # the cgroup2 tree, if any
    controllers: dict[str, str] = field(default_factory=dict)   # v1 controller -> its mount (hybrid)

    @classmethod
    def detect(cls, root: str = "/sys/fs/cgroup") -> "CgroupTrees":
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


def walk(mount: str, root: str) -> Iterator[tuple[str, bool]]:
    """(cgroup path below the mount, is a container) for every directory below `root`.

    A container's own children (nested cgroups inside it) are not walked: they are its.
    """
    start = os.path.join(mount, root.strip("/"))
    stack = [(start, 0)]
    while stack:
        directory, depth = stack.pop()
        relative = os.path.relpath(directory, mount)
        rel = "/" if relative == "." else "/" + relative
        below_root = rel[len(root):] if root != "/" else rel
        matched = depth > 0 and classify(below_root) is not None
        yield rel, matched
        if matched or depth >= MAX_DEPTH:
            continue
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append((entry.path, depth + 1))
        except OSError:
            continue        # removed while walking: the next scan settles it


def scan(trees: CgroupTrees, root: str = "/") -> tuple[dict[str, CgroupPaths], list[str]]:
    """Every foreign container below `root` in any tree, and every directory walked (to watch)."""
    found: set[str] = set()
    walked: list[str] = []
    for mount in trees.mounts():
        for rel, matched in walk(mount, root):
            if matched:
                found.add(rel)
            else:
                walked.append(os.path.join(mount, rel.strip("/")))
    return {rel: trees.paths(rel) for rel in sorted(found)}, walked


class Inotify:
    """inotify through ctypes (the standard library has none): directories only."""

    MASK = IN_CREATE | IN_DELETE | IN_ONLYDIR

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self.fd = self._libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            err = ctypes.get_errno()
            raise KernelError(f"inotify_init1: {os.strerror(err)}",
                              hint="raise fs.inotify.max_user_instances; the rescan still finds cgroups")
        self._watched: dict[int, str] = {}      # wd -> directory
        self._by_path: dict[str, int] = {}

    def add(self, directory: str) -> bool:
        """Watch `directory`; False when it vanished or the watch limit is reached."""
        if directory in self._by_path:
            return True
        wd = self._libc.inotify_add_watch(self.fd, os.fsencode(directory), self.MASK)
        if wd < 0:
            err = ctypes.get_errno()
            if err == errno.ENOSPC:
                log.warning("observe: inotify watch limit reached at %s; relying on the rescan "
                            "(raise fs.inotify.max_user_watches)", directory)
            return False
        self._watched[wd] = directory
        self._by_path[directory] = wd
        return True

    def __len__(self) -> int:
        return len(self._watched)

    def read(self) -> bool:
        """Drain pending events; True when any says the tree changed (or events were lost)."""
        changed = False
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return changed
            if not data:
                return changed
            offset = 0
            while offset + _EVENT.size <= len(data):
                wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
                offset += _EVENT.size + length
                if mask & IN_IGNORED:
                    directory = self._watched.pop(wd, None)
                    if directory is not None:
                        self._by_path.pop(directory, None)
                if mask & (IN_CREATE | IN_DELETE | IN_Q_OVERFLOW):
                    changed = True

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class CgroupWatcher:
    """Calls `on_scan(found)` at start, within ~`settle` seconds of any cgroup created or removed
    below `root`, and every `rescan_interval` seconds."""

    def __init__(self, trees: CgroupTrees, on_scan: Callable[[dict[str, CgroupPaths]], None], *,
                 root: str = "/", rescan_interval: float = 5.0, settle: float = 0.05) -> None:
        self.trees = trees
        self.root = check_observe_root(root)
        self._on_scan = on_scan
        self.rescan_interval = rescan_interval
        self.settle = settle
        self._inotify: Inotify | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = -1, -1

    def start(self) -> None:
        """Scan once now (so the first listing is complete) and follow changes in a thread."""
        try:
            self._inotify = Inotify()
        except KernelError as exc:
            log.warning("observe: %s; discovering by rescans every %.0fs", exc, self.rescan_interval)
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self.rescan()
        self._thread = threading.Thread(target=self._run, name="observe", daemon=True)
        self._thread.start()

    def rescan(self) -> dict[str, CgroupPaths]:
        found, walked = scan(self.trees, self.root)
        if self._inotify is not None:
            for directory in walked:
                self._inotify.add(directory)
        self._on_scan(found)
        return found

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        if self._inotify is not None:
            poller.register(self._inotify.fd, select.POLLIN)
        while not self._stop.is_set():
            ready = poller.poll(self.rescan_interval * 1000)
            if self._stop.is_set():
                return
            if ready and self._inotify is not None and not self._inotify.read():
                continue
            # A mkdir of a container usually comes with several more (one per hierarchy, then
            # its parents' children): let them land, then scan once.
            self._stop.wait(self.settle)
            if self._inotify is not None:
                self._inotify.read()
            try:
                self.rescan()
            except Exception:   # one failed scan must not end discovery
                log.exception("observe: scanning cgroups failed")

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
