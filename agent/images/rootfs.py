"""The root filesystem of each container: an overlay of its image's layers.

`<root>/containers/<id>/` holds `upper/` (everything the container writes), `work/` (overlayfs'
scratch space, on the same filesystem as upper) and `rootfs/`, where the overlay is mounted
and which the launcher pivot_roots into. The container directory may also hold the runtime's
own state; this module only creates and removes those three and leaves the rest alone.
"""
from __future__ import annotations

import contextlib
import os
import re
import stat
from pathlib import Path

from agent.errors import InvalidArgument, KernelError
from agent.images.model import Image
from agent.images.overlay import clear_volatile_mark, is_mounted, mount_overlay, unmount, unmount_stack
from agent.images.store import ImageStore, remove_tree
from agent.userns.ownership import RootfsOwnership
from agent.userns.ranges import IdRange

_CONTAINER_ID = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")


class RootfsManager:
    """Prepares and releases the overlay root filesystems of containers under `<root>/containers/`."""

    def __init__(self, root: Path, images: ImageStore | None = None,
                 ownership: RootfsOwnership | None = None) -> None:
        self.dir = Path(root) / "containers"
        self.images = images if images is not None else ImageStore(root)
        self.ownership = ownership     # for --userns auto containers; None: not offered

    def container_dir(self, container_id: str) -> Path:
        if not isinstance(container_id, str) or not _CONTAINER_ID.match(container_id):
            raise InvalidArgument(f"container id {container_id!r}: use letters, digits, '_', '.' and '-'")
        return self.dir / container_id

    def rootfs(self, container_id: str) -> Path:
        return self.container_dir(container_id) / "rootfs"

    def prepare(self, container_id: str, image: Image, userns: dict | None = None, *, volatile: bool = False) -> Path:
        """Mount the container's root (if it is not already) and return its path.

        A container that was prepared before keeps its upper directory: what it wrote
        survives a stop and start. On failure, whatever this call created is removed. With
        `userns` (the container's record of its range, Container.userns) the image's files are
        owned by the mapped ids, how is recorded in it ("ownership"), and the container's root
        can reach its root filesystem (`_open_path_to`).

        `volatile` (a --rm container's root, deleted at its exit; not with `userns`): overlayfs
        never syncs its upper filesystem, so neither the container's writes nor the unmount at
        its removal wait for an ext4 journal commit (umount2 0.36 -> 0.09 ms on a quiet machine
        here, more under load: bench/README.md). Such a work directory keeps a mark that
        refuses any later mount; a later mount (a removal that failed, a reboot) clears it.
        """
        idmap = IdRange.of(userns)
        base = self.container_dir(container_id)
        lowers = self.images.layer_paths(image)
        upper, work, rootfs = base / "upper", base / "work", base / "rootfs"
        # A fresh create has no rootfs directory yet, so nothing can be mounted there: skip the
        # /proc/self/mountinfo read (it takes the kernel's global mount lock, contended while
        # other containers mount and unmount; ~2-4 ms of a create under load, bench/README.md).
        if rootfs.is_dir() and is_mounted(rootfs):
            return rootfs
        created: list[Path] = []
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            for path, mode in ((base, 0o700), (upper, 0o755), (work, 0o700), (rootfs, 0o755)):
                with contextlib.suppress(FileExistsError):
                    path.mkdir(mode=mode)
                    created.append(path)
            if upper in created:
                # The overlay's "/" takes its owner and mode from upper, so copy the image's
                # (each change is a metadata write on the launch's path: only where it differs).
                top, made = os.stat(lowers[-1]), os.stat(upper)
                mapped = idmap or IdRange(0, 0, 0)
                owner = (mapped.host_uid(top.st_uid), mapped.host_gid(top.st_gid))
                if owner != (made.st_uid, made.st_gid):
                    os.chown(upper, *owner)
                if stat.S_IMODE(top.st_mode) != stat.S_IMODE(made.st_mode):
                    os.chmod(upper, stat.S_IMODE(top.st_mode))
            clear_volatile_mark(work)
            if idmap is None or userns is None:
                mount_overlay(lowers, upper, work, rootfs, "volatile" if volatile else "")
            else:
                self._open_path_to(base, idmap)
                if self.ownership is None:
                    raise InvalidArgument("--userns auto: this daemon does not offer user namespaces", field="userns")
                userns["ownership"] = self.ownership.mount(lowers, upper, work, rootfs, idmap)
        except BaseException as exc:
            for path in reversed(created):
                remove_tree(path)
            if isinstance(exc, OSError):
                raise KernelError(f"preparing the root filesystem of container {container_id} in "
                                  f"{str(base)!r}: {exc.strerror}: {exc.filename}") from None
            raise
        return rootfs

    def _open_path_to(self, base: Path, idmap: IdRange) -> None:
        """The init of a user-namespace container is not host root: it needs search permission
        down to its root filesystem (it bind-mounts it, then pivot_roots). As Docker does with
        userns-remap: the state root and containers/ get o+x (no listing), and the container's
        own directory is group-owned by its mapped root group, mode 0710."""
        for ancestor in self.dir.parent.resolve().parents:
            if not ancestor.stat().st_mode & 0o001:
                raise InvalidArgument(f"--userns auto: {str(ancestor)!r}, above the daemon's root, cannot be "
                                      "searched by other users, so a container's root cannot reach its files",
                                      hint=f"chmod o+x {ancestor}, or use a --root outside it", field="userns")
        for directory in (self.dir.parent, self.dir):
            mode = stat.S_IMODE(directory.stat().st_mode)
            if not mode & 0o001:
                os.chmod(directory, mode | 0o001)
        os.chown(base, 0, idmap.gid)
        os.chmod(base, 0o710)

    def unmount(self, container_id: str) -> None:
        """Unmount the root but keep what the container wrote (for a stop; prepare remounts)."""
        rootfs = self.rootfs(container_id)
        if is_mounted(rootfs):
            unmount(rootfs, lazy_if_busy=True)

    def unmount_stack(self, container_id: str) -> Path:
        """Unmount the root (each overlay a crash may have stacked there; a busy one lazily)
        without reading the mount table, for a removal that then moves the whole container
        directory to the trash (agent/runtime/trash.py). Returns the container's directory."""
        base = self.container_dir(container_id)
        unmount_stack(base / "rootfs")
        return base

    def release(self, container_id: str) -> None:
        """Unmount the root (detaching it lazily if busy) and remove upper, work and rootfs.

        Nothing is removed while the overlay is still mounted. Missing pieces are fine, so a
        release after a half-finished prepare or a second release succeeds.
        """
        base = self.container_dir(container_id)
        rootfs = base / "rootfs"
        # Several overlays stacked on one path (a crash between mounts) each need an unmount.
        for _ in range(8):
            if not is_mounted(rootfs):
                break
            unmount(rootfs, lazy_if_busy=True)
        else:
            raise KernelError(f"{str(rootfs)!r} is still mounted after 8 unmounts", hint="check `findmnt -R PATH`")
        remove_tree(base / "upper")
        remove_tree(base / "work")
        try:
            rootfs.rmdir()      # rmdir, not rm -r: never delete through something mounted
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise KernelError(f"removing {str(rootfs)!r} of container {container_id}: {exc.strerror}") from None
        left = [path.name for path in (base / "upper", base / "work") if os.path.lexists(path)]
        if left:
            raise KernelError(f"could not remove {', '.join(left)} of container {container_id} in {str(base)!r}",
                              hint="check for immutable files (`lsattr -R`) and remove the directory by hand")
        with contextlib.suppress(OSError):
            base.rmdir()        # only when empty: the runtime may keep its state here
