"""How a container's run ends: its exit recorded, the user's stop, its removal. Part of the Runtime
(agent/runtime/containers.py), kept apart so each file reads in one sitting.

The exit watcher and the reconciler call `_on_exit`; `_record_exit` saves the exit code (from
the launcher's exit file), publishes `stopped` on the ContainerBus (the catalogue and the
restart policies follow it) and logs `die`. `_destroy` removes everything a container owns.
"""
from __future__ import annotations

import logging
import signal
import threading
import time
from typing import TYPE_CHECKING, Any

from agent.catalog.bus import ContainerBus, ContainerRemoved, ContainerStopped
from agent.cgroups.driver import CgroupDriver, CgroupPaths
from agent.errors import CorralError, InvalidArgument, NotFound
from agent.events import Event, EventLog
from agent.runtime.model import EXITED, REMOVING, RUNNING, Container, ContainerSpec
from agent.runtime.state import ContainerStore

if TYPE_CHECKING:
    from agent.catalog.entry import CatalogEntry
    from agent.images.rootfs import RootfsManager
    from agent.images.store import ImageStore
    from agent.runtime.trash import Trash
    from agent.runtime.volumes import Volumes

log = logging.getLogger(__name__)

# The exit code recorded when a shim vanished without writing one (killed, or a crash).
LOST_EXIT_CODE = 255


