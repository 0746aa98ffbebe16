"""Life-cycle verbs beyond create/start/stop/rm: pause, unpause, rename, restart, update, top.

Each acts on one container through the Runtime's store, cgroup driver and bus, as docker's
verbs of the same names do, and logs its event (`pause`, `unpause`, `rename`, `restart`,
`update`). Pausing is the cgroup freezer (`cgroup.freeze`, or the v1 freezer): the processes
stay, stopped where they were, until unpause.
"""
from __future__ import annotations

import os
import subprocess
from typing import TYPE_CHECKING, Any

import msgspec

from agent import schema
from agent.catalog.bus import ContainerStarted
from agent.cgroups.driver import CgroupPaths
from agent.errors import Conflict, InvalidArgument, KernelError
from agent.events import Event
from agent.runtime.model import LIVE, NAME_PATTERN, PAUSED, RUNNING, Container, ContainerSpec

if TYPE_CHECKING:
    from agent.runtime.containers import Runtime

# `ps` arguments docker's `top` uses when none are given.
DEFAULT_PS_ARGS = "-ef"
PS_TIMEOUT = 10.0


class Lifecycle:
    """The verbs, over the runtime that owns the containers."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.store = runtime.store
        self.cgroups = runtime.cgroups

    def pause(self, ref: str) -> Container:
        container = self.store.get(ref)
        if container.state == PAUSED:
            raise Conflict(f"container {container.name} is already paused")
        if container.state != RUNNING:
            raise Conflict(f"container {container.name} is not running")
        self.cgroups.freeze(CgroupPaths.from_dict(container.cgroup))
        if container.state == RUNNING:      # it may have exited while freezing
            container.state = PAUSED
            self.store.save(container)
        self._event(container, "pause")
        return container

    def unpause(self, ref: str) -> Container:
        container = self.store.get(ref)
        if container.state != PAUSED:
            raise Conflict(f"container {container.name} is not paused")
        self.cgroups.thaw(CgroupPaths.from_dict(container.cgroup))
        if container.state == PAUSED:
            container.state = RUNNING
            self.store.save(container)
        self._event(container, "unpause")
        return container

    def rename(self, ref: str, name: str) -> Container:
        if not NAME_PATTERN.match(name):
            raise InvalidArgument(f"invalid container name {name!r}: use letters, digits, '_', '.' and '-', "
                                  "starting with a letter or digit", field="name")
        container = self.store.get(ref)
        old = container.name
        if name == old:
            raise Conflict(f"renaming container {old} to its current name")
        self.store.rename(container, name)
        networks = self.runtime.networks
        if container.network and networks is not None:
            from agent.runtime.connections import set_attachments
            set_attachments(container, networks.rename(container.id, name))   # peers' /etc/hosts follow
            self.store.save(container)
        # The catalogue (and the metrics' name label) learn the new name; `again`: not a new start.
        self.runtime.bus.publish(ContainerStarted(self.runtime.entry(container), again=True))
        self._event(container, "rename", oldName=old)
        return container

    def restart(self, ref: str, timeout: float | None = None, signal: int | None = None) -> Container:
        """Stop (if it runs) and start again, as the user's own start: docker's `restart`."""
        container = self.store.get(ref)
        if container.state in LIVE:
            self.runtime.stop(container.id, timeout=timeout, signal=signal)
        started = self.runtime.start(container.id)
        self._event(started, "restart")
        return started

    def update(self, ref: str, changes: dict[str, Any]) -> Container:
        """New limits (applied to the live cgroup first: a refusal changes nothing) and restart
        policy, saved in the container's spec."""
        container = self.store.get(ref)
        policy = changes.get("restart_policy")
        if policy is not None and policy.name != "no" and container.spec.auto_remove:
            raise Conflict(f"container {container.name}: its restart policy cannot be updated "
                           "because it is removed when it exits (--rm)")
        spec = ContainerSpec.from_dict({**container.spec.to_dict(), **schema.to_builtins(changes)})
        if container.cgroup and self.cgroups.exists(paths := CgroupPaths.from_dict(container.cgroup)):
            try:
                self.cgroups.set_limits(paths, self.runtime._policy_limits(container.name, spec))
            except KernelError as exc:
                raise KernelError(f"cannot update container {container.name}: {exc.message}",
                                  hint=exc.hint or "a memory limit below what it uses now is refused") from None
        container.spec = spec
        self.store.save(container)
        self._event(container, "update", **{k: str(v) for k, v in changes.items()})
        return container

    def top(self, ref: str, ps_args: str = "") -> dict[str, list]:
        """The host's `ps` over the container's processes: {"Titles": [...], "Processes": [[...]]},
        docker's answer to GET /containers/{id}/top."""
        container = self.store.get(ref)
        if container.state not in LIVE:
            raise Conflict(f"container {container.name} is not running")
        pids = set(self.cgroups.pids(CgroupPaths.from_dict(container.cgroup)))
        args = (ps_args or DEFAULT_PS_ARGS).split()
        try:
            # Wide and in the C locale: ps cuts lines at COLUMNS (80 without a terminal).
            result = subprocess.run(["ps", *args], capture_output=True, timeout=PS_TIMEOUT, check=False,
                                    env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "COLUMNS": "4096",
                                         "LC_ALL": "C"})
        except FileNotFoundError:
            raise KernelError("ps is not installed on the daemon's host", hint="install procps") from None
        except subprocess.TimeoutExpired:
            raise KernelError(f"ps {' '.join(args)} did not finish in {PS_TIMEOUT:.0f}s") from None
        if result.returncode != 0:
            message = result.stderr.decode(errors="replace").strip().splitlines()
            raise InvalidArgument(f"ps {' '.join(args)}: {message[0] if message else f'exit {result.returncode}'}",
                                  field="ps_args")
        return ps_table(result.stdout.decode(errors="replace"), pids, args)

    def _event(self, container: Container, action: str, **attributes: Any) -> None:
        self.runtime.events.emit(Event("container", action, container.id, container.name,
                                       attributes=attributes))


def ps_table(output: str, pids: set[int], args: list[str]) -> dict[str, list]:
    """docker's parse of ps output: titles from the header, each line cut into as many fields
    (the last, the command, keeps its spaces), only the lines whose PID is the container's."""
    lines = [line for line in output.splitlines() if line.strip()]
    if not lines:
        raise InvalidArgument(f"ps {' '.join(args)} printed nothing", field="ps_args")
    titles = lines[0].split()
    if "PID" not in titles:
        raise InvalidArgument(f"ps {' '.join(args)}: its output has no PID column", field="ps_args",
                              hint="keep the pid in the format, like -o pid,comm")
    column = titles.index("PID")
    processes = []
    for line in lines[1:]:
        fields = line.split(None, len(titles) - 1)
        try:
            pid = int(fields[column])
        except (IndexError, ValueError):
            continue
        if pid in pids:
            processes.append(fields)
    return {"Titles": titles, "Processes": processes}


def changes_of(update: msgspec.Struct) -> dict[str, Any]:
    """The fields of an update request that were given (None: leave as is)."""
    return {name: value for name in update.__struct_fields__
            if (value := getattr(update, name)) is not None}
