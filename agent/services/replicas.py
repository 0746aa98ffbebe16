"""Replicas: the containers of a service, how one is made, and what the kernel says of it.

A replica is an ordinary container (`corral ps` lists it) named NAME.SLOT.SUFFIX and labelled
`corral.service=NAME`, `corral.service.slot=N` and `corral.service.version=V` (the service's
version it was made from): the labels are how the reconciler finds its replicas again after a
daemon restart, how metrics carry a `service` label and how policies select `services: [web]`.

Readiness and drain are read from the replica's own network namespace (/proc/PID/net/tcp): a
replica takes traffic once its port listens, and is stopped once its connections are done.
"""
from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from agent.runtime.model import RUNNING, Container, ContainerSpec
from agent.services.model import SERVICE_LABEL, SLOT_LABEL, VERSION_LABEL, Service, ServiceSpec

# /proc/net/tcp states (include/net/tcp_states.h)
_LISTEN = "0A"
_DONE = ("06", "07", "0A")        # TIME_WAIT, CLOSE, LISTEN: no connection left to serve


@dataclass(frozen=True)
class Replica:
    """One replica as the reconciler sees it."""

    container: Container
    slot: int
    version: int

    @property
    def id(self) -> str:
        return self.container.id

    @property
    def name(self) -> str:
        return self.container.name

    @property
    def running(self) -> bool:
        return self.container.state == RUNNING

    @property
    def address(self) -> str | None:
        network = self.container.network or {}
        return network.get("address")


def replica_spec(service: Service, slot: int, spec: ServiceSpec | None = None) -> ContainerSpec:
    """The container of slot `slot` (of `spec`, by default the service's own)."""
    spec = spec or service.spec
    labels = {**spec.labels, SERVICE_LABEL: spec.name, SLOT_LABEL: str(slot), VERSION_LABEL: str(service.version)}
    fields: dict[str, object] = {"image": spec.image, "command": list(spec.command), "name": f"{spec.name}.{slot}.{secrets.token_hex(3)}",
              "env": list(spec.env), "network": spec.network, "labels": labels}
    if spec.memory is not None:
        fields["memory"] = spec.memory
    if spec.cpus is not None:
        fields["cpus"] = spec.cpus
    if spec.health_cmd is not None:
        check: dict[str, object] = {"test": ["CMD-SHELL", spec.health_cmd]}
        if spec.health_interval is not None:
            check["interval"] = spec.health_interval
        if spec.health_retries is not None:
            check["retries"] = spec.health_retries
        fields["healthcheck"] = check
    return ContainerSpec.checked(**fields)


def replicas_of(containers: list[Container], name: str) -> list[Replica]:
    """The replicas of service `name` among `containers`, by slot then age."""
    found = []
    for container in containers:
        labels = container.spec.labels
        if labels.get(SERVICE_LABEL) != name:
            continue
        try:
            slot, version = int(labels.get(SLOT_LABEL, "0")), int(labels.get(VERSION_LABEL, "0"))
        except ValueError:
            slot, version = 0, 0
        found.append(Replica(container, slot, version))
    return sorted(found, key=lambda r: (r.slot, r.container.created_at))


def _sockets(pid: int, proc: Path) -> list[tuple[int, str]]:
    """(local port, state) of each TCP socket of the network namespace of `pid`."""
    found = []
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / str(pid) / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3:
                found.append((int(fields[1].rsplit(":", 1)[1], 16), fields[3]))
    return found


def listening(pid: int, port: int, proc: Path = Path("/proc")) -> bool:
    """Whether something in the namespace of `pid` listens on TCP `port`."""
    return any(local == port and state == _LISTEN for local, state in _sockets(pid, proc))


def open_connections(pid: int, port: int, proc: Path = Path("/proc")) -> int:
    """Connections to TCP `port` in the namespace of `pid` that are not finished yet."""
    return sum(1 for local, state in _sockets(pid, proc) if local == port and state not in _DONE)


def drain(replica: Replica, spec: ServiceSpec, proc: Path = Path("/proc"),
          clock: Callable[[], float] = time.monotonic, poll: float = 0.05) -> None:
    """Once a replica is out of the balancer: wait until its connections to the service's port
    are done, at most the stop grace period (then it is stopped, and what is left is cut)."""
    port, pid = spec.port, replica.container.pid
    if port is None or port.protocol != "tcp" or not pid:
        return
    deadline = clock() + spec.stop_grace_period
    while open_connections(pid, port.container_port, proc) and clock() < deadline:
        time.sleep(poll)
