"""Cgroup files read with raw os calls and kept open between readings (`OpenFiles`), for the
stats readings on the scrape path; `on_cgroupfs` says where keeping them open is safe."""
from __future__ import annotations

import os
import resource
import threading
from collections.abc import Iterable

from agent.mount_table import MOUNTINFO, mount_holding, read_mount_table

# Every cgroup file but a big cgroup.procs fits in one read of this size.
CHUNK = 65536


def pread_all(fd: int) -> bytes:
    """The whole file from offset 0. On cgroupfs a read at offset 0 makes the kernel write the
    file afresh, so this is also how a kept-open file is re-read."""
    data = os.pread(fd, CHUNK, 0)
    if len(data) < CHUNK:
        return data
    parts = [data]
    offset = len(data)
    while True:
        more = os.pread(fd, CHUNK, offset)
        if not more:
            return b"".join(parts)
        parts.append(more)
        offset += len(more)


class OpenFiles:
    """Cgroup files kept open between readings and re-read with pread at offset 0.

    Why: on cgroupfs (kernfs) opening and closing a file costs ~10 µs and a pread of an open
    one ~2 µs, and a scrape reads ~17 files per container. Nothing is served stale: kernfs
    writes the file afresh on every read from offset 0, and once the cgroup is removed a kept
    file answers ENODEV, so it is closed and the path opened again (a cgroup made anew under
    the same name) or reported missing like any absent file. That holds on cgroupfs only: on
    a regular filesystem a file replaced by rename would be read stale, so drivers keep files
    open only where `on_cgroupfs` says so.

    At most `max_open` files are kept (a quarter of the soft RLIMIT_NOFILE by default, so the
    daemon's own sockets and containers' launches never run short); past that, files are
    opened, read and closed. `forget(directory)` closes the files of a removed cgroup. Safe
    across threads: one lock keeps a file from being closed while another thread reads it.
    """

    def __init__(self, max_open: int | None = None) -> None:
        if max_open is None:
            soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            max_open = 4096 if soft == resource.RLIM_INFINITY else max(0, soft // 4)
        self.max_open = max_open
        self._fds: dict[str, int] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._fds)

    def read(self, path: str) -> bytes:
        """The file's bytes now; OSError when it cannot be opened or read."""
        with self._lock:
            fd = self._fds.get(path)
            if fd is not None:
                try:
                    data = os.pread(fd, CHUNK, 0)
                    return data if len(data) < CHUNK else pread_all(fd)
                except OSError:
                    # ENODEV: the cgroup was removed since; look the path up again below.
                    del self._fds[path]
                    os.close(fd)
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                data = pread_all(fd)
            except BaseException:
                os.close(fd)
                raise
            if len(self._fds) < self.max_open:
                self._fds[path] = fd
            else:
                os.close(fd)
            return data

    def forget(self, directory: str) -> None:
        """Close the kept files below `directory` (a cgroup being removed)."""
        prefix = directory.rstrip("/") + "/"
        with self._lock:
            for path in [p for p in self._fds if p.startswith(prefix)]:
                os.close(self._fds.pop(path))

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()


def on_cgroupfs(path: str, mountinfo: str = str(MOUNTINFO)) -> bool:
    """Whether `path` is on a cgroup or cgroup2 filesystem (the mount holding it, by the
    longest mount point that is a prefix of its real path)."""
    return all_on_cgroupfs([path], mountinfo)


def all_on_cgroupfs(paths: Iterable[str], mountinfo: str = str(MOUNTINFO)) -> bool:
    """Whether every one of `paths` is on a cgroup filesystem, reading the mount table once (a
    daemon start asks for each controller's hierarchy; the table grows with each container)."""
    try:
        mounts = read_mount_table(mountinfo)
    except OSError:
        return False
    for path in paths:
        holder = mount_holding(mounts, path)
        if holder is None or holder.fstype not in ("cgroup", "cgroup2"):
            return False
    return True
