"""The runtime: creates, starts, stops, kills, removes containers and runs commands in them.

Creation makes the cgroup (limits applied, as the PolicyDecider tightens them) and the overlay
root; start spawns the C launcher, places the container's init in the cgroup, publishes
`placed` on the ContainerBus (the probes watch the cgroup, the policy enforcer pushes its BPF
rules) and only then lets it exec, so the first syscall of the container is already counted.
Any failure on the way undoes every step taken, so bad input leaves nothing behind. The
runtime never calls a layer above it: it publishes events and asks the decider.
"""
from __future__ import annotations

import builtins  # Runtime.list shadows `list` in the annotations of the methods after it
import logging
import os
import signal as signals
import threading
import time
from dataclasses import replace
from pathlib import Path

from agent.catalog.bus import ContainerBus, ContainerPlaced, ContainerStarted, ContainerStopped
from agent.catalog.entry import CatalogEntry
from agent.cgroups.driver import CgroupDriver, CgroupPaths, Limits
from agent.errors import Conflict, InvalidArgument, KernelError
from agent.events import Event, EventLog
from agent.images.rootfs import RootfsManager
from agent.images.store import ImageStore
from agent.runtime.connections import attach_all, set_attachments, take_namespace
from agent.runtime.decider import NoPolicies, PolicyDecider
from agent.runtime.endings import Endings, quietly
from agent.runtime.execs import start_exec
from agent.runtime.exits import ExitWatcher
from agent.runtime.image_verbs import ImageVerbs
from agent.runtime.launch import SHIM_LOG, launch
from agent.runtime.model import EXITED, LIVE, PAUSED, RUNNING, Container, ContainerSpec
from agent.runtime.plan import device_rules, launch_request, merge_env, plan_container, requested_limits
from agent.runtime.queries import ContainerQueries
from agent.runtime.service import ExecProcess
from agent.runtime.state import ContainerStore, PendingSync
from agent.runtime.trash import Trash
from agent.runtime.volumes import Volumes
from agent.security import capabilities
from agent.security.container_filter import FILTER_FILE, ContainerFilters
from agent.security.options import of_spec
from agent.userns.allocator import UsernsAllocator
from agent.volumes.store import VolumeStore

log = logging.getLogger(__name__)

