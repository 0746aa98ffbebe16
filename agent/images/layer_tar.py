"""A reproducible tar of an extracted layer tree, for layers that exist only extracted.

Imported and committed layers (and busybox's) were never a registry blob. To push one, its tree
is written back as a tar: names sorted, overlayfs whiteouts (0/0 character devices, the opaque
xattr) turned back into OCI `.wh.` entries, owners and modes as stored, times as stored, PAX
format, gzip with no name and mtime 0. The same tree always gives the same bytes, so a re-push
sends nothing new.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import stat
import tarfile
from pathlib import Path
from typing import Protocol

_OPAQUE_XATTR = "trusted.overlay.opaque"
CHUNK = 1 << 20


class _Writable(Protocol):
    def write(self, data: bytes, /) -> int: ...

    def flush(self) -> None: ...


class _Hashing:
    """A write-only file that hashes what passes into the next writer."""

    def __init__(self, raw: _Writable) -> None:
        self.raw = raw
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        return int(self.raw.write(data))

    def flush(self) -> None:
        self.raw.flush()


def _info(path: Path, name: str) -> tarfile.TarInfo:
    status = path.lstat()
    info = tarfile.TarInfo(name)
    info.mode = stat.S_IMODE(status.st_mode)
    info.uid, info.gid = status.st_uid, status.st_gid
    info.mtime = int(status.st_mtime)
    info.uname = info.gname = ""
    return info


def _is_whiteout(status: os.stat_result) -> bool:
    return stat.S_ISCHR(status.st_mode) and status.st_rdev == 0


def _opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, _OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def write(tree: Path, out: Path) -> tuple[str, str, int]:
    """(diff_id, blob digest, blob size) of the gzip'd tar of `tree` written to `out`."""
    with open(out, "wb") as raw:
        blob = _Hashing(raw)
        with gzip.GzipFile(filename="", mode="wb", fileobj=blob, mtime=0) as zipped:
            plain = _Hashing(zipped)
            _write_tar(plain, tree)
    return "sha256:" + plain.hash.hexdigest(), "sha256:" + blob.hash.hexdigest(), blob.size


def write_plain(tree: Path, out: _Writable) -> tuple[str, int]:
    """(diff_id, size) of the uncompressed tar of `tree` written to `out` (docker save's layers)."""
    plain = _Hashing(out)
    _write_tar(plain, tree)
    return "sha256:" + plain.hash.hexdigest(), plain.size


def _write_tar(out: _Hashing, tree: Path) -> None:
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as archive:  # type: ignore[call-overload]
        _add_tree(archive, tree)


def _add_tree(archive: tarfile.TarFile, tree: Path) -> None:
    hardlinks: dict[tuple[int, int], str] = {}
    for directory, subdirs, files in os.walk(tree):
        subdirs.sort()
        base = Path(directory)
        relative = base.relative_to(tree)
        if relative != Path("."):
            archive.addfile(_dir_info(base, str(relative)))
        if _opaque(base):
            marker = tarfile.TarInfo(str(relative / ".wh..wh..opq") if relative != Path(".") else ".wh..wh..opq")
            archive.addfile(marker)
        for name in sorted(files + [d for d in subdirs if (base / d).is_symlink()]):
            path = base / name
            member = str(relative / name) if relative != Path(".") else name
            status = path.lstat()
            if _is_whiteout(status):
                archive.addfile(tarfile.TarInfo(str(Path(member).parent / f".wh.{Path(member).name}")
                                                if "/" in member else f".wh.{member}"))
                continue
            info = _info(path, member)
            if stat.S_ISLNK(status.st_mode):
                info.type, info.linkname = tarfile.SYMTYPE, os.readlink(path)
                archive.addfile(info)
            elif stat.S_ISREG(status.st_mode):
                key = (status.st_dev, status.st_ino)
                if status.st_nlink > 1 and key in hardlinks:
                    info.type, info.linkname = tarfile.LNKTYPE, hardlinks[key]
                    archive.addfile(info)
                    continue
                hardlinks[key] = member
                info.size = status.st_size
                with open(path, "rb") as handle:
                    archive.addfile(info, handle)
            elif stat.S_ISFIFO(status.st_mode):
                info.type = tarfile.FIFOTYPE
                archive.addfile(info)
        subdirs[:] = [d for d in subdirs if not (base / d).is_symlink()]


def _dir_info(path: Path, name: str) -> tarfile.TarInfo:
    info = _info(path, name)
    info.type = tarfile.DIRTYPE
    return info
