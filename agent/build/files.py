"""COPY and ADD: the files of one instruction laid out as a layer tree.

The tree holds the destination's parent directories (with the metadata they already have in
the image, so the layer does not change them) and the copied files: modes as in the source (or
`--chmod`), owner root or `--chown`, times as in the source so an unchanged context gives the
same layer. Symbolic links are copied as links. A source that is a directory copies its
contents, as docker does. `ADD` of a local tar archive (plain, gzip, bzip2, xz, zstd) extracts
it through the image store's safe extractor; `ADD` of a URL is refused.

Files of another stage or image (`COPY --from`) are read from its layers merged by overlayfs,
mounted read-only for the copy; links inside it resolve inside that root, never on the host.
"""
from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from agent.errors import InvalidArgument
from agent.images.extract import extract_layer, remove_tree
from agent.images.overlay import unmount

_ARCHIVE_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")


def lookup(layers: list[Path], path: str) -> Path | None:
    """The file `path` (absolute) as the merged layers show it, or None: the highest layer that
    has it, unless a higher one whites it out. Enough for metadata and /etc/passwd lookups."""
    relative = path.strip("/")
    for layer in reversed(layers):
        candidate = layer / relative if relative else layer
        try:
            status = candidate.lstat()
        except OSError:
            continue
        if stat.S_ISCHR(status.st_mode) and status.st_rdev == 0:
            return None       # a whiteout
        return candidate
    return None


def resolve_owner(spec: str, layers: list[Path], where: str) -> tuple[int, int]:
    """--chown USER[:GROUP], numeric or named in the image's /etc/passwd and /etc/group."""
    user, _, group = spec.partition(":")
    uid = _resolve(user, layers, "/etc/passwd", 2, where)
    if group:
        gid = _resolve(group, layers, "/etc/group", 2, where)
    elif user.isdigit():
        gid = uid
    else:
        gid = _field_of(user, layers, "/etc/passwd", 3, where)
    return uid, gid


def _resolve(name: str, layers: list[Path], table: str, column: int, where: str) -> int:
    return int(name) if name.isdigit() else _field_of(name, layers, table, column, where)


def _field_of(name: str, layers: list[Path], table: str, column: int, where: str) -> int:
    found = lookup(layers, table)
    if found is not None and found.is_file() and not found.is_symlink():
        for line in found.read_text(errors="replace").splitlines():
            fields = line.split(":")
            if len(fields) > column and fields[0] == name and fields[column].isdigit():
                return int(fields[column])
    raise InvalidArgument(f"{where}: {name!r} is not in the image's {table}")


