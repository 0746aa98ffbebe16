"""A tar stream written into a directory of a container (or of the host), never outside it.

Each member's parent directory is opened through `ContainerTree.open_dir` (openat2 with
RESOLVE_IN_ROOT in the area that holds it), and the member itself is created relative to that
descriptor with O_NOFOLLOW / AT_SYMLINK_NOFOLLOW: a symlink the container planted is followed
the way the container would follow it, inside its own root, and a member can never be written
to a host path. Names with `..` are refused; a directory is never replaced by a non-directory
nor the other way round (Docker's noOverwriteDirNonDir, which `docker cp` always sets).
Ownership is the archive's (`cp -a`) or one given owner (root's in a container, the
caller's on the host); device nodes are skipped (a
container's /dev comes from the launcher, and creating nodes is not `cp`'s business).
"""
from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import stat
import tarfile
from collections.abc import Iterator
from typing import IO, Callable, Protocol

from agent.errors import Conflict, CorralError, InvalidArgument, KernelError, NotFound
from agent.files.resolve import ContainerTree, normalize

CHUNK = 1 << 20


IdMap = Callable[[int, int], tuple[int, int]]


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class ChunkReader:
    """A read()-able file over an iterator of byte chunks (a tar stream piped into extraction)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._pending) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._pending += chunk
        if size < 0:
            data, self._pending = self._pending, b""
        else:
            data, self._pending = self._pending[:size], self._pending[size:]
        return data


class _Extractor:
    def __init__(self, tree: ContainerTree, dest: str, *, owner: tuple[int, int] | None,
                 rename: tuple[str, str] | None, ids: IdMap | None = None) -> None:
        self.tree = tree
        self.dest = normalize(dest)
        self.owner = owner                      # None: the archive's
        self.ids = ids                          # container ids -> host ids (a user namespace)
        self.rename = rename
        self.parents: dict[str, int] = {}       # container path -> O_PATH fd of that directory
        self.directories: list[tuple[str, tarfile.TarInfo]] = []

    def close(self) -> None:
        for fd in self.parents.values():
            os.close(fd)
        self.parents.clear()

    def path_of(self, name: str) -> str | None:
        parts = [part for part in name.split("/") if part not in ("", ".")]
        if ".." in parts:
            raise InvalidArgument(f"archive member {name!r} climbs out of the destination with '..'",
                                  field="archive")
        rel = "/".join(parts)
        if self.rename is not None:
            old, new = self.rename
            if rel == old or rel.startswith(old + "/"):
                rel = new + rel[len(old):]
        if not rel:
            return None
        return normalize(posixpath.join(self.dest, rel))

    def parent(self, path: str) -> int:
        """The O_PATH fd of the directory holding `path`, made (mkdir -p) where missing."""
        directory = posixpath.dirname(path)
        if directory in self.parents:
            return self.parents[directory]
        try:
            fd, _area, _real = self.tree.open_dir(directory, writing=True)
        except NotFound:
            if directory == "/" or not directory.startswith(self.dest):
                raise
            above = self.parent(directory)
            with contextlib.suppress(FileExistsError):
                os.mkdir(posixpath.basename(directory), 0o755, dir_fd=above)
            fd, _area, _real = self.tree.open_dir(directory, writing=True)
        self.parents[directory] = fd
        return fd

    def forget(self, path: str) -> None:
        """`path` is being replaced: descriptors of it and below are no longer what it names."""
        for known in [known for known in self.parents if known == path or known.startswith(path + "/")]:
            os.close(self.parents.pop(known))

    def add(self, member: tarfile.TarInfo, data: IO[bytes] | None) -> None:
        path = self.path_of(member.name)
        if path is None:
            if member.isdir():
                self.directories.append((self.dest, member))
            return
        if member.ischr() or member.isblk():
            return
        parent = self.parent(path)
        leaf = posixpath.basename(path)
        existing = self._existing(parent, leaf)
        if existing is not None and stat.S_ISDIR(existing.st_mode) != member.isdir():
            kind = "directory" if member.isdir() else "non-directory"
            raise Conflict(f"container {self.tree.name}: cannot overwrite {path} with a {kind}",
                           hint="remove it first, or copy to another destination")
        if member.isdir():
            if existing is None:
                os.mkdir(leaf, 0o700, dir_fd=parent)
            self.directories.append((path, member))
            return
        if existing is not None:
            self.forget(path)
            os.unlink(leaf, dir_fd=parent)
        if member.isreg():
            fd = os.open(leaf, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=parent)
            with os.fdopen(fd, "wb") as out:
                if data is not None:
                    shutil.copyfileobj(data, out, CHUNK)
                self._finish_fd(out.fileno(), member)
        elif member.issym():
            os.symlink(member.linkname, leaf, dir_fd=parent)
            self._owner_by_name(parent, leaf, member)
        elif member.islnk():
            target = self.path_of(member.linkname)
            if target is None:
                raise InvalidArgument(f"archive member {member.name!r} is a hard link to the destination itself",
                                      field="archive")
            source_parent = self.parent(target)
            os.link(posixpath.basename(target), leaf, src_dir_fd=source_parent, dst_dir_fd=parent,
                    follow_symlinks=False)
        elif member.isfifo():
            os.mkfifo(leaf, 0o600, dir_fd=parent)
            self._owner_by_name(parent, leaf, member)
            os.chmod(leaf, member.mode & 0o7777, dir_fd=parent)

    @staticmethod
    def _existing(parent: int, leaf: str) -> os.stat_result | None:
        try:
            return os.stat(leaf, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def _owner(self, member: tarfile.TarInfo) -> tuple[int, int]:
        uid, gid = (member.uid, member.gid) if self.owner is None else self.owner
        return (uid, gid) if self.ids is None else self.ids(uid, gid)

    def _finish_fd(self, fd: int, member: tarfile.TarInfo) -> None:
        """Owner, then mode (chown clears set-uid bits), xattrs, mtime."""
        os.fchown(fd, *self._owner(member))
        os.fchmod(fd, member.mode & 0o7777)
        for key, value in member.pax_headers.items():
            name = key[len("SCHILY.xattr."):]
            if key.startswith("SCHILY.xattr.") and name.startswith(("user.", "security.capability")):
                with contextlib.suppress(OSError):
                    os.setxattr(fd, name, value.encode("utf-8", "surrogateescape"))
        os.utime(fd, (member.mtime, member.mtime))

    def _owner_by_name(self, parent: int, leaf: str, member: tarfile.TarInfo) -> None:
        os.chown(leaf, *self._owner(member), dir_fd=parent, follow_symlinks=False)
        os.utime(leaf, (member.mtime, member.mtime), dir_fd=parent, follow_symlinks=False)

    def finish_directories(self) -> None:
        """Deepest first: a directory's mtime is set after its children are written."""
        for path, member in sorted(self.directories, key=lambda item: item[0].count("/"), reverse=True):
            try:
                fd, _area, _real = self.tree.open_dir(path, writing=True)
            except NotFound:
                continue
            try:
                # O_PATH cannot fchown; reopen the same directory (not a path) to change it.
                real = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
            finally:
                os.close(fd)
            try:
                self._finish_fd(real, member)
            finally:
                os.close(real)


