"""Kernel notifications of a container's cgroup crossing a threshold: `ThresholdWatch`.

The policy service arms, for each running container, what its policies' thresholds can be told
by the kernel instead of found by sampling, and blocks in `wait()` (one epoll) until one fires:

- memory usage above N bytes:
    v1 (hybrid hosts): `cgroup.event_control` "<eventfd> <fd of memory.usage_in_bytes> <N>";
        the eventfd counts each crossing (up or down), checked by the kernel every ~128 page
        events (about 512 KiB of allocation);
    v2: there is no usage notification. Only when the caller allows it (`memory_high`: the
        policy's action may throttle) `memory.high` is set at N and `memory.events` (whose
        `high` count then moves) is polled for modification; otherwise memory is not armed and
        the caller keeps sampling it;
- an OOM kill: v1 `memory.oom_control` through `cgroup.event_control`; v2 `memory.events`;
- pressure (PSI): a trigger "some|full <stall us> <window us>" written to the unified
  `<resource>.pressure`, on both (v1 stalls are charged to the task's v2 cgroup). The window is
  2 s: unprivileged triggers (no CAP_SYS_RESOURCE, as on this machine) need a multiple of 2 s.

`arm()` reports what it armed (`Armed.sources`), so the caller knows which signals still need
sampling. A removed cgroup signals once (eventfd) or reports an error (kernfs files), is
reported as a wake-up of its key, and is dropped from the epoll; its fds close at `disarm()`.
`WatchDouble` (agent/cgroups/watch_double.py) is the in-memory implementation for unit tests.
"""
from __future__ import annotations

import logging
import os
import select
from dataclasses import dataclass, field
from typing import Protocol

from agent.cgroups.driver import CgroupPaths

log = logging.getLogger(__name__)

PSI_WINDOW_US = 2_000_000
MEMORY = "memory"
OOM = "oom"


@dataclass(frozen=True)
class PressureTrigger:
    """A PSI trigger: wake when tasks stalled on `resource` for `stall_us` within a window."""

    resource: str                      # memory | cpu | io
    kind: str                          # some | full
    stall_us: int
    window_us: int = PSI_WINDOW_US

    @property
    def source(self) -> str:
        return f"pressure:{self.resource}:{self.kind}"

    def line(self) -> bytes:
        # A trigger write must end with a newline or NUL (the kernel parses a C string).
        return f"{self.kind} {self.stall_us} {self.window_us}\0".encode()


@dataclass(frozen=True)
class WatchSpec:
    """What to arm for one container."""

    memory_bytes: tuple[int, ...] = ()     # usage thresholds, in bytes
    oom: bool = False
    pressure: tuple[PressureTrigger, ...] = ()
    memory_high: bool = False              # v2: memory.high may be set at the lowest memory threshold

    def is_empty(self) -> bool:
        return not self.memory_bytes and not self.oom and not self.pressure


@dataclass(frozen=True)
class Armed:
    """What `arm()` set up: the sources (`memory`, `oom`, `pressure:<resource>:<kind>`) that
    will wake the caller, and why the others are not armed."""

    sources: frozenset[str] = frozenset()
    problems: tuple[str, ...] = ()


class ThresholdWatch(Protocol):
    """Kernel threshold notifications of containers' cgroups, keyed by the caller's key."""

    def arm(self, key: str, paths: CgroupPaths, spec: WatchSpec) -> Armed:
        """Replace what is armed for `key` by `spec`; never raises for a cgroup file that is
        missing or refused (that source is not armed and says why in `problems`)."""

    def disarm(self, key: str) -> None:
        """Close every fd of `key` and undo what arming wrote (v2 memory.high)."""

    def wait(self, timeout: float | None) -> set[str]:
        """Block until a source fires, `wake()` is called or `timeout` seconds pass; the keys
        whose sources fired (empty on a timeout or a wake-up)."""

    def wake(self) -> None:
        """Make a `wait()` in another thread return now."""

    def open_fds(self) -> int:
        """Fds held for armed keys (not counting the epoll's own)."""

    def close(self) -> None: ...


@dataclass
class _Source:
    key: str
    fd: int
    kind: str           # "eventfd" | "psi" | "kernfs"
    events: int


