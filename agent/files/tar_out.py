"""A path of a container as a tar stream, read through file descriptors that never leave it.

`archive(tree, path)` is what `GET /v1/containers/{ref}/archive` and `corral cp C:PATH ...`
send: the top entry is named after the path's last component (Docker's shape), a symbolic
link at the end of the path is archived as the link (add `/.` or `/` to follow it, as with
docker), and directories are walked with `os.fwalk(follow_symlinks=False)`: every directory
and file is opened relative to its parent's descriptor with O_NOFOLLOW, so a symlink swapped
in by a running container is archived as a link, never followed. `export_root(path)` is the
same for a whole root (`corral export`). Headers are PAX, written by `tarfile`; file data is
streamed in chunks, so a large file never sits in memory.
"""
from __future__ import annotations

import datetime
import os
import posixpath
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path

from agent.errors import KernelError, NotFound
from agent.files.resolve import ContainerTree

CHUNK = 1 << 20
BLOCK = tarfile.BLOCKSIZE
RECORD = tarfile.RECORDSIZE
# Extended attributes worth carrying: file capabilities (ping) and user data. overlayfs'
# trusted.* never shows in the merged view, and SELinux labels belong to the host.
_XATTRS = ("security.capability", "user.")
_TYPES = ((stat.S_ISDIR, tarfile.DIRTYPE), (stat.S_ISLNK, tarfile.SYMTYPE), (stat.S_ISFIFO, tarfile.FIFOTYPE),
          (stat.S_ISCHR, tarfile.CHRTYPE), (stat.S_ISBLK, tarfile.BLKTYPE))


def go_file_mode(mode: int) -> int:
    """A st_mode as Go's os.FileMode, which Docker's X-Docker-Container-Path-Stat carries."""
    bits = mode & 0o777
    for test, bit in ((stat.S_ISDIR, 1 << 31), (stat.S_ISLNK, 1 << 27), (stat.S_ISFIFO, 1 << 25),
                      (stat.S_ISSOCK, 1 << 24), (stat.S_ISBLK, 1 << 26), (stat.S_ISCHR, (1 << 26) | (1 << 21))):
        if test(mode):
            bits |= bit
    for flag, bit in ((stat.S_ISUID, 1 << 23), (stat.S_ISGID, 1 << 22), (stat.S_ISVTX, 1 << 20)):
        if mode & flag:
            bits |= bit
    return bits


def _stat_document(name: str, info: os.stat_result, link: str) -> dict:
    when = datetime.datetime.fromtimestamp(info.st_mtime, tz=datetime.UTC)
    return {"name": name, "size": info.st_size, "mode": go_file_mode(info.st_mode),
            "mtime": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "linkTarget": link}


def _top(tree: ContainerTree, path: str) -> tuple[int, str, str]:
    """(parent fd, leaf, container path); a trailing `/` or `/.` follows a final symlink."""
    if path.endswith(("/", "/.")) and path.rstrip("/.") != "":
        fd, _area, resolved = tree.open_dir(path)
        os.close(fd)
        return tree.split(resolved)
    return tree.split(path)


def path_stat(tree: ContainerTree, path: str) -> dict:
    """Docker's stat of a container path: name, size, mode (Go's FileMode), mtime, linkTarget."""
    parent, leaf, resolved = _top(tree, path)
    try:
        info = _lstat(parent, leaf, f"container {tree.name}", path)
        link = ""
        if stat.S_ISLNK(info.st_mode):
            link = posixpath.normpath(posixpath.join(posixpath.dirname(resolved),
                                                     os.readlink(leaf, dir_fd=parent)))
        return _stat_document(posixpath.basename(resolved) or "/", info, link)
    finally:
        os.close(parent)


def archive(tree: ContainerTree, path: str) -> Iterator[bytes]:
    """The tar stream of a container path, its top entry named after the path's last component.
    NotFound is raised now (before a first byte is sent), not from inside the stream."""
    parent, leaf, resolved = _top(tree, path)
    try:
        info = _lstat(parent, leaf, f"container {tree.name}", path)
    except BaseException:
        os.close(parent)
        raise
    return _stream(parent, leaf, posixpath.basename(resolved) or ".", info)


def export_root(root: Path) -> Iterator[bytes]:
    """The whole tree at `root` (a mounted container root), entries named without a prefix."""
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    return _stream(fd, ".", "", os.stat(".", dir_fd=fd, follow_symlinks=False))