# The container's seccomp filter (profile + policies' deny rules), in its state directory.
SECCOMP_FILE = FILTER_FILE
class Runtime(Endings, ContainerQueries, ImageVerbs):
    """Implements agent.runtime.service.RuntimeService."""

    def __init__(self, *, root: Path, images: ImageStore, rootfs: RootfsManager,
                 cgroups: CgroupDriver, events: EventLog, launcher: Path,
                 bus: ContainerBus | None = None, networks=None,
                 decider: PolicyDecider | None = None, userns: UsernsAllocator | None = None) -> None:
        self.root = Path(root)
        self.store = ContainerStore(self.root)
        self.trash = Trash(self.root)       # removed containers' files, deleted in the background
        self.images = images
        self.rootfs = rootfs
        self.cgroups = cgroups
        self.events = events
        self.launcher = launcher
        self.bus = bus or ContainerBus()    # the catalogue, probes and enforcer follow it
        self.networks = networks            # agent.network.manager.NetworkManager, or None
        # Start, connect and disconnect of one container, one at a time (striped by id: starts of
        # different containers need not wait for each other).
        self._network_locks = [threading.RLock() for _ in range(16)]
        self._removal_locks = [threading.RLock() for _ in range(16)]    # agent/runtime/endings.py
        self._held: set[str] = set()        # `run(hold=True)` until `release`
        self.decider: PolicyDecider = decider or NoPolicies()
        self._changed = threading.Condition()
        self._exits = ExitWatcher(self._on_exit)
        self.filters = ContainerFilters(self.root / "seccomp")   # compiled once per distinct profile
        self.userns = userns or UsernsAllocator()   # --userns auto ranges, and the daemon's default
        self.volumes = Volumes(VolumeStore(self.root), self.store, events)

    # ---- life cycle of the runtime itself -------------------------------------------------

    def reconcile(self) -> dict[str, list[str]]:
        """Reconcile the state on disk with what really runs, then follow every live shim
        (agent/runtime/reconcile.py says what each step handles)."""
        from agent.runtime.reconcile import Reconciler
        self.trash.start()                  # first empties what a crash left mid-delete
        self._exits.start()
        done = Reconciler(self).run()
        # Every container left on disk is in the catalogue; the running ones were placed and
        # started by _follow as they were adopted.
        for container in self.store.all():
            if container.state not in LIVE and container.cgroup and container.cgroup_id:
                self.bus.publish(ContainerStopped(self.entry(container)))   # known, not running
        return done

    def close(self) -> None:
        """Stop following containers; they keep running and are adopted at the next start.
        What the trash still holds is deleted at the next start."""
        self._exits.stop()
        self.trash.close()

    # ---- verbs ----------------------------------------------------------------------------

    def run(self, spec: ContainerSpec, *, hold: bool = False) -> Container:
        # The create's durable save syncs while the container launches; `run` answers only once
        # the record is durable, as `create` does. A --rm container's is not synced: whatever of
        # it a machine crash leaves (no record, an empty one, or a running one without its shim),
        # reconcile removes, as its exit would have; a daemon crash loses no written page. Its
        # three fsyncs were each a synchronous write to the disk on the launch's path.
        container, pending, made = self._create(spec, sync_later=True, durable=not spec.auto_remove)
        if hold:
            # Before its start: the exit path must find it held (its log is still to be read).
            self._held.add(container.id)
        try:
            started = self.start_container(container.id)
        except BaseException:
            if pending is not None:
                quietly(pending.wait)               # before its directory goes to the trash
            self._held.discard(container.id)
            self._destroy(self.store.get(container.id), volumes=True)
            self.volumes.discard_unused(made)       # named volumes this run made
            raise
        if pending is not None:
            try:
                pending.wait()
            except BaseException:
                quietly(lambda: self.remove(container.id, force=True, volumes=True))
                raise
        return started

    def release(self, container_id: str) -> None:
        self._held.discard(container_id)
        container = self.store.by_id(container_id)
        if container is not None and container.spec.auto_remove and container.state == EXITED:
            self._destroy(container, volumes=True)      # it exited while held

    def create(self, spec: ContainerSpec) -> Container:
        return self._create(spec, sync_later=False)[0]

    def _create(self, spec: ContainerSpec, *, sync_later: bool,
                durable: bool = True) -> tuple[Container, PendingSync | None, builtins.list[str]]:
        """The container, its durable save if `sync_later`, and the volumes this create made."""
        image = self.images.get(spec.image)
        spec, new_volumes = self.volumes.claim(spec, image)     # anonymous volumes named, named ones made
        undo = [lambda: self.volumes.discard(new_volumes)]
        try:
            container, device_rules = plan_container(spec, image, self.networks, self.store.names())
            container_id = container.id
            # Its name reserved and its directory made (nothing saved yet): a crash from here to
            # the save leaves a directory without state, which reconcile removes with the cgroup
            # and root of that id. With its user-namespace range, if any.
            self.userns.add(container, self.store)
            undo.append(lambda: self.store.delete(container_id))
            paths = self.cgroups.create(container_id, self._policy_limits(container.name, spec))
            undo.append(lambda: self.cgroups.remove(paths))
            self.cgroups.set_devices(paths, device_rules)
            rootfs = self.rootfs.prepare(container_id, image, container.userns, volatile=spec.auto_remove)
            undo.append(lambda: self.rootfs.release(container_id))
            container.cgroup = paths.to_dict()
            container.cgroup_id = self.cgroups.cgroup_id(paths)
            container.rootfs = str(rootfs)
            self.volumes.fill(container, rootfs)         # empty volumes get the image's content
            # Its first record (durable unless `run` of a --rm one): it owns what is on disk.
            pending = self.store.save(container, durable=durable, sync_later=sync_later)
        except BaseException:
            for step in reversed(undo):
                quietly(step)
            raise
        self.events.emit(Event("container", "create", container.id, container.name,
                               attributes={"image": spec.image}))
        return container, pending, new_volumes

    def start(self, ref: str) -> Container:
        """The user's start: as docker's, it forgets an earlier stop and the restart count."""
        container = self.store.get(ref)
        if container.state == PAUSED:
            raise Conflict(f"container {container.name} is paused", hint=f"`corral unpause {container.name}`")
        if container.state not in LIVE:
            container.stopped_by_user = False
            container.restart_count = 0
        return self.start_container(container.id)

    def network_lock(self, container_id: str) -> threading.RLock:
        return self._network_locks[hash(container_id) % len(self._network_locks)]

    def start_container(self, container_id: str, *, by_policy: bool = False) -> Container:
        """Start a created or exited container; `by_policy`: its restart policy restarts it."""
        with self.network_lock(self.store.get(container_id).id):  # a connect meanwhile would be lost
            return self._start_container(container_id, by_policy=by_policy)

    def _start_container(self, container_id: str, *, by_policy: bool) -> Container:
        container = self.store.get(container_id)
        if container.state in LIVE:
            raise Conflict(f"container {container.name} is already running")
        directory = self.store.directory(container.id)
        reused = container.state == EXITED and self._prepare_again(container, directory)
        paths = CgroupPaths.from_dict(container.cgroup)
        networked = container.spec.network not in ("none", "host")
        security = of_spec(container.spec)
        request = launch_request(container, directory, self.networks, security,
                                 self._seccomp_filter(container, directory, security), self.volumes.data_dir)
        # The launcher joins them; a reused cgroup by writes only (launcher/place.h says why).
        request = replace(request, cgroup_procs=self.cgroups.placement(paths), cgroup_reused=reused)

        # A namespace made ahead (agent/network/pool.py), which the launcher joins; else its own.
        prepared = take_namespace(self.networks, container) if networked else None
        if prepared is not None:
            request = replace(request, network=f"join:{prepared.path}")

        def place(pid: int) -> None:
            self._place(container)
            if networked:
                attach_all(self.networks, container, pid, directory, prepared)

        try:
            launched = launch(self.launcher, request, directory / SHIM_LOG, place)
        except BaseException:
            quietly(lambda: self.bus.publish(ContainerStopped(self.entry(container), aborted=True)))
            if networked:
                quietly(lambda: self.networks.detach(container.id))
            set_attachments(container, [])
            raise
        finally:
            if prepared is not None:      # the init holds it now, or it goes with its veth
                prepared.close()
                self.networks.pool.refill()
        container.pid = launched.pid
        container.shim_pid = launched.shim_pid
        container.state = RUNNING
        container.exit_code, container.error, container.oom_killed = None, None, False
        container.restart_count += 1 if by_policy else 0
        container.started_at = time.time()
        if not container.spec.auto_remove:
            # A --rm container's start is not saved: a daemon killed while it runs finds its
            # live shim (reconcile adopts it), and killed after its exit finds `created` with
            # its shim.log, which reconcile finishes as the exit and removal this run would do.
            self.store.save(container)
        self.bus.publish(ContainerStarted(self.entry(container)))
        self.events.emit(Event("container", "start", container.id, container.name,
                               attributes={"image": container.spec.image, "pid": launched.pid}))
        if by_policy:
            self.events.emit(Event("container", "restart", container.id, container.name,
                                   attributes={"restartCount": container.restart_count,
                                               "policy": str(container.spec.restart_policy)}))
        if not self._exits.watch(container.id, launched.shim_pid):
            self._on_exit(container.id)
        return container

    def stop(self, ref: str, timeout: float | None = None, signal: int | None = None) -> Container:
        """`signal` (default the container's --stop-signal, else SIGTERM), then SIGKILL after
        `timeout` seconds (None: the container's --stop-timeout, else 10; negative: wait for
        ever). A stop is the user's: no restart policy brings the container back (but `always`
        at the daemon's next start)."""
        container = self.store.get(ref)
        self._mark_stopped_by_user(container)
        if container.state not in LIVE:
            return container
        if timeout is None:
            timeout = 10.0 if container.spec.stop_timeout is None else float(container.spec.stop_timeout)
        self._signal(container, signal or self._stop_signal(container))
        if container.state == PAUSED:      # the signal is delivered once the processes thaw, as docker does
            self._thaw_quietly(container)
        finished = self.wait(container.id, timeout=None if timeout < 0 else timeout)
        if finished.state in LIVE:
            self.cgroups.kill(CgroupPaths.from_dict(container.cgroup))
            finished = self.wait(container.id, timeout=10)
        self.events.emit(Event("container", "stop", container.id, container.name))
        return finished

    def kill(self, ref: str, signal: int = signals.SIGKILL) -> Container:
        container = self.store.get(ref)
        if container.state not in LIVE:
            raise Conflict(f"container {container.name} is not running")
        if signal in (signals.SIGKILL, self._stop_signal(container)):
            self._mark_stopped_by_user(container)     # docker: killing it is stopping it
        self._signal(container, signal)
        self.events.emit(Event("container", "kill", container.id, container.name,
                               attributes={"signal": int(signal)}))
        return container

    def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        container = self.store.get(ref)
        if container.state in LIVE:
            if not force:
                raise Conflict(f"container {container.name} is {container.state}",
                               hint=f"stop it first or use `corral rm -f {container.name}`")
            self._mark_stopped_by_user(container)
            self.cgroups.kill(CgroupPaths.from_dict(container.cgroup))
            container = self.wait(container.id, timeout=10)
            if container.state in LIVE:
                raise KernelError(f"container {container.name} did not die after SIGKILL")
        self._destroy(container, volumes=volumes)

    def exec(self, ref: str, command: builtins.list[str], env: builtins.list[str] | None = None,
             workdir: str | None = None, *, announce: bool = True, tty: bool = False, stdin: bool = False,
             console_size: tuple[int, int] | None = None, user: str | None = None) -> ExecProcess:
        """`announce=False`: no exec_start event (health checks, which would flood the log);
        `user` (USER[:GROUP], resolved in the container's /etc): instead of the container's."""
        container = self.store.get(ref)
        if container.state == PAUSED:
            raise Conflict(f"container {container.name} is paused, unpause the container before exec",
                           hint=f"`corral unpause {container.name}`")
        if container.state != RUNNING or not container.pid:
            raise Conflict(f"container {container.name} is not running",
                           hint="start a new one with `corral run`; `corral ps -a` shows its state")
        if not command:
            raise InvalidArgument("exec: a command is required")
        environment = merge_env(container.env, env or [], container.hostname)
        paths = CgroupPaths.from_dict(container.cgroup)
        seccomp = self.store.directory(container.id) / SECCOMP_FILE   # the container's own filter
        security = of_spec(container.spec)
        process = start_exec(self.launcher, container.pid, command, environment,
                             workdir or container.workdir, self.cgroups.procs_files(paths),
                             seccomp=seccomp if seccomp.exists() else None,
                             caps=capabilities.mask(security.caps), user=user or container.user or security.user,
                             group_add=list(container.spec.group_add),
                             ulimits=[limit.launcher_arg() for limit in container.spec.ulimits],
                             tty=tty, stdin=stdin, console_size=console_size)
        if announce:
            self.events.emit(Event("container", "exec_start", container.id, container.name,
                                   attributes={"command": command}))
        return process

    # ---- internals -----------------------------------------------------------------------

    def _policy_limits(self, name: str, spec: ContainerSpec) -> Limits:
        """The spec's limits tightened by the policies selecting the container."""
        return self.decider.limits(name, spec.image, dict(spec.labels), requested_limits(spec))

    def _seccomp_filter(self, container: Container, directory: Path, security) -> Path | None:
        """The container's profile with the policies' deny rules merged in: one filter, which
        corral-launch installs before exec (linked into the state directory, so exec uses it
        too and it goes with the container)."""
        denied = self.decider.seccomp_denied(container.name, container.spec.image, dict(container.spec.labels))
        return self.filters.install(security, denied, directory)

    def _prepare_again(self, container: Container, directory: Path) -> bool:
        """An exited container starts again in its own cgroup and root, made again after a
        reboot; the exit file of its last run goes. True: the cgroup is its last run's."""
        (directory / "exit").unlink(missing_ok=True)
        return not self._make_again(container)

    def _make_again(self, container: Container) -> bool:
        """Its cgroup made again if it is gone (a reboot, a removal cut short) and its root
        mounted if it is not; True when the cgroup was made (the record then needs a save)."""
        made = not self.cgroups.exists(CgroupPaths.from_dict(container.cgroup or {}))
        if made:
            paths = self.cgroups.create(container.id, self._policy_limits(container.name, container.spec))
            self.cgroups.set_devices(paths, device_rules(container.spec))     # the device list is the cgroup's
            container.cgroup, container.cgroup_id = paths.to_dict(), self.cgroups.cgroup_id(paths)
        self.rootfs.prepare(container.id, self.images.get(container.image_id), container.userns,
                            volatile=container.spec.auto_remove)
        return made

    def _signal(self, container: Container, signal: int) -> None:
        if container.pid is None:
            return      # never started
        try:
            os.kill(container.pid, signal)
        except ProcessLookupError:
            pass  # exited meanwhile: the exit watcher records it
        except OSError as exc:
            raise KernelError(f"cannot signal container {container.name} (pid {container.pid}): "
                              f"{exc.strerror}") from exc

    def entry(self, container: Container) -> CatalogEntry:
        """The container as the catalogue and every bus subscriber see it."""
        spec = container.spec
        return CatalogEntry(id=container.id, name=container.name, image=spec.image,
                            cgroup=CgroupPaths.from_dict(container.cgroup) if container.cgroup else CgroupPaths(""),
                            cgroup_id=container.cgroup_id or 0,
                            state=RUNNING if container.state == PAUSED else container.state,
                            labels=dict(spec.labels), created_at=container.created_at,
                            started_at=container.started_at or 0.0, requested=requested_limits(spec),
                            seccomp_file=str(self.store.directory(container.id) / SECCOMP_FILE))

    def _place(self, container: Container) -> None:
        """`placed`: its init is in the cgroup and has not exec'd. A subscriber's failure (the
        probes cannot count it, the enforcer cannot push a kill rule) fails the start."""
        if container.cgroup and container.cgroup_id:
            self.bus.publish(ContainerPlaced(self.entry(container)))

    def _follow(self, container: Container) -> None:
        """Watch a live shim adopted after a restart, and publish it placed and started (the
        probes count its cgroup again, the catalogue lists it)."""
        if container.shim_pid and self._exits.watch(container.id, container.shim_pid):
            self._place(container)
            self.bus.publish(ContainerStarted(self.entry(container)))
        else:
            self._on_exit(container.id)
