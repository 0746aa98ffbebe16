"""The image's files owned by the container's mapped ids, two ways (docs/security.md).

- **idmapped layers** (kernel >= 5.19 for overlay over idmapped layers, 6.13 for layers given
  as file descriptors): each image layer is cloned as a detached mount (`open_tree`) carrying
  the container's mapping (`mount_setattr(MOUNT_ATTR_IDMAP)`), and the overlay is built from
  those with the new mount API (`fsconfig(FSCONFIG_SET_FD, "lowerdir+")`). Nothing is copied
  or changed on disk; the shared layers stay owned by 0..65535.
- **chown** (fallback): a plain overlay with `metacopy=on`, then every entry is chowned through
  it, so each file's metadata is copied up with its shifted owner (data stays in the layer).
  Costs a walk of the image and an inode per file in the container's upper directory.

The user namespace an idmapped mount needs comes from a short-lived child (`hold_userns`).
"""
from __future__ import annotations

import ctypes
import logging
import os
import signal
import stat
import threading
from pathlib import Path

from agent.errors import KernelError
from agent.images.overlay import mount_overlay, overlay_options
from agent.userns.ranges import IdRange

log = logging.getLogger(__name__)

IDMAP, CHOWN = "idmapped", "chown"

# x86_64 and arm64 share these (the new mount API came after the syscall tables unified).
_SYS_OPEN_TREE, _SYS_MOVE_MOUNT, _SYS_FSOPEN, _SYS_FSCONFIG, _SYS_FSMOUNT, _SYS_MOUNT_SETATTR = \
    428, 429, 430, 431, 432, 442
_OPEN_TREE_CLONE, _O_CLOEXEC, _AT_RECURSIVE, _AT_EMPTY_PATH, _AT_FDCWD = 1, 0o2000000, 0x8000, 0x1000, -100
_MOUNT_ATTR_IDMAP = 0x00100000
_FSCONFIG_SET_STRING, _FSCONFIG_SET_FD, _FSCONFIG_CMD_CREATE = 1, 5, 6
_MOVE_MOUNT_F_EMPTY_PATH = 4
_CLONE_VM, _CLONE_NEWUSER = 0x100, 0x10000000
_HOLD_STACK = 64 * 1024


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def _call(number: int, *args, what: str) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    result = libc.syscall(number, *args)
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")
    return result


