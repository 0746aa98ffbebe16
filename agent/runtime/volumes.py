"""Volumes as the runtime sees them: which containers use each, made and filled at create,
refused removal while used, anonymous ones removed with their container (`rm -v`, `--rm`).

`claim` runs at create, before anything else is made: it names a new anonymous volume for each
`-v /path` (and each VOLUME of the image no mount covers, as docker does) and creates named
volumes on first use. `fill` runs once the container's root is mounted: a volume that is
empty gets the image's content at the mount target (owner, modes, links kept), unless the
mount says `volume_nocopy`. Both read the root through agent/files, so an image's symlink at
the target is resolved inside the image, never on the host.
"""
from __future__ import annotations

import builtins  # Volumes.list shadows `list` in the annotations of the methods after it
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

import msgspec

from agent.errors import Conflict, CorralError, InvalidArgument, NotFound
from agent.events import Event, EventLog
from agent.files import tar_in, tar_out
from agent.files.resolve import Area, ContainerTree
from agent.images.model import Image
from agent.runtime.model import Container, ContainerSpec, Mount
from agent.runtime.state import ContainerStore
from agent.volumes.model import Volume
from agent.volumes.store import VolumeStore
from agent.volumes.usage import VolumeUsage, tree_bytes

log = logging.getLogger(__name__)


def volume_mounts(spec: ContainerSpec) -> list[Mount]:
    return [mount for mount in spec.mounts if mount.type == "volume"]