def extract(tree: ContainerTree, dest: str, stream: Readable, *, owner: tuple[int, int] | None = (0, 0),
            rename: tuple[str, str] | None = None, ids: IdMap | None = None) -> int:
    """Write the tar in `stream` into the existing directory `dest` of the tree; returns the
    number of members. Files belong to `owner` (uid, gid), or with None to whom the archive
    says; `ids` then maps them to the host's (a container in a user namespace). `rename=(old, new)`
    renames the top entry `old` to `new` (cp's `DEST`)."""
    fd, _area, _real = tree.open_dir(dest, writing=True)      # NotFound / read-only before reading
    os.close(fd)
    extractor = _Extractor(tree, dest, owner=owner, rename=rename, ids=ids)
    count = 0
    try:
        with tarfile.open(fileobj=stream, mode="r|") as archive:  # type: ignore[call-overload]
            for member in archive:
                extractor.add(member, archive.extractfile(member) if member.isreg() else None)
                count += 1
        extractor.finish_directories()
    except tarfile.TarError as exc:
        raise InvalidArgument(f"the archive is not a readable tar stream: {exc}", field="archive") from None
    except CorralError:
        raise
    except OSError as exc:
        raise KernelError(f"container {tree.name}: writing into {dest}: {exc.strerror}"
                          + (f": {exc.filename}" if exc.filename else "")) from None
    finally:
        extractor.close()
    return count