class Endings:
    """The Runtime's exit and removal steps (a mixin: the Runtime sets these attributes)."""

    store: ContainerStore
    images: ImageStore
    cgroups: CgroupDriver
    rootfs: RootfsManager
    events: EventLog
    bus: ContainerBus
    networks: Any                  # agent.network.manager.NetworkManager, or None
    volumes: Volumes
    trash: Trash
    _changed: threading.Condition
    # One removal at a time per container, striped by id. Not the start lock (network_lock),
    # which the exit path holds while it unmounts an exited root (a sync of the upper
    # filesystem): a `rm` right after the exit need not wait for that.
    _removal_locks: list[threading.RLock]
    # Ids of --rm containers whose removal at exit waits for `release` (Runtime.run's `hold`).
    _held: set[str]

    def entry(self, container: Container) -> CatalogEntry:
        raise NotImplementedError

    def network_lock(self, container_id: str) -> threading.RLock:
        raise NotImplementedError

    def _on_exit(self, container_id: str) -> None:
        try:
            container = self.store.get(container_id)
        except NotFound:
            return
        self._record_exit(container)
        if container.spec.auto_remove:
            if container_id not in self._held:      # else `release` (or the holder's rm) removes it
                quietly(lambda: self._destroy(self.store.get(container_id), volumes=True))
        else:
            quietly(lambda: self._unmount_exited(container_id))

    def _unmount_exited(self, container_id: str) -> None:
        """As docker does at a container's exit, its root is unmounted (start, cp and export
        mount it again, with what it wrote). The unmount syncs the upper filesystem, 1-6 ms
        here: done now, after the waiters were told of the exit, it is off a later rm's path
        (rm's own umount2 answers EINVAL at once, the mount being detached before the sync).
        Under the container's start lock, so a restart meanwhile keeps its root mounted."""
        with self.network_lock(container_id):
            try:
                container = self.store.get(container_id)
            except NotFound:
                return
            # A --userns auto root may be mounted by chowning every file (the fallback where
            # idmapped mounts are refused): it stays mounted rather than walk the tree at each start.
            if container.state == EXITED and not container.userns:
                self.rootfs.unmount_stack(container_id)

    def _record_exit(self, container: Container) -> None:
        exit_file = self.store.directory(container.id) / "exit"
        try:
            code = int(exit_file.read_text().split()[0])
            finished = exit_file.stat().st_mtime
        except (OSError, ValueError, IndexError):
            code, finished = LOST_EXIT_CODE, time.time()
            container.error = "the launcher exited without recording an exit code"
        oom = False
        if container.cgroup:
            paths = CgroupPaths.from_dict(container.cgroup)
            if self.cgroups.exists(paths):
                oom = bool(self.cgroups.oom_kills(paths))
        if container.network and self.networks is not None:
            # The namespace and its veth are going; the address and the host ports are freed, as
            # docker does, once the kernel has deleted the veth: queued, so the waiters are not
            # kept waiting for the kernel (agent/network/teardown.py). Queued before they are told,
            # so a start or rm that follows finds it pending.
            quietly(lambda: self.networks.detach_exited(container.id))
            container.network, container.extra_attachments = None, []
        container.state = EXITED
        container.exit_code = code
        container.oom_killed = oom
        container.finished_at = finished
        container.pid = None
        container.shim_pid = None
        if not container.spec.auto_remove:
            # A --rm container is removed next (_on_exit): its record on disk still says running,
            # and a daemon killed before the removal's end records the exit and removes it at
            # restart (reconcile's "running, no shim"), so this save would only be undone.
            self.store.save(container)
        with self._changed:
            self._changed.notify_all()
        self.bus.publish(ContainerStopped(self.entry(container)))
        # The OOM event itself, with the victim's pid and command, comes from the probes.
        self.events.emit(Event("container", "die", container.id, container.name,
                               attributes={"exitCode": code, "oomKilled": oom}))

    def _mark_stopped_by_user(self, container: Container) -> None:
        """docker's HasBeenManuallyStopped: the restart policy leaves it down (agent/runtime/restarts.py)."""
        if not container.stopped_by_user:
            container.stopped_by_user = True
            self.store.save(container)

    def _stop_signal(self, container: Container) -> int:
        try:
            image_default = self.images.get(container.image_id).config.stop_signal
        except CorralError:
            image_default = ""       # its image is gone: --stop-signal or SIGTERM
        return stop_signal(container.spec, image_default)

    def _thaw_quietly(self, container: Container) -> None:
        """A paused container being stopped thaws, so the stop signal reaches it."""
        quietly(lambda: self.cgroups.thaw(CgroupPaths.from_dict(container.cgroup)))
        container.state = RUNNING
        self.store.save(container)

    def _destroy(self, container: Container, volumes: bool = False) -> None:
        """Remove everything a container owns: network, probes' entries, rootfs, cgroup, state,
        and with `volumes` its anonymous volumes (`rm -v`, `--rm`). One removal at a time per
        container (a --rm container's exit and the run route's or a user's `rm` may meet): the
        second finds it gone and does nothing.

        The commit point, after which the trash finishes what is left, is the rename of its
        directory into the trash. Before it, a daemon killed half-way finishes the removal at
        restart: a container is marked `removing` first, but for an exited --rm container,
        whose record (running, as the exit is not saved, or exited) the reconciler finishes as
        a removal anyway (docker's AutoRemove at its restart), so that save is skipped."""
        with self._removal_locks[hash(container.id) % len(self._removal_locks)]:
            current = self.store.by_id(container.id)
            if current is not None:
                self._destroy_now(current, volumes)

    def _destroy_now(self, container: Container, volumes: bool) -> None:
        if container.state != REMOVING and not (container.spec.auto_remove and container.state == EXITED):
            container.state = REMOVING
            self.store.save(container)
        if self.networks is not None and container.spec.network not in ("none", "host"):
            quietly(lambda: self.networks.detach(container.id))
        if container.cgroup and container.cgroup_id:
            self.bus.publish(ContainerRemoved(self.entry(container)))
        self.rootfs.unmount_stack(container.id)
        if container.cgroup:
            self.cgroups.remove(CgroupPaths.from_dict(container.cgroup))
        # Its directory (state, log, upper, work) goes to the trash in one rename and is deleted
        # off the request path: the unlinks were ~22 % of a launch cycle (bench/README.md).
        self.store.delete(container.id, self.trash)
        if volumes:
            quietly(lambda: self.volumes.release(container))
        with self._changed:
            self._changed.notify_all()
        self.events.emit(Event("container", "destroy", container.id, container.name))



def stop_signal(spec: ContainerSpec, image_default: str = "") -> int:
    """The signal `stop` sends first: --stop-signal, else the image's STOPSIGNAL, else SIGTERM."""
    from agent.units import parse_signal
    if spec.stop_signal:
        return parse_signal(spec.stop_signal)
    try:
        return parse_signal(image_default) if image_default else signal.SIGTERM
    except InvalidArgument:
        log.warning("the image's STOPSIGNAL %r is not a signal; sending SIGTERM", image_default)
        return signal.SIGTERM


def quietly(step) -> None:
    try:
        step()
    except Exception:  # undoing must go on past one failed step; the log keeps it
        log.exception("clean-up step failed")
