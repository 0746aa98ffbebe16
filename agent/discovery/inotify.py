"""Directory watches with a tag per watch, for the cgroup watcher (agent/discovery/watcher.py).

inotify itself comes from inotify_simple (a small, maintained ctypes binding); what this adds
is what the watcher needs on top: each watch carries a tag its events are reported with, only
directories made or removed are reported, a watch the kernel drops (IN_IGNORED) is forgotten,
and a full watch table (ENOSPC) is remembered once instead of raised, since the watcher's
rescans still find what it cannot watch.
"""
from __future__ import annotations

import errno
import logging
from dataclasses import dataclass
from typing import Hashable

from inotify_simple import INotify, flags

from agent.errors import KernelError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DirEvent:
    """A directory made or removed (`name`) in a watched directory (`where`, its watch's tag)."""

    where: Hashable
    name: str


class Inotify:
    """Directory-only inotify watches, each with a tag its events are reported with."""

    MASK = flags.CREATE | flags.DELETE | flags.ONLYDIR

    def __init__(self, *, degraded_interval: float) -> None:
        try:
            self._inotify = INotify(nonblocking=True)
        except OSError as err:
            raise KernelError(f"inotify_init1: {err.strerror}",
                              hint="raise fs.inotify.max_user_instances; the rescan still finds cgroups") from err
        self.fd = self._inotify.fileno()
        self._degraded_interval = degraded_interval
        self._tags: dict[int, Hashable] = {}    # wd -> tag
        self._wds: dict[str, int] = {}          # directory -> wd
        self._paths: dict[int, str] = {}        # wd -> directory
        self.limit_reached = False              # a watch was refused (ENOSPC) since last cleared

    def add(self, directory: str, tag: Hashable) -> bool:
        """Watch `directory`; False when it vanished or the watch limit is reached.

        Asks the kernel every time (one syscall): a directory removed and remade under the same
        path gets a new watch even when the old one's IN_IGNORED has not been read yet."""
        try:
            wd = self._inotify.add_watch(directory, self.MASK)
        except OSError as err:
            if err.errno == errno.ENOSPC:
                if not self.limit_reached:
                    log.warning("observe: inotify watch limit reached at %s; relying on rescans every "
                                "%.0fs (raise fs.inotify.max_user_watches)", directory, self._degraded_interval)
                self.limit_reached = True
            return False
        self._tags[wd] = tag
        self._paths[wd] = directory
        self._wds[directory] = wd
        return True

    def __len__(self) -> int:
        return len(self._tags)

    def read(self) -> tuple[list[DirEvent], bool]:
        """Drain pending events: the directories made or removed, and whether events were lost."""
        events: list[DirEvent] = []
        overflow = False
        while batch := self._inotify.read(timeout=0):
            for event in batch:
                if event.mask & flags.Q_OVERFLOW:
                    overflow = True
                if event.mask & flags.IGNORED:
                    self._forget(event.wd)
                elif (event.mask & (flags.CREATE | flags.DELETE) and event.mask & flags.ISDIR
                      and event.wd in self._tags):
                    events.append(DirEvent(self._tags[event.wd], event.name))
        return events, overflow

    def _forget(self, wd: int) -> None:
        self._tags.pop(wd, None)
        directory = self._paths.pop(wd, None)
        if directory is not None and self._wds.get(directory) == wd:
            del self._wds[directory]

    def close(self) -> None:
        if self.fd >= 0:
            self._inotify.close()
            self.fd = -1