class Volumes:
    """The volume verbs (`corral volume ...`) and the volumes' part in a container's life."""

    def __init__(self, store: VolumeStore, containers: ContainerStore, events: EventLog,
                 usage: VolumeUsage | None = None) -> None:
        self.store = store
        self._containers = containers
        self._events = events
        self.usage = usage or VolumeUsage(lambda: [(v.name, v.mountpoint) for v in store.list()])
        self._lock = threading.RLock()      # claims and removals do not interleave

    # ---- verbs ------------------------------------------------------------------------------

    def create(self, name: str | None = None, labels: dict[str, str] | None = None) -> dict:
        volume, created = self.store.create(name, labels)
        if created:
            self._events.emit(Event("volume", "create", volume.name, volume.name))
        return volume.describe(self.users(volume.name))

    def list(self) -> builtins.list[dict]:
        users = self._users_by_volume()
        return [volume.describe(users.get(volume.name, [])) for volume in self.store.list()]

    def inspect(self, name: str) -> dict:
        volume = self.store.get(name)
        return volume.describe(self.users(name), self.usage.sizes().get(name))

    def remove(self, name: str, force: bool = False) -> None:
        """Conflict naming the containers that use it (also with force: docker refuses too);
        with force a missing volume is not an error."""
        with self._lock:
            users = self.users(name)
            if users:
                raise Conflict(f"volume {name} is in use by container {', '.join(users)}",
                               hint=f"remove the container first (`corral rm {users[0]}`)")
            try:
                self.store.remove(name)
            except NotFound:
                if not force:
                    raise
                return
        self._events.emit(Event("volume", "destroy", name, name))

    def prune(self, all: bool = False, select: Callable[[Volume], bool] | None = None) -> dict:
        """Remove the anonymous volumes no container uses (named ones too with `all`), only
        those `select` keeps when given (the Docker API's label filters)."""
        removed, reclaimed = [], 0
        with self._lock:
            used = self._users_by_volume()
            for volume in self.store.list():
                if volume.name in used or not (all or volume.anonymous) or (select and not select(volume)):
                    continue
                size = tree_bytes(volume.mountpoint)
                try:
                    self.remove(volume.name)
                except CorralError as exc:
                    log.warning("prune: volume %s: %s", volume.name, exc)
                    continue
                removed.append(volume.name)
                reclaimed += size
        return {"removed": removed, "space_reclaimed": reclaimed}

    def users(self, name: str) -> builtins.list[str]:
        return self._users_by_volume().get(name, [])

    def _users_by_volume(self) -> dict[str, builtins.list[str]]:
        found: dict[str, builtins.list[str]] = {}
        for container in self._containers.all():
            for mount in volume_mounts(container.spec):
                if mount.source:
                    found.setdefault(mount.source, []).append(container.name)
        return found

    # ---- a container's life -----------------------------------------------------------------

    def claim(self, spec: ContainerSpec, image: Image) -> tuple[ContainerSpec, builtins.list[str]]:
        """The spec with a name for every volume it mounts (new anonymous ones named), its named
        volumes created if missing; and the names this call created (undo removes them)."""
        mounts = list(spec.mounts)
        covered = {mount.target.rstrip("/") or "/" for mount in mounts} | set(spec.tmpfs)
        mounts += [Mount(type="volume", target=path) for path in image.config.volumes
                   if path.rstrip("/") not in covered]
        created: builtins.list[str] = []
        with self._lock:
            try:
                for index, mount in enumerate(mounts):
                    if mount.type != "volume":
                        continue
                    volume, made = self.store.create(mount.source, anonymous=mount.source is None)
                    if made:
                        created.append(volume.name)
                    if mount.source is None:
                        mounts[index] = msgspec.structs.replace(mount, source=volume.name)
            except BaseException:
                self.discard(created)
                raise
        for name in created:
            self._events.emit(Event("volume", "create", name, name))
        return msgspec.structs.replace(spec, mounts=mounts), created

    def discard(self, names: builtins.list[str]) -> None:
        """Remove volumes a failed create made."""
        for name in names:
            try:
                self.store.remove(name)
            except CorralError:
                log.exception("removing volume %s after a failed create", name)

    def discard_unused(self, names: builtins.list[str]) -> None:
        """After a failed run: remove the volumes its create made (`names`, from `claim`) that
        no container uses now. (Not a listing of every volume before the run: that read each
        volume's record, ~30 us a volume, at every run.)"""
        for name in names:
            try:
                self.remove(name, force=True)
            except Conflict:
                pass                        # another container took it meanwhile: it stays

    def fill(self, container: Container, rootfs: Path) -> None:
        """Copy the image's content at each volume's target into the volumes that are empty."""
        image_root = ContainerTree(container.name, Area("/", rootfs))
        for mount in volume_mounts(container.spec):
            volume = self.store.get(mount.source or "")
            if not self.store.is_empty(volume):
                continue
            if container.userns:
                # An empty volume is given to the container's root (its range's first ids), as
                # docker's userns-remap makes volumes owned by the remapped root.
                os.chown(volume.mountpoint, int(container.userns["uid"]), int(container.userns["gid"]))
            if mount.volume_nocopy:
                continue
            try:
                stream = tar_out.archive(image_root, mount.target.rstrip("/") + "/.")
            except (NotFound, InvalidArgument):
                continue                    # the image has nothing (or no directory) there
            into = ContainerTree(f"volume {volume.name}", Area("/", Path(volume.mountpoint), what=f"volume {volume.name}"))
            top = mount.target.rstrip("/").rsplit("/", 1)[-1]
            tar_in.extract(into, "/", tar_in.ChunkReader(stream), owner=None, rename=(top, ""))

    def areas(self, container: Container) -> builtins.list[Area]:
        """The container's volumes and bind mounts as areas of its file tree (agent/files)."""
        found = []
        for mount in container.spec.mounts:
            if mount.type == "volume" and mount.source:
                found.append(Area(mount.target, Path(self.store.data_dir(mount.source)), mount.readonly,
                                  f"volume {mount.source}"))
            elif mount.type == "bind" and mount.source:
                found.append(Area(mount.target, Path(mount.source), mount.readonly, f"bind mount {mount.source}"))
        return found

    def data_dir(self, name: str) -> Path:
        return self.store.data_dir(name)

    def release(self, container: Container) -> None:
        """After the container is gone: remove its anonymous volumes no other container uses."""
        for mount in volume_mounts(container.spec):
            try:
                volume: Volume = self.store.get(mount.source or "")
            except CorralError:
                continue
            if volume.anonymous:
                try:
                    self.remove(volume.name, force=True)
                except Conflict:
                    pass                    # another container mounts it too: it stays
