"""What a container changed in its root: `corral diff`, read from the overlay's upper directory.

Everything the container wrote is in `upper/`; overlayfs marks a deleted file with a whiteout
(a 0/0 character device) and a directory whose lower content is hidden with the opaque xattr.
So each entry of upper is `A` (added: no lower layer has it), `C` (changed: a lower layer has
it), or `D` (a whiteout), and the lower entries under an opaque directory that upper does not
have again are `D` too. Paths the launcher only made as mount points (an empty `/data` for a
volume) are left out, as docker leaves out its init layer.
"""
from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

_OPAQUE = "trusted.overlay.opaque"
ADDED, CHANGED, DELETED = "A", "C", "D"


def _is_whiteout(info: os.stat_result) -> bool:
    return stat.S_ISCHR(info.st_mode) and info.st_rdev == 0


def _in_lowers(rel: str, lowers: list[Path]) -> bool:
    """Whether the image (layers topmost first) shows `rel`."""
    for layer in lowers:
        try:
            info = os.lstat(layer / rel)
        except (FileNotFoundError, NotADirectoryError):
            continue
        return not _is_whiteout(info)
    return False


def _opaque_children(name: str, dir_fd: int) -> set[str] | None:
    """The entries of an opaque directory (opened without following links), or None if it is not one."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        if os.getxattr(fd, _OPAQUE) != b"y":
            return None
        return set(os.listdir(fd))
    except OSError:
        return None
    finally:
        os.close(fd)


def changes(upper: Path, lowers_lowest_first: list[Path], mount_points: Iterable[str] = ()) -> list[tuple[str, str]]:
    """(kind, container path) for every change, sorted by path."""
    lowers = list(reversed(lowers_lowest_first))
    skip = {point.rstrip("/") for point in mount_points}
    found: dict[str, str] = {}
    for directory, dirnames, filenames, dir_fd in os.fwalk(upper, follow_symlinks=False):
        rel_dir = os.path.relpath(directory, upper)
        for name in dirnames + filenames:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            try:
                info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if _is_whiteout(info):
                found["/" + rel] = DELETED
                continue
            in_image = _in_lowers(rel, lowers)
            if not in_image and "/" + rel in skip:
                continue
            found["/" + rel] = CHANGED if in_image else ADDED
            kept = _opaque_children(name, dir_fd) if stat.S_ISDIR(info.st_mode) and in_image else None
            if kept is not None:
                for layer in lowers:
                    try:
                        hidden = os.listdir(layer / rel)
                    except OSError:
                        continue
                    for child in hidden:
                        if child not in kept:
                            found.setdefault(f"/{rel}/{child}", DELETED)
    return sorted(((kind, path) for path, kind in found.items()), key=lambda item: item[1])