@dataclass
class _Key:
    sources: list[_Source] = field(default_factory=list)
    undo: list[tuple[str, bytes]] = field(default_factory=list)   # (file, value) written back at disarm


class KernelWatch:
    """The epoll behind `ThresholdWatch`; memory arming is the cgroup version's (`V1Watch`,
    `V2Watch`), pressure triggers are common. Armed and waited on from one thread; `wake()`
    from any."""

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._wake = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self._epoll.register(self._wake, select.EPOLLIN)
        self._keys: dict[str, _Key] = {}
        self._by_fd: dict[int, _Source] = {}

    # --- ThresholdWatch -------------------------------------------------------------------------

    def arm(self, key: str, paths: CgroupPaths, spec: WatchSpec) -> Armed:
        self.disarm(key)
        entry = self._keys[key] = _Key()
        sources: set[str] = set()
        problems: list[str] = []
        for source, opener in self._openers(paths, spec):
            try:
                opener(key, entry)
                sources.add(source)
            except OSError as error:
                problems.append(f"{source}: {error.strerror or error} ({error.filename or paths.unified})")
        if not entry.sources and not entry.undo:
            del self._keys[key]
        return Armed(frozenset(sources), tuple(problems))

    def disarm(self, key: str) -> None:
        entry = self._keys.pop(key, None)
        if entry is None:
            return
        for source in entry.sources:
            self._drop(source)
            os.close(source.fd)
        for path, value in entry.undo:
            try:
                _write(path, value)
            except OSError:
                pass            # the cgroup is gone: nothing to restore

    def wait(self, timeout: float | None) -> set[str]:
        fired: set[str] = set()
        try:
            ready = self._epoll.poll(-1 if timeout is None else max(0.0, timeout))
        except InterruptedError:
            return fired
        for fd, mask in ready:
            if fd == self._wake:
                _drain_eventfd(fd)
                continue
            source = self._by_fd.get(fd)
            if source is None:
                continue
            if not self._consume(source, mask):
                self._drop(source)      # the cgroup is gone: the fd would report forever
            fired.add(source.key)
        return fired

    def wake(self) -> None:
        os.eventfd_write(self._wake, 1)

    def open_fds(self) -> int:
        return sum(len(entry.sources) for entry in self._keys.values())

    def close(self) -> None:
        for key in list(self._keys):
            self.disarm(key)
        self._epoll.close()
        os.close(self._wake)

    # --- arming -----------------------------------------------------------------------------------

    def _openers(self, paths: CgroupPaths, spec: WatchSpec) -> list:
        openers = self._memory_openers(paths, spec)
        for trigger in spec.pressure:
            openers.append((trigger.source, lambda key, entry, t=trigger: self._psi(key, entry, paths, t)))
        return openers

    def _memory_openers(self, paths: CgroupPaths, spec: WatchSpec) -> list:
        raise NotImplementedError

    def _psi(self, key: str, entry: _Key, paths: CgroupPaths, trigger: PressureTrigger) -> None:
        path = os.path.join(paths.unified, f"{trigger.resource}.pressure")
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            os.write(fd, trigger.line())
        except OSError as error:
            os.close(fd)
            raise OSError(error.errno, error.strerror, path) from None
        self._add(entry, _Source(key, fd, "psi", select.EPOLLPRI))

    def _add(self, entry: _Key, source: _Source) -> None:
        """Poll `source`; its fd is closed if the epoll refuses it (EPERM: not a pollable file)."""
        try:
            self._epoll.register(source.fd, source.events)
        except OSError:
            os.close(source.fd)
            raise
        entry.sources.append(source)
        self._by_fd[source.fd] = source

    def _drop(self, source: _Source) -> None:
        if self._by_fd.pop(source.fd, None) is not None:
            self._epoll.unregister(source.fd)

    @staticmethod
    def _consume(source: _Source, mask: int) -> bool:
        """Reset what fired; False when the cgroup behind the fd is gone."""
        if source.kind == "eventfd":
            _drain_eventfd(source.fd)       # the kernel also signals once when the cgroup goes
            return True
        if source.kind == "psi":
            return not mask & (select.EPOLLERR | select.EPOLLHUP)
        try:                                # kernfs: re-reading the file re-arms its poll
            os.pread(source.fd, 4096, 0)
            return True
        except OSError:
            return False