class TreeBuilder:
    """One layer tree under construction in `tree`, over the image's `layers`."""

    def __init__(self, tree: Path, layers: list[Path], owner: tuple[int, int] | None, mode: int | None,
                 skip: Callable[[Path], bool] | None = None) -> None:
        self.tree = tree
        self.layers = layers
        self.owner = owner if owner is not None else (0, 0)
        self.mode = mode
        self.skip = skip or (lambda _path: False)     # what .dockerignore leaves out of a context

    def parent_dirs(self, destination: str) -> Path:
        """Make `destination`'s directories in the tree, each with the image's metadata when the
        image has it (root-owned 0755 otherwise); the directory's path in the tree."""
        current = self.tree
        path = ""
        for part in [p for p in destination.split("/") if p]:
            path += "/" + part
            current = current / part
            if current.is_dir() and not current.is_symlink():
                continue
            current.mkdir()
            existing = lookup(self.layers, path)
            if existing is not None and existing.is_dir() and not existing.is_symlink():
                status = existing.lstat()
                os.chmod(current, stat.S_IMODE(status.st_mode))
                os.chown(current, status.st_uid, status.st_gid)
                os.utime(current, ns=(status.st_atime_ns, status.st_mtime_ns))
            else:
                os.chown(current, *self.owner)
                os.utime(current, (0, 0))
        return current

    def copy(self, source: Path, destination: str) -> None:
        """One file, link or whole directory (its contents) to the absolute `destination`."""
        status = source.lstat()
        if stat.S_ISDIR(status.st_mode):
            target = self.parent_dirs(destination)
            self._meta(source, target, status)
            for name in sorted(os.listdir(source)):
                if not self.skip(source / name):
                    self.copy(source / name, posixpath.join(destination, name))
            self._meta(source, target, status)      # the copies changed its mtime
            return
        parent = self.parent_dirs(posixpath.dirname(destination) or "/")
        target = parent / posixpath.basename(destination)
        if target.is_dir() and not target.is_symlink():
            remove_tree(target)
        elif os.path.lexists(target):
            target.unlink()
        if stat.S_ISLNK(status.st_mode):
            os.symlink(os.readlink(source), target)
        elif stat.S_ISREG(status.st_mode):
            shutil.copyfile(source, target, follow_symlinks=False)
        else:
            return          # sockets, devices and fifos are not copied, as docker's COPY skips them
        self._meta(source, target, status)

    def _meta(self, source: Path, target: Path, status: os.stat_result) -> None:
        link = stat.S_ISLNK(status.st_mode)
        os.chown(target, *self.owner, follow_symlinks=False)
        if not link:
            os.chmod(target, self.mode if self.mode is not None else stat.S_IMODE(status.st_mode))
        os.utime(target, ns=(status.st_mtime_ns, status.st_mtime_ns), follow_symlinks=False)

    def extract(self, archive: Path, destination: str, label: str) -> None:
        """ADD of a local archive: its contents under `destination`."""
        target = self.parent_dirs(destination)
        with tempfile.TemporaryDirectory(dir=self.tree.parent) as work:
            scratch = Path(work) / "x"
            scratch.mkdir()
            extract_layer(archive, scratch, whiteouts=False, label=label)
            for name in sorted(os.listdir(scratch)):
                merge_into(scratch / name, target / name)


def merge_into(source: Path, target: Path) -> None:
    """Move an extracted entry into the tree, merging directories."""
    if source.is_dir() and not source.is_symlink() and target.is_dir() and not target.is_symlink():
        for name in os.listdir(source):
            merge_into(source / name, target / name)
        return
    if target.is_dir() and not target.is_symlink():
        remove_tree(target)
    elif os.path.lexists(target):
        target.unlink()
    os.rename(source, target)


def is_archive(path: Path) -> bool:
    if not path.is_file() or path.is_symlink():
        return False
    with open(path, "rb") as handle:
        head = handle.read(512)
    if any(head.startswith(magic) for magic in _ARCHIVE_MAGIC):
        return True
    return len(head) >= 262 and head[257:262] == b"ustar"


def resolve_in_root(root: Path, path: str, where: str) -> Path:
    """`path` inside `root`, following symlinks as if `root` were `/` (at most 40 of them)."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root.joinpath(*resolved, part)
        if candidate.is_symlink():
            hops += 1
            if hops > 40:
                raise InvalidArgument(f"{where}: too many symbolic links resolving {path!r}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(part)
    return root.joinpath(*resolved)


@contextlib.contextmanager
def merged_root(layers: list[Path], scratch: Path) -> Iterator[Path]:
    """The layers as one read-only tree: the layer itself when there is one, else an overlay."""
    if not layers:
        empty = scratch / "empty"
        empty.mkdir()
        yield empty
        return
    if len(layers) == 1:
        yield layers[0]
        return
    import ctypes
    target = scratch / "merged"
    target.mkdir()
    options = "lowerdir=" + ":".join(str(layer) for layer in reversed(layers))
    libc = ctypes.CDLL(None, use_errno=True)
    ms_rdonly = 1
    if libc.mount(b"overlay", str(target).encode(), b"overlay", ms_rdonly, options.encode()) != 0:
        errno = ctypes.get_errno()
        raise InvalidArgument(f"mounting the layers of COPY --from: {os.strerror(errno)}")
    try:
        yield target
    finally:
        unmount(target, lazy_if_busy=True)
