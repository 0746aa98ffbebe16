"""Safe layer extraction: a tar stream written into a fresh directory, OCI whiteouts included.

Extraction never trusts the archive: absolute names, `..`, writing through a symbolic link,
hard links to anything outside the tree and relative symlinks that climb above the root are
refused with an error naming the member. Absolute symlinks are kept as they are: they are
resolved inside the container's root, and extraction itself never follows a link. Device nodes
are skipped (a container gets its /dev from the launcher) and noted in the layer's metadata.
OCI whiteouts (`.wh.NAME`, `.wh..wh..opq`) become what overlayfs reads: a 0/0 character
device, or the opaque xattr on the directory.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from agent.errors import InvalidArgument, KernelError, NotFound
from agent.images.streams import CHUNK, HashingReader, Readable, decode_errors, decompressor

_OPAQUE_XATTR = "trusted.overlay.opaque"
_WHITEOUT_PREFIX = ".wh."
_OPAQUE_MARKER = ".wh..wh..opq"
_MAX_NOTES = 20
# PAX xattrs applied to extracted files; trusted.* is left out on purpose: trusted.overlay.*
# from an archive would let an image forge overlayfs redirects and whiteouts.
_XATTR_NAMESPACES = ("user.", "security.")


# A corrupt archive: the tar reader's errors and each decompressor's.
_UNREADABLE: tuple[type[BaseException], ...] = (tarfile.TarError, *decode_errors())


@dataclass
class Extracted:
    """What extracting one layer found: its digests, its size and what was skipped."""

    digest: str                     # sha256 of the uncompressed tar stream
    size: int                       # bytes of regular files
    notes: list[str] = field(default_factory=list)
    blob_digest: str = ""           # sha256 of the file as given (compressed)


class _LayerWriter:
    """Writes tar members into a fresh directory, refusing anything that would escape it."""

    def __init__(self, root: Path, source: str, *, whiteouts: bool) -> None:
        self.root = root
        self.source = source
        self.whiteouts = whiteouts
        self.as_root = os.geteuid() == 0
        self.size = 0
        self.notes: list[str] = []
        self.skipped = 0
        self.directories: list[tuple[Path, tarfile.TarInfo]] = []
        # Directories below the root already walked component by component (no symlink on the
        # way): most members share their parent with the one before, so each path is lstat'ed once.
        self.verified: set[str] = {""}

    # -- checks

    def _refuse(self, member: str, why: str) -> InvalidArgument:
        return InvalidArgument(f"{self.source}: member {member!r} {why}; refusing to import",
                               hint="the archive may be malicious; build it from a root filesystem "
                                    "with relative paths (docker export does)")

    def _relative(self, name: str, member: str) -> str:
        if name.startswith("/"):
            raise self._refuse(member, "has an absolute path")
        parts = [part for part in name.split("/") if part not in ("", ".")]
        if ".." in parts:
            raise self._refuse(member, "climbs out of the root with '..'")
        return "/".join(parts)

    def _parent(self, rel: str, member: str, *, create: bool = True) -> Path:
        """The directory that holds `rel`, created as needed, never reached through a symlink."""
        parent_rel = rel.rsplit("/", 1)[0] if "/" in rel else ""
        if parent_rel in self.verified:
            return self.root / parent_rel if parent_rel else self.root
        current = self.root
        walked: list[str] = []
        for part in rel.split("/")[:-1]:
            current = current / part
            walked.append(part)
            try:
                info = os.lstat(current)
            except FileNotFoundError:
                if not create:
                    raise self._refuse(member, f"refers to {'/'.join(walked)!r}, which does not exist") from None
                os.mkdir(current, 0o755)
                continue
            if stat.S_ISLNK(info.st_mode):
                raise self._refuse(member, f"would be written through the symbolic link {'/'.join(walked)!r}")
            if not stat.S_ISDIR(info.st_mode):
                raise self._refuse(member, f"is below {'/'.join(walked)!r}, which is not a directory")
        # Every prefix is now a real directory; it stays one until `_clear` removes it.
        self.verified.update("/".join(walked[:depth]) for depth in range(1, len(walked) + 1))
        return current

    def _clear(self, path: Path, *, keep_directory: bool = False) -> None:
        """Make room for a member: a later entry for the same path replaces the earlier one."""
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(info.st_mode):
            if not keep_directory:
                self._forget(path)
                remove_tree(path)
        else:
            os.unlink(path)

    def _forget(self, directory: Path) -> None:
        """A directory is being removed: it and everything below it are no longer verified."""
        rel = str(directory.relative_to(self.root))
        self.verified = {known for known in self.verified if known != rel and not known.startswith(rel + "/")}

    def _note(self, text: str) -> None:
        if len(self.notes) < _MAX_NOTES:
            self.notes.append(text)
        else:
            self.skipped += 1

    # -- members

    def add(self, member: tarfile.TarInfo, data: IO[bytes] | None) -> None:
        rel = self._relative(member.name, member.name)
        base = rel.rsplit("/", 1)[-1]
        if self.whiteouts and base.startswith(_WHITEOUT_PREFIX):
            self._whiteout(rel, base, member.name)
            return
        if rel == "":
            if member.isdir():
                self.directories.append((self.root, member))
            return
        path = self._parent(rel, member.name) / base
        if member.isdir():
            self._clear(path, keep_directory=True)
            if not path.is_dir():
                os.mkdir(path, 0o700)
            self.directories.append((path, member))
        elif member.isreg():
            self._clear(path)
            self._write_file(path, member, data)
        elif member.issym():
            self._symlink(path, rel, member)
        elif member.islnk():
            self._hardlink(path, member)
        elif member.isfifo():
            self._clear(path)
            os.mkfifo(path, 0o600)
            self._finish(path, member)
        elif member.ischr() or member.isblk():
            kind = "character" if member.ischr() else "block"
            self._note(f"skipped {kind} device {rel} ({member.devmajor}:{member.devminor})")
        else:
            self._note(f"skipped {rel}: unsupported tar entry type {member.type!r}")

    def _write_file(self, path: Path, member: tarfile.TarInfo, data: IO[bytes] | None) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as out:
            if data is not None:
                shutil.copyfileobj(data, out, CHUNK)
        self.size += member.size
        self._finish(path, member)

    def _symlink(self, path: Path, rel: str, member: tarfile.TarInfo) -> None:
        target = member.linkname
        if not target:
            raise self._refuse(member.name, "is a symbolic link with an empty target")
        if not target.startswith("/"):
            # Resolved lexically from the link's directory: a relative target that climbs
            # above the root is never meaningful in a root filesystem, only an attack.
            depth = rel.count("/")
            for part in target.split("/"):
                if part == "..":
                    depth -= 1
                    if depth < 0:
                        raise self._refuse(member.name, f"is a symbolic link to {target!r}, outside the root")
                elif part not in ("", "."):
                    depth += 1
        self._clear(path)
        os.symlink(target, path)
        self._finish(path, member)

    def _hardlink(self, path: Path, member: tarfile.TarInfo) -> None:
        if member.linkname.startswith("/") or ".." in member.linkname.split("/"):
            raise self._refuse(member.name, f"is a hard link to {member.linkname!r}, outside the root")
        target_rel = self._relative(member.linkname, member.name)
        if not target_rel:
            raise self._refuse(member.name, "is a hard link to the root directory")
        target = self._parent(target_rel, member.name, create=False) / target_rel.rsplit("/", 1)[-1]
        try:
            info = os.lstat(target)
        except FileNotFoundError:
            raise self._refuse(member.name, f"is a hard link to {member.linkname!r}, "
                                            "which is not earlier in the archive") from None
        if stat.S_ISDIR(info.st_mode):
            raise self._refuse(member.name, f"is a hard link to the directory {member.linkname!r}")
        with contextlib.suppress(FileNotFoundError):
            existing = os.lstat(path)
            if (existing.st_dev, existing.st_ino) == (info.st_dev, info.st_ino):
                return
        self._clear(path)
        os.link(target, path, follow_symlinks=False)

    def _whiteout(self, rel: str, base: str, member: str) -> None:
        """OCI whiteouts become what overlayfs reads: a 0/0 char device, or an opaque xattr."""
        parent = self._parent(rel, member)
        if base == _OPAQUE_MARKER:
            try:
                os.setxattr(parent, _OPAQUE_XATTR, b"y", follow_symlinks=False)
            except OSError as exc:
                raise KernelError(f"{self.source}: marking directory {rel.rsplit('/', 1)[0] or '/'!r} opaque "
                                  f"({_OPAQUE_XATTR}): {exc.strerror}",
                                  hint="importing OCI layers with whiteouts needs root (CAP_SYS_ADMIN) "
                                       "on a filesystem with xattrs") from None
            return
        hidden = base[len(_WHITEOUT_PREFIX):]
        if not hidden or hidden in (".", ".."):
            raise self._refuse(member, "is a whiteout of nothing")
        path = parent / hidden
        self._clear(path)
        try:
            os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(0, 0))
        except OSError as exc:
            raise KernelError(f"{self.source}: creating the overlayfs whiteout for "
                              f"{str(Path(rel).parent / hidden)!r}: {exc.strerror}",
                              hint="importing OCI layers with whiteouts needs root (CAP_MKNOD)") from None

    # -- metadata

    def _finish(self, path: Path, member: tarfile.TarInfo) -> None:
        """Owner, then mode (chown clears set-uid bits), xattrs and mtime, never following links."""
        link = member.issym()
        if self.as_root:
            os.chown(path, member.uid, member.gid, follow_symlinks=False)
        if not link:
            os.chmod(path, member.mode & 0o7777)
            for key, value in member.pax_headers.items():
                if key.startswith("SCHILY.xattr."):
                    name = key[len("SCHILY.xattr."):]
                    if name.startswith(_XATTR_NAMESPACES):
                        try:
                            os.setxattr(path, name, value.encode("utf-8", "surrogateescape"),
                                        follow_symlinks=False)
                        except OSError as exc:
                            self._note(f"xattr {name} not kept on {member.name}: {exc.strerror}")
        os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)

    def close(self) -> None:
        # Deepest first: setting a directory's mtime before filling it would be undone, and a
        # read-only directory must not be made so before its children are written.
        for path, member in sorted(self.directories, key=lambda item: len(item[0].parts), reverse=True):
            self._finish(path, member)
        if self.skipped:
            self.notes.append(f"... and {self.skipped} more")


def extract_layer(source: Path | Readable, dest: Path, *, whiteouts: bool, label: str | None = None) -> Extracted:
    """Extract the tar (optionally compressed) at `source`, a path or a readable stream (a blob
    still being downloaded), into the empty directory `dest`."""
    label = label or str(source)
    raw: Readable
    if isinstance(source, (str, Path)):
        try:
            raw = opened = open(source, "rb")       # noqa: SIM115 - closed by the with below
        except FileNotFoundError:
            raise NotFound(f"archive {label!r} not found",
                           hint="give the path of a tar file, like the one `docker export` writes") from None
        except OSError as exc:
            raise KernelError(f"reading archive {label!r}: {exc.strerror}") from None
        owned: contextlib.AbstractContextManager = opened
    else:
        raw, owned = source, contextlib.nullcontext()      # the caller's stream: the caller closes it
    with owned:
        blob = HashingReader(raw)
        writer = _LayerWriter(dest, label, whiteouts=whiteouts)
        try:
            stream = decompressor(blob, label)
            with stream:
                tar_bytes = HashingReader(stream)
                with tarfile.open(fileobj=tar_bytes, mode="r|") as archive:  # type: ignore[call-overload]
                    for member in archive:
                        writer.add(member, archive.extractfile(member) if member.isreg() else None)
                writer.close()
                tar_bytes.drain()       # the end-of-archive blocks are part of the digest
            blob.drain()
        except _UNREADABLE as exc:
            if isinstance(exc, OSError) and exc.errno is not None:
                raise KernelError(f"extracting {label!r} into {str(dest)!r}: {exc.strerror}"
                                  + (f": {exc.filename}" if exc.filename else "")) from None
            raise InvalidArgument(f"{label!r} is not a readable tar archive: {exc}",
                                  hint="accepted: .tar, .tar.gz, .tar.xz (docker export writes .tar)") from None
    return Extracted(digest=tar_bytes.digest, size=writer.size, notes=writer.notes,
                     blob_digest=blob.digest)


def remove_tree(path: Path) -> None:
    """rm -rf that also copes with read-only directories; a missing path is fine."""
    def retry(function: Any, name: str, _exc: Any) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(name), 0o700)
            function(name)
    with contextlib.suppress(FileNotFoundError):
        if os.path.islink(path) or not os.path.isdir(path):
            os.unlink(path)
            return
        shutil.rmtree(path, onerror=retry)