class V1Watch(KernelWatch):
    """Memory thresholds and OOM through cgroup v1's `cgroup.event_control` (hybrid hosts)."""

    def _memory_openers(self, paths: CgroupPaths, spec: WatchSpec) -> list:
        directory = paths.controllers.get("memory")
        if directory is None:
            return []
        openers = []
        if spec.memory_bytes:
            def memory(key: str, entry: _Key) -> None:
                for threshold in sorted(set(spec.memory_bytes)):
                    self._event(key, entry, directory, "memory.usage_in_bytes", f" {threshold}")
            openers.append((MEMORY, memory))
        if spec.oom:
            openers.append((OOM, lambda key, entry: self._event(key, entry, directory, "memory.oom_control", "")))
        return openers

    def _event(self, key: str, entry: _Key, directory: str, target: str, argument: str) -> None:
        """Register an eventfd for `target`: the kernel keeps its own reference to the file, so
        only the eventfd stays open (closing it unregisters the event)."""
        efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        try:
            target_fd = os.open(os.path.join(directory, target), os.O_RDONLY | os.O_CLOEXEC)
            try:
                _write(os.path.join(directory, "cgroup.event_control"), f"{efd} {target_fd}{argument}".encode())
            finally:
                os.close(target_fd)
        except OSError:
            os.close(efd)
            raise
        self._add(entry, _Source(key, efd, "eventfd", select.EPOLLIN))


class V2Watch(KernelWatch):
    """Memory on cgroup v2: `memory.events` polled for modification; it moves at a usage
    threshold only where `memory.high` may be set at it (`spec.memory_high`)."""

    def _memory_openers(self, paths: CgroupPaths, spec: WatchSpec) -> list:
        openers = []
        high = spec.memory_high and bool(spec.memory_bytes)
        if high:
            openers.append((MEMORY, lambda key, entry: self._high(key, entry, paths, min(spec.memory_bytes))))
        if spec.oom:
            openers.append((OOM, lambda key, entry: self._events(key, entry, paths)))
        return openers

    def _high(self, key: str, entry: _Key, paths: CgroupPaths, limit: int) -> None:
        path = os.path.join(paths.unified, "memory.high")
        with open(path, "rb") as current:
            previous = current.read().strip() or b"max"
        _write(path, str(limit).encode())
        entry.undo.append((path, previous))
        self._events(key, entry, paths)

    def _events(self, key: str, entry: _Key, paths: CgroupPaths) -> None:
        if any(s.kind == "kernfs" for s in entry.sources):
            return                         # one memory.events fd serves memory.high and OOM
        fd = os.open(os.path.join(paths.unified, "memory.events"), os.O_RDONLY | os.O_CLOEXEC)
        os.pread(fd, 4096, 0)               # a read takes the current state as seen
        self._add(entry, _Source(key, fd, "kernfs", select.EPOLLPRI))


class PollingWatch:
    """No kernel notifications (the daemon without a watch, unit tests of the loop): `wait()`
    only sleeps until woken; nothing is ever armed."""

    def __init__(self) -> None:
        import threading
        self._woken = threading.Event()

    def arm(self, key: str, paths: CgroupPaths, spec: WatchSpec) -> Armed:
        return Armed()

    def disarm(self, key: str) -> None:
        pass

    def wait(self, timeout: float | None) -> set[str]:
        self._woken.wait(timeout)
        self._woken.clear()
        return set()

    def wake(self) -> None:
        self._woken.set()

    def open_fds(self) -> int:
        return 0

    def close(self) -> None:
        pass


def kernel_watch(mode: str) -> ThresholdWatch:
    """The watch of a cgroup driver's mode ("hybrid" or "v2")."""
    return V1Watch() if mode == "hybrid" else V2Watch()


def _write(path: str, value: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)    # as a shell's `>` does
    try:
        os.write(fd, value)
    except OSError as error:
        raise OSError(error.errno, error.strerror, path) from None
    finally:
        os.close(fd)


def _drain_eventfd(fd: int) -> None:
    try:
        os.eventfd_read(fd)
    except BlockingIOError:
        pass
