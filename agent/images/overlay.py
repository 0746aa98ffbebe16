"""Mounting and unmounting overlayfs with the mount(2) and umount2(2) syscalls.

Called through ctypes rather than the `mount` command: ~0.15 ms instead of ~3 ms per mount
(KERNEL-NOTES.md). Layers are passed lowest first, the way the image store lists them;
overlayfs wants `lowerdir=` topmost first, and this module does that reversal in one place.
"""
from __future__ import annotations

import ctypes
import os
from errno import EBUSY, EINVAL, ENOENT
from pathlib import Path

from agent.errors import InvalidArgument, KernelError
from agent.mount_table import MOUNTINFO, mounted_at, read_mount_table

MNT_DETACH = 2
# The kernel copies at most one page of mount options (a 4 KiB page, less the final NUL).
_MAX_OPTIONS = 4095
# overlayfs splits options on ',' and lowerdir on ':'; refusing these is simpler and safer
# than escaping, and the store never makes such paths.
_FORBIDDEN = (",", ":", "\\", "\n")


def _libc() -> ctypes.CDLL:
    # dlopen(NULL) is the already-loaded libc: cheap, and no handle kept at module level.
    return ctypes.CDLL(None, use_errno=True)


def _checked(path: Path, role: str) -> str:
    text = os.fspath(path)
    bad = [char for char in _FORBIDDEN if char in text]
    if bad:
        raise InvalidArgument(f"overlay {role} {text!r} contains {bad[0]!r}, which overlayfs options cannot carry",
                              hint="use a state directory whose path has no ',' or ':'")
    return text


def overlay_options(lower_dirs: list[Path], upper: Path, work: Path) -> str:
    """The option string for mount(2): lowerdir topmost first, each layer once."""
    if not lower_dirs:
        raise InvalidArgument("overlay: at least one lower directory (image layer) is needed")
    # A layer listed twice adds nothing below its topmost copy, and overlayfs may refuse
    # the same directory twice; keep the topmost occurrence only.
    topmost_first: list[str] = []
    for layer in reversed(lower_dirs):
        text = _checked(layer, "lower directory")
        if text not in topmost_first:
            topmost_first.append(text)
    options = (f"lowerdir={':'.join(topmost_first)},upperdir={_checked(upper, 'upper directory')},"
               f"workdir={_checked(work, 'work directory')}")
    if len(options) > _MAX_OPTIONS:
        raise KernelError(f"overlay at {str(upper)!r}: {len(lower_dirs)} layers make {len(options)} bytes "
                          f"of mount options, more than the kernel's {_MAX_OPTIONS}",
                          hint="flatten the image (docker export | corral image import) or use a shorter state root")
    return options


def mount_overlay(lower_dirs: list[Path], upper: Path, work: Path, target: Path, extra: str = "") -> None:
    """Mount an overlay of `lower_dirs` (lowest first) with `upper`/`work` at `target`;
    `extra` options (like metacopy=on) are appended."""
    options = overlay_options(lower_dirs, upper, work) + (f",{extra}" if extra else "")
    result = _libc().mount(b"overlay", os.fsencode(target), b"overlay", 0, options.encode())
    if result != 0:
        errno = ctypes.get_errno()
        raise KernelError(f"mounting overlay at {str(target)!r}: {os.strerror(errno)}",
                          hint=f"options were {options}")


def clear_volatile_mark(work: Path) -> None:
    """Remove what a `volatile` overlay left in its work directory (`work/incompat/volatile`),
    which makes the kernel refuse every later mount of it ("overlay with incompat feature
    'volatile' cannot be mounted"); the kernel's docs say to throw that directory away. The
    work directory is the overlay's scratch space: nothing else is kept there."""
    inner = work / "work"
    if (inner / "incompat" / "volatile").exists():
        from agent.images.extract import remove_tree
        remove_tree(inner)


def _umount2(target: Path, lazy_if_busy: bool) -> int:
    """umount2(2); the errno, 0 on success."""
    libc = _libc()
    result = libc.umount2(os.fsencode(target), 0)
    errno = ctypes.get_errno() if result != 0 else 0
    if errno == EBUSY and lazy_if_busy:
        result = libc.umount2(os.fsencode(target), MNT_DETACH)
        errno = ctypes.get_errno() if result != 0 else 0
    return errno


def _unmount_error(target: Path, errno: int) -> KernelError:
    return KernelError(f"unmounting {str(target)!r}: {os.strerror(errno)}",
                       hint="see what holds it with `fuser -vm PATH`" if errno == EBUSY else None)


def unmount(target: Path, *, lazy_if_busy: bool = False) -> None:
    """umount2(2). With `lazy_if_busy`, a busy mount is detached at once (MNT_DETACH) and the
    kernel finishes when its last user goes: the path is free either way."""
    errno = _umount2(target, lazy_if_busy)
    if errno:
        raise _unmount_error(target, errno)


def unmount_stack(target: Path, *, limit: int = 8) -> int:
    """Unmount whatever is mounted at `target` (several overlays stacked by a crash each need
    an unmount; a busy one is detached lazily) without reading the mount table, which takes the
    kernel's global mount lock: umount2 answers EINVAL once `target` is no mount point (ENOENT
    when it is gone). Returns how many were unmounted."""
    for count in range(limit + 1):
        errno = _umount2(target, lazy_if_busy=True)
        if errno in (EINVAL, ENOENT):
            return count
        if errno:
            raise _unmount_error(target, errno)
    raise KernelError(f"{str(target)!r} is still mounted after {limit} unmounts", hint="check `findmnt -R PATH`")


def is_mounted(target: Path, mountinfo: Path = MOUNTINFO) -> bool:
    """Whether something is mounted exactly at `target` in this mount namespace."""
    try:
        mounts = read_mount_table(mountinfo)
    except OSError as exc:
        raise KernelError(f"reading {str(mountinfo)!r}: {exc.strerror}") from None
    return mounted_at(mounts, os.path.realpath(target))
