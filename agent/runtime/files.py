"""Moving files in and out of containers: `corral cp`, `corral diff`, `corral export`.

Works on running and stopped containers alike: their root stays mounted on the host (at
`<root>/containers/<id>/rootfs`, mounted again if a reboot took it) and every path is resolved
inside it, or inside the volume or bind mount that holds it, through agent/files (openat2
RESOLVE_IN_ROOT): nothing the container planted can point a copy at a host file. What only the
container's mount namespace has (a tmpfs, /proc, /dev) is out of reach and refused by name.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from agent.errors import Conflict, InvalidArgument
from agent.files import diff, tar_in, tar_out
from agent.files.resolve import Area, ContainerTree, normalize
from agent.images.overlay import is_mounted
from agent.images.rootfs import RootfsManager
from agent.images.store import ImageStore
from agent.runtime.model import Container
from agent.runtime.state import ContainerStore
from agent.runtime.volumes import Volumes
from agent.userns.ranges import IdRange

# Mounted by the launcher in the container's own namespace only.
_NAMESPACE_ONLY = ("/proc", "/dev", "/sys")
# docker's ChangeType numbers in `GET /containers/{id}/changes`.
CHANGE_KINDS = {diff.CHANGED: 0, diff.ADDED: 1, diff.DELETED: 2}


class ContainerFiles:
    def __init__(self, containers: ContainerStore, rootfs: RootfsManager, images: ImageStore, volumes: Volumes) -> None:
        self._containers = containers
        self._rootfs = rootfs
        self._images = images
        self._volumes = volumes

    def _root(self, container: Container) -> Path:
        """The container's mounted root, mounted again (with what it wrote) if it is not."""
        path = self._rootfs.rootfs(container.id)
        if not is_mounted(path):
            path = self._rootfs.prepare(container.id, self._images.get(container.image_id), container.userns)
        return path

    def tree(self, ref: str, path: str) -> ContainerTree:
        """The container's files, checked for a path cp cannot reach from the host."""
        container = self._containers.get(ref)
        clean = normalize(path)
        tmpfs = list(container.spec.tmpfs) + [m.target for m in container.spec.mounts if m.type == "tmpfs"]
        for target in [*_NAMESPACE_ONLY, *tmpfs]:
            target = normalize(target)
            if clean == target or clean.startswith(target + "/"):
                raise Conflict(f"container {container.name}: {path} is on {target}, a mount only the container "
                               "sees (tmpfs, /proc, /dev, /sys); copy it with `corral exec` instead",
                               field="path")
        what = "the container's root (--read-only)" if container.spec.read_only else "the container's root"
        root = Area("/", self._root(container), container.spec.read_only, what)
        return ContainerTree(container.name, root, self._volumes.areas(container))

    def stat(self, ref: str, path: str) -> dict:
        return tar_out.path_stat(self.tree(ref, _checked(path)), path)

    def archive(self, ref: str, path: str) -> tuple[dict, Iterator[bytes]]:
        """Docker's stat of the path, and its tar stream (`GET .../archive`)."""
        tree = self.tree(ref, _checked(path))
        return tar_out.path_stat(tree, path), tar_out.archive(tree, path)

    def extract(self, ref: str, path: str, stream: tar_in.Readable, *, copy_uid_gid: bool = False) -> int:
        """Write a tar stream into the directory `path` (`PUT .../archive`); files belong to
        root unless `copy_uid_gid` keeps the archive's owners (`cp -a`)."""
        tree = self.tree(ref, _checked(path))
        userns = self._containers.get(ref).userns
        ids = None
        if userns:      # the container's ids are the host's ids of its range
            idmap = IdRange.from_dict(userns)
            ids = lambda uid, gid: (idmap.host_uid(uid), idmap.host_gid(gid))  # noqa: E731
        return tar_in.extract(tree, path, stream, owner=None if copy_uid_gid else (0, 0), ids=ids)

    def changes(self, ref: str) -> list[dict]:
        """docker's `GET /containers/{id}/changes`: [{"Path", "Kind"}], Kind 0 changed, 1 added, 2 deleted."""
        container = self._containers.get(ref)
        upper = self._rootfs.container_dir(container.id) / "upper"
        lowers = self._images.layer_paths(self._images.get(container.image_id))
        points = [m.target for m in container.spec.mounts] + list(container.spec.tmpfs) + \
            ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf", *_NAMESPACE_ONLY]
        return [{"Path": path, "Kind": CHANGE_KINDS[kind]} for kind, path in diff.changes(upper, lowers, points)]

    def export(self, ref: str) -> Iterator[bytes]:
        """The container's merged root as a tar stream (volumes and mounts left out, as docker does)."""
        return tar_out.export_root(self._root(self._containers.get(ref)))


def _checked(path: str) -> str:
    if not path.startswith("/"):
        raise InvalidArgument(f"path {path!r}: expected an absolute path in the container", field="path")
    return path
