"""At daemon start: make the state on disk agree with what really runs, whatever the daemon was
doing when it died (SIGKILL, OOM kill, power loss).

Every verb orders its steps so that what it makes on the host is found from a directory or a
record on disk: create makes the container's directory before the cgroup and the overlay and
writes its first record (durable) once they exist; remove marks the record `removing` before it
undoes anything (an exited --rm container's record, `running` or `exited`, already says it goes)
and renames the directory into the trash last; start saves `running` only after the launcher
reported `started` (a --rm container's start and exit are not saved at all: its record stays
`created` until it is removed, reconcile telling a started one by its shim.log). Each step below
handles one way a verb can be cut short:

  no state file       create cut short before its save: cgroup, overlay and directory removed
  unreadable state    every generation torn or garbage: processes killed, cgroup removed, overlay
                      unmounted, the directory moved to <root>/quarantine/ for a person, logged
  removing            remove cut short: the removal is finished
  exited, --rm        its removal cut short (or an earlier version's record): the removal is
                      finished, anonymous volumes too, as docker's AutoRemove at its restart
  created, no cgroup  a record of an earlier version, whose create saved before making them:
  or no rootfs        everything it made is removed
  created, live shim  start cut short after the launch (or a --rm container, whose start is not
                      saved, running): the container is adopted as running
  created, --rm, no   a --rm container started (its directory holds the launcher's log) whose
  shim, shim.log      run ended or was cut short while the daemon was down: the exit is recorded
                      and the removal done, as for "running, no shim"
  created, no shim    start cut short before the launch finished: processes left in its cgroup
                      are killed; after a reboot the cgroup and overlay are made again
  running, live shim  adopted: its exit is watched and its cgroup given to the probes again
  (or paused)         (a paused one stays paused: its cgroup is still frozen)
  running, no shim    it exited while the daemon was down (or the host rebooted), or a --rm
                      container's removal was cut short: the exit is recorded (code from the
                      launcher's exit file), leftover processes killed, --rm honoured (the
                      removal finished); its restart policy, once the daemon is up, may start it
  network             veths, addresses, endpoint records and nft rules of containers that are not
                      running are removed; those of running ones made again where missing

One container's failure is logged and does not stop the others' or the daemon's start.
"""
from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from agent.cgroups.driver import CgroupPaths
from agent.errors import CorralError
from agent.network.model import Attachment
from agent.runtime.launch import SHIM_LOG
from agent.runtime.model import CREATED, EXITED, LIVE, REMOVING, RUNNING, Container

if TYPE_CHECKING:
    from agent.runtime.containers import Runtime

log = logging.getLogger(__name__)

LAUNCHER_NAME = b"corral-launch"


def live_shims(containers_dir: Path, proc: Path = Path("/proc")) -> dict[str, int]:
    """Container id -> pid of each `corral-launch run` whose rootfs is below `containers_dir`."""
    found = {}
    prefix = str(containers_dir) + "/"
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        try:
            with open(os.path.join(entry.path, "cmdline"), "rb") as handle:
                argv = handle.read().split(b"\0")
        except OSError:
            continue
        if len(argv) < 4 or not argv[0].endswith(LAUNCHER_NAME) or argv[1] != b"run":
            continue
        for index, arg in enumerate(argv[:-1]):
            if arg == b"--rootfs":
                rootfs = argv[index + 1].decode(errors="replace")
                if rootfs.startswith(prefix):
                    found[rootfs[len(prefix):].split("/", 1)[0]] = int(entry.name)
    return found


