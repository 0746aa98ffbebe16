"""Container paths resolved from the host the way the container resolves them, never further.

A container's files, seen from the host, are its root (the overlay mounted at
`<root>/containers/<id>/rootfs`) plus its volumes and bind mounts, each a host directory
mounted at a target. `ContainerTree.open_dir(path)` finds the area that holds a container path
(the deepest mount target above it) and opens it with openat2(RESOLVE_IN_ROOT): a symlink the
container planted (`/x -> /etc`, `/y -> ../../../../etc`) is followed as the container would
follow it, inside that area, and never reaches a host file. When a symlink leads into another
area (`/link -> /data`, a volume), the opened directory's real path says so and the rest is
resolved in that area. What resolution returns is a file descriptor, so nothing the container
does after the check can redirect the operation that uses it.
"""
from __future__ import annotations

import ctypes
import errno
import functools
import os
import posixpath
from dataclasses import dataclass, replace
from pathlib import Path

from agent.errors import Conflict, KernelError, NotFound

SYS_OPENAT2 = 437               # x86_64 and aarch64 alike (the generic syscall table)
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
_MAX_HOPS = 8                   # areas a path may lead through (symlinks into volumes)


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


@functools.lru_cache(maxsize=1)
def _syscall():
    libc = ctypes.CDLL(None, use_errno=True)
    function = libc.syscall
    function.restype = ctypes.c_long
    return function


def openat2(dir_fd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """openat2(2): an fd for `path` below `dir_fd`; OSError (with errno and the path) on failure."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    fd = _syscall()(SYS_OPENAT2, dir_fd, os.fsencode(path or "."), ctypes.byref(how), ctypes.sizeof(how))
    if fd < 0:
        code = ctypes.get_errno()
        if code == errno.ENOSYS:
            raise KernelError("openat2(2) is missing: copying files needs Linux 5.6 or later")
        raise OSError(code, os.strerror(code), path)
    return int(fd)


def normalize(path: str) -> str:
    """`path` as an absolute container path without `.`, `..` or doubled slashes; `..` stops at `/`."""
    parts: list[str] = []
    for part in path.split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return "/" + "/".join(parts)


@dataclass(frozen=True)
class Area:
    """One host directory of a container's files, mounted at `target` ("/" for the root)."""

    target: str
    source: Path
    readonly: bool = False
    what: str = "the container's root"      # for messages: "volume data", "bind mount /srv"

    def relative(self, path: str) -> str:
        return "." if path == self.target else path[len(self.target):].lstrip("/")


class ContainerTree:
    """A container's files from the host: the root and the areas mounted on it."""

    def __init__(self, name: str, root: Area, mounts: list[Area] | tuple[Area, ...] = ()) -> None:
        self.name = name
        # Real paths: an fd's real path (/proc/self/fd) is compared with them.
        areas = [replace(area, source=Path(os.path.realpath(area.source))) for area in (root, *mounts)]
        # Deepest first, so /data/cache wins over /data for /data/cache/x.
        self.areas = sorted(areas, key=lambda area: len(area.target), reverse=True)

    def locate(self, path: str) -> tuple[Area, str]:
        """The area holding the (normalized) container path, and the path relative to it."""
        for area in self.areas:
            if area.target == "/" or path == area.target or path.startswith(area.target + "/"):
                return area, area.relative(path)
        raise AssertionError("the root area holds every path")

    def open_dir(self, path: str, *, writing: bool = False) -> tuple[int, Area, str]:
        """An O_PATH fd of the directory at container `path` (symlinks followed inside the
        container), its area, and its container path as resolved. NotFound when it is missing."""
        wanted = normalize(path)
        for _ in range(_MAX_HOPS):
            area, rel = self.locate(wanted)
            fd = self._open(area, rel, os.O_PATH | os.O_DIRECTORY, path)
            real = self._real(fd, area)
            if real is None or self.locate(real)[0] == area:
                if writing and area.readonly:
                    os.close(fd)
                    raise Conflict(f"container {self.name}: {path} is in {area.what}, which is mounted read-only")
                return fd, area, real or wanted
            os.close(fd)
            wanted = real       # a symlink led into a volume mounted on this tree: go on there
        raise NotFound(f"container {self.name}: {path}: too many symbolic links through mounts")

    def split(self, path: str, *, writing: bool = False) -> tuple[int, str, str]:
        """(fd of the parent directory, last component, container path) for a path whose last
        component is not followed; the root itself is (fd of "/", ".", "/")."""
        clean = normalize(path)
        if clean == "/":
            fd, _, _ = self.open_dir("/", writing=writing)
            return fd, ".", "/"
        parent, leaf = clean.rsplit("/", 1)
        try:
            fd, _, resolved = self.open_dir(parent or "/", writing=writing)
        except NotFound:
            raise NotFound(f"container {self.name}: no such file or directory: {path}", field="path") from None
        full = posixpath.join(resolved, leaf)
        if any(area.target == full for area in self.areas):
            # A mount target itself: its content is the mounted directory, not the mount point.
            os.close(fd)
            fd, _, _ = self.open_dir(full, writing=writing)
            return fd, ".", full
        return fd, leaf, full

    def _open(self, area: Area, rel: str, flags: int, shown: str) -> int:
        try:
            root = os.open(area.source, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise KernelError(f"container {self.name}: cannot open {area.what} at {area.source}: "
                              f"{exc.strerror}") from None
        try:
            return openat2(root, rel, flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                raise NotFound(f"container {self.name}: no such directory: {shown}", field="path") from None
            raise KernelError(f"container {self.name}: {shown}: {exc.strerror}") from None
        finally:
            os.close(root)

    def _real(self, fd: int, area: Area) -> str | None:
        """The container path of an opened fd (through its real host path), or None if unknown."""
        try:
            host = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return None
        inside = os.path.relpath(host, area.source)
        if inside.startswith(".."):
            return None
        return normalize(posixpath.join(area.target, inside))