def hold_userns(idrange: IdRange) -> int:
    """An fd of a user namespace mapped as `idrange` (the caller closes it).

    The namespace comes from a child cloned with CLONE_NEWUSER|CLONE_VM that runs libc's
    `pause()` on a stack of its own until it is killed here: no exec and no copy of the daemon's
    memory (forking this process costs 7-10 ms; spawning a helper about 1 ms; this 0.05 ms). It
    shares our memory but only ever runs `pause`, so it touches no Python state.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    clone = libc.clone
    clone.restype = ctypes.c_int
    clone.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    stack = ctypes.create_string_buffer(_HOLD_STACK)
    top = (ctypes.addressof(stack) + _HOLD_STACK) & ~15
    child = clone(ctypes.cast(libc.pause, ctypes.c_void_p), top, _CLONE_NEWUSER | _CLONE_VM | signal.SIGCHLD, None)
    if child < 0:
        errno = ctypes.get_errno()
        raise KernelError(f"cannot make a user namespace: {os.strerror(errno)}",
                          hint="`corral doctor` checks user namespace support")
    try:
        for name, start in (("uid_map", idrange.uid), ("gid_map", idrange.gid)):
            with open(f"/proc/{child}/{name}", "w") as handle:
                handle.write(f"0 {start} {idrange.size}\n")
        return os.open(f"/proc/{child}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.kill(child, signal.SIGKILL)      # the namespace lives on in the fd
        os.waitpid(child, 0)
        del stack                            # only now: the child ran on it


def mount_idmapped_overlay(lowers: list[Path], upper: Path, work: Path, target: Path, userns_fd: int) -> None:
    """An overlay of `lowers` (lowest first), each seen through the mapping of `userns_fd`."""
    overlay_options(lowers, upper, work)          # the same checks of paths and sizes
    fds: list[int] = []
    try:
        attr = _MountAttr(_MOUNT_ATTR_IDMAP, 0, 0, userns_fd)
        for layer in dict.fromkeys(reversed(lowers)):      # topmost first, each once
            fd = _call(_SYS_OPEN_TREE, _AT_FDCWD, os.fsencode(layer), _OPEN_TREE_CLONE | _O_CLOEXEC | _AT_RECURSIVE,
                       what=f"open_tree {str(layer)!r}")
            fds.append(fd)
            _call(_SYS_MOUNT_SETATTR, fd, b"", _AT_EMPTY_PATH | _AT_RECURSIVE, ctypes.byref(attr),
                  ctypes.sizeof(attr), what=f"idmap {str(layer)!r}")
        context = _call(_SYS_FSOPEN, b"overlay", 1, what="fsopen overlay")   # FSOPEN_CLOEXEC
        fds.append(context)
        for fd in fds[:-1]:
            _call(_SYS_FSCONFIG, context, _FSCONFIG_SET_FD, b"lowerdir+", None, fd, what="overlay lowerdir+ fd")
        for key, value in ((b"upperdir", upper), (b"workdir", work)):
            _call(_SYS_FSCONFIG, context, _FSCONFIG_SET_STRING, key, os.fsencode(value), 0, what=f"overlay {key.decode()}")
        _call(_SYS_FSCONFIG, context, _FSCONFIG_CMD_CREATE, None, None, 0, what="create overlay")
        mounted = _call(_SYS_FSMOUNT, context, 1, 0, what="fsmount overlay")   # FSMOUNT_CLOEXEC
        fds.append(mounted)
        _call(_SYS_MOVE_MOUNT, mounted, b"", _AT_FDCWD, os.fsencode(target), _MOVE_MOUNT_F_EMPTY_PATH,
              what=f"move_mount to {str(target)!r}")
    finally:
        for fd in fds:
            os.close(fd)


def shift_ownership(root: Path, idrange: IdRange) -> int:
    """chown every entry under `root` (not following symlinks nor leaving its mount) by the
    range; ids already past the range are left, so a second run changes nothing. Set-id bits,
    which chown clears, are put back. Returns the number of entries changed."""
    changed = 0
    device = os.lstat(root).st_dev
    pending = [os.fspath(root)]
    while pending:
        path = pending.pop()
        info = os.lstat(path)
        uid, gid = idrange.host_uid(info.st_uid), idrange.host_gid(info.st_gid)
        if (uid, gid) != (info.st_uid, info.st_gid):
            os.lchown(path, uid, gid)
            if stat.S_ISREG(info.st_mode) and info.st_mode & (stat.S_ISUID | stat.S_ISGID):
                os.chmod(path, stat.S_IMODE(info.st_mode))
            changed += 1
        if stat.S_ISDIR(info.st_mode) and info.st_dev == device:
            with os.scandir(path) as entries:
                pending.extend(entry.path for entry in entries)
    return changed


class RootfsOwnership:
    """Mounts a container's overlay owned by its range: idmapped layers when the kernel takes
    them, else (once it refused, for the rest of the daemon's life) the chown fallback."""

    def __init__(self, method: str = IDMAP) -> None:
        self.method = method
        self._lock = threading.Lock()

    def mount(self, lowers: list[Path], upper: Path, work: Path, target: Path, idrange: IdRange) -> str:
        """Mount the overlay at `target`; returns the method used (IDMAP or CHOWN)."""
        if self.method == IDMAP:
            userns_fd = hold_userns(idrange)
            try:
                mount_idmapped_overlay(lowers, upper, work, target, userns_fd)
                return IDMAP
            except OSError as exc:
                with self._lock:
                    if self.method == IDMAP:
                        log.warning("idmapped overlay refused (%s): falling back to chown of each container's "
                                    "files", exc.strerror)
                        self.method = CHOWN
            finally:
                os.close(userns_fd)
        mount_overlay(lowers, upper, work, target, extra="metacopy=on")
        shift_ownership(target, idrange)
        return CHOWN


def try_idmapped_overlay(scratch: Path = Path("/var/tmp")) -> str | None:
    """Mount and unmount a one-layer idmapped overlay in a scratch directory: None when the
    kernel takes it, else why not (for `corral doctor`)."""
    import shutil
    import tempfile

    from agent.images.overlay import unmount
    from agent.userns.ranges import RANGE_SIZE

    base = Path(tempfile.mkdtemp(prefix="corral-doctor-idmap-", dir=scratch))
    try:
        for name in ("layer", "upper", "work", "target"):
            (base / name).mkdir()
        (base / "layer" / "probe").write_text("")        # host root's: the mapped root's through the idmap
        userns_fd = hold_userns(IdRange(1 << 30, 1 << 30, RANGE_SIZE))
        try:
            mount_idmapped_overlay([base / "layer"], base / "upper", base / "work", base / "target", userns_fd)
        finally:
            os.close(userns_fd)
        owner = os.stat(base / "target" / "probe").st_uid
        unmount(base / "target")
        return None if owner == 1 << 30 else f"the layer showed uid {owner}, not the mapped {1 << 30}"
    except (OSError, KernelError) as exc:
        return str(exc)
    finally:
        shutil.rmtree(base, ignore_errors=True)