def child_in(pids: list[int], parent: int, proc: Path = Path("/proc")) -> int | None:
    """The pid among `pids` whose parent is `parent` (a shim's container init)."""
    for pid in pids:
        try:
            status = (proc / str(pid) / "status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("PPid:") and int(line.split()[1]) == parent:
                return pid
    return None


class Reconciler:
    """One pass over the runtime's containers; `run()` returns the ids handled per step."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.store = runtime.store
        self.cgroups = runtime.cgroups
        self.done: dict[str, list[str]] = defaultdict(list)

    def run(self) -> dict[str, list[str]]:
        shims = live_shims(self.store.root)
        for container_id in list(self.store.no_state):
            self._step("create cut short (no state)", container_id, partial(self._forget_dir, container_id))
        for container_id, errors in list(self.store.unreadable.items()):
            self._step("quarantined", container_id, partial(self._quarantine, container_id, errors))
        for container in self.store.all():
            self._step(self._classify(container, shims), container.id, partial(self._handle, container, shims))
        self._step("network", "", self._network)
        self._report()
        return dict(self.done)

    # ---- steps ----------------------------------------------------------------------------

    def _classify(self, container: Container, shims: dict[str, int]) -> str:
        if container.state == REMOVING or self._exited_rm(container):
            return "removal finished"
        if container.state == CREATED:
            if not container.cgroup or not container.rootfs:
                return "create cut short (removed)"
            if container.id in shims:
                return "start cut short (adopted)"
            return "exited while down" if self._started_rm(container) else "created"
        if container.state in LIVE:
            return "adopted" if self._shim_of(container, shims) else "exited while down"
        return "unchanged"

    def _handle(self, container: Container, shims: dict[str, int]) -> None:
        runtime = self.runtime
        if container.state == REMOVING:
            self._kill(container)
            runtime._destroy(container)
        elif self._exited_rm(container):
            self._kill(container)
            runtime._destroy(container, volumes=True)
        elif container.state == CREATED:
            if not container.cgroup or not container.rootfs:
                self._remove_cgroup(self.cgroups.paths_for(container.id))
                runtime._destroy(container)
            elif container.id in shims:
                self._adopt_started(container, shims[container.id])
            elif self._started_rm(container):
                self._kill(container)
                runtime._on_exit(container.id)
            else:
                self._kill(container)
                self._repair(container)
        elif container.state in LIVE:        # running or paused
            if self._shim_of(container, shims):
                runtime._follow(container)
            else:
                self._kill(container)
                runtime._on_exit(container.id)

    @staticmethod
    def _exited_rm(container: Container) -> bool:
        return container.state == EXITED and container.spec.auto_remove

    def _started_rm(self, container: Container) -> bool:
        """A --rm container whose start is not saved (agent/runtime/containers.py) was started
        when its directory holds the launcher's log."""
        return container.spec.auto_remove and (self.store.directory(container.id) / SHIM_LOG).exists()

    def _shim_of(self, container: Container, shims: dict[str, int]) -> bool:
        return bool(container.shim_pid) and shims.get(container.id) == container.shim_pid

    def _adopt_started(self, container: Container, shim: int) -> None:
        """The launcher reported `started` to a daemon that died before saving it."""
        paths = CgroupPaths.from_dict(container.cgroup or {})
        pid = child_in(self.cgroups.pids(paths), shim)
        if container.spec.network not in ("none", "host") and self.runtime.networks is not None:
            from agent.runtime.connections import set_attachments
            set_attachments(container, [a for a in self.runtime.networks.attachments() if a.container_id == container.id])
        container.pid = pid
        container.shim_pid = shim
        container.state = RUNNING
        container.started_at = time.time()
        container.error = "started while the daemon was down; adopted at its restart"
        self.store.save(container)
        self.runtime._follow(container)

    def _repair(self, container: Container) -> None:
        """A created container whose cgroup or overlay is gone (a reboot) gets them again."""
        if self.runtime._make_again(container):
            self.store.save(container)

    def _forget_dir(self, container_id: str) -> None:
        self._remove_cgroup(self.cgroups.paths_for(container_id))
        self.runtime.rootfs.release(container_id)
        self.store.delete(container_id)
        self.store.no_state.remove(container_id)

    def _quarantine(self, container_id: str, errors: list[str]) -> None:
        self._remove_cgroup(self.cgroups.paths_for(container_id))
        self.runtime.rootfs.unmount(container_id)
        moved = self.store.quarantine(container_id)
        del self.store.unreadable[container_id]
        log.error("container %s: its state is unreadable (%s); its processes were killed, its cgroup, "
                  "mount and network removed, and its directory moved to %s", container_id[:12],
                  "; ".join(errors), moved)

    def _network(self) -> None:
        networks = self.runtime.networks
        if networks is None:
            return
        from agent.runtime.connections import attachments_of
        live = {c.id: [Attachment.from_dict(a) for a in attachments_of(c)] for c in self.store.all()
                if c.state in LIVE and c.network}
        for container_id in networks.reconcile(live):
            self.done["network leftovers removed"].append(container_id)

    # ---- helpers --------------------------------------------------------------------------

    def _kill(self, container: Container) -> None:
        """No process may outlive its container's record: kill what is left in the cgroup."""
        if container.cgroup:
            paths = CgroupPaths.from_dict(container.cgroup)
            if self.cgroups.exists(paths) and self.cgroups.pids(paths):
                self.cgroups.kill(paths)

    def _remove_cgroup(self, paths: CgroupPaths) -> None:
        if self.cgroups.exists(paths):
            self.cgroups.remove(paths)

    def _step(self, what: str, container_id: str, action: Callable[[], None]) -> None:
        try:
            action()
        except Exception as exc:  # one container's bad state must not stop the daemon's start
            log.error("reconciling %s: %s failed: %s", container_id[:12] or "the network", what, exc,
                      exc_info=not isinstance(exc, (CorralError, OSError)))
            self.done["failed"].append(container_id)
            return
        if what not in ("unchanged", "created", "network"):
            self.done[what].append(container_id)

    def _report(self) -> None:
        if self.done:
            log.info("reconciled at start: %s", "; ".join(
                f"{what}: {', '.join(i[:12] for i in ids)}" for what, ids in sorted(self.done.items())))