def archive_path(path: str, name: str) -> Iterator[bytes]:
    """A host path as a tar stream (the CLI's side of `cp HOST C:PATH`), its top entry named
    `name`; with `name` "" a directory's content only, without a top entry."""
    parent = os.open(os.path.dirname(os.path.abspath(path)), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    leaf = os.path.basename(os.path.abspath(path))
    try:
        info = _lstat(parent, leaf, "the host", path)
    except BaseException:
        os.close(parent)
        raise
    return _stream(parent, leaf, name, info)


def _lstat(parent: int, leaf: str, where: str, shown: str) -> os.stat_result:
    try:
        return os.stat(leaf, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        raise NotFound(f"{where}: no such file or directory: {shown}", field="path") from None
    except OSError as exc:
        raise KernelError(f"{where}: {shown}: {exc.strerror}") from None


def _stream(parent: int, leaf: str, name: str, info: os.stat_result) -> Iterator[bytes]:
    writer = _Writer()
    try:
        if stat.S_ISDIR(info.st_mode) or not name:
            top = os.open(leaf, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
            try:
                if name:
                    yield from writer.entry(name, parent, leaf, os.fstat(top))
                yield from writer.tree(top, name)
            finally:
                os.close(top)
        else:
            yield from writer.entry(name, parent, leaf, info)
        yield writer.end()
    finally:
        os.close(parent)


class _Writer:
    def __init__(self) -> None:
        self.written = 0
        self.links: dict[tuple[int, int], str] = {}   # (dev, inode) -> first name, for hard links

    def _out(self, data: bytes) -> bytes:
        self.written += len(data)
        return data

    def tree(self, top: int, prefix: str) -> Iterator[bytes]:
        for dirpath, dirnames, filenames, dir_fd in os.fwalk(".", dir_fd=top, follow_symlinks=False):
            dirnames.sort()
            base = posixpath.normpath(posixpath.join(prefix, dirpath)) if prefix else posixpath.normpath(dirpath)
            for entry in sorted(dirnames) + sorted(filenames):
                try:
                    info = os.stat(entry, dir_fd=dir_fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue        # removed by the running container meanwhile
                name = entry if base == "." else f"{base}/{entry}"
                yield from self.entry(name, dir_fd, entry, info)

    def entry(self, name: str, dir_fd: int, leaf: str, info: os.stat_result) -> Iterator[bytes]:
        member = tarfile.TarInfo(name)
        member.mode = stat.S_IMODE(info.st_mode)
        member.uid, member.gid = info.st_uid, info.st_gid
        member.mtime = int(info.st_mtime)
        member.type = next((kind for test, kind in _TYPES if test(info.st_mode)), tarfile.REGTYPE)
        if stat.S_ISSOCK(info.st_mode):
            return                  # sockets are not archived (tar and docker skip them too)
        if member.type == tarfile.SYMTYPE:
            member.linkname = os.readlink(leaf, dir_fd=dir_fd)
        elif member.type in (tarfile.CHRTYPE, tarfile.BLKTYPE):
            member.devmajor, member.devminor = os.major(info.st_rdev), os.minor(info.st_rdev)
        elif member.type == tarfile.REGTYPE:
            key = (info.st_dev, info.st_ino)
            if info.st_nlink > 1 and key in self.links:
                member.type, member.linkname = tarfile.LNKTYPE, self.links[key]
            else:
                if info.st_nlink > 1:
                    self.links[key] = name
                yield from self._file(member, dir_fd, leaf)
                return
        yield self._out(member.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))

    def _file(self, member: tarfile.TarInfo, dir_fd: int, leaf: str) -> Iterator[bytes]:
        try:
            fd = os.open(leaf, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
        except FileNotFoundError:
            return
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                return              # swapped for something else since the walk saw it
            member.size = info.st_size
            member.pax_headers = {f"SCHILY.xattr.{key}": os.getxattr(fd, key).decode("utf-8", "surrogateescape")
                                  for key in os.listxattr(fd) if key.startswith(_XATTRS)}
            yield self._out(member.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
            left = member.size
            while left > 0:
                data = os.read(fd, min(CHUNK, left))
                if not data:
                    break
                left -= len(data)
                yield self._out(data)
            # A file that shrank while read is padded: the header promised `size` bytes.
            padding = left + (-member.size % BLOCK)
            if padding:
                yield self._out(b"\0" * padding)
        finally:
            os.close(fd)

    def end(self) -> bytes:
        """Two zero blocks, then zeros to a whole record, as tar writes them."""
        size = self.written + 2 * BLOCK
        return b"\0" * (2 * BLOCK + (-size % RECORD))
