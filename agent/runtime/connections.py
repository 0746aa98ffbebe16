"""Containers on several networks: `network connect`, `network disconnect`, and the attachments
made at start.

A container's networks are a list of NetworkEndpoint (network, aliases, ip) in its record
(`Container.networks`; None until its first connect or disconnect: then they are its spec's
`network`, with the settings `spec.networks` gives it, and the further `spec.networks`). Start
attaches each in order (eth0, eth1, ...). Connect on a running (or paused) container attaches at
once; on a created or exited one it is recorded and applied at the next start. Disconnect is
docker's: any network, the last one too (the container keeps its namespace, with `lo` only).

Published ports go with the spec's own network. The record is saved after the attachment is
made and before it is undone, so a daemon that dies in between leaves network state no record
claims, which the network manager's reconcile removes at the next start (never a record that
points at a veth that is gone).
"""
from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from agent.errors import Conflict, InvalidArgument, NotFound
from agent.network.model import MAX_NETWORKS, Attachment, NetworkEndpoint
from agent.runtime.model import LIVE, Container, ContainerSpec

if TYPE_CHECKING:
    from agent.runtime.containers import Runtime

NOT_NETWORKS = ("none", "host")


def _key(name: str) -> str:
    """`bridge` and `default` both name the default network."""
    return "bridge" if name in ("bridge", "default") else name


def check_spec_networks(spec: ContainerSpec) -> None:
    """`networks` of a spec: real networks, each once, and none with --net none or host."""
    if spec.network in NOT_NETWORKS:
        raise InvalidArgument(f"networks: a container with --net {spec.network} cannot join other networks",
                              field="networks")
    seen: set[str] = set()
    for index, endpoint in enumerate(spec.networks):
        if endpoint.network in NOT_NETWORKS:
            raise InvalidArgument(f"networks[{index}].network: {endpoint.network} is not a network a container "
                                  f"can join beside others", field=f"networks[{index}].network")
        if _key(endpoint.network) in seen:
            raise InvalidArgument(f"networks[{index}].network: {endpoint.network} is given twice",
                                  field=f"networks[{index}].network")
        seen.add(_key(endpoint.network))


def wanted(container: Container) -> list[NetworkEndpoint]:
    """The networks the container is to be on, in order (the first gets eth0)."""
    if container.networks is not None:
        return [NetworkEndpoint.from_dict(item, f"container.networks[{index}]")
                for index, item in enumerate(container.networks)]
    spec = container.spec
    if spec.network in NOT_NETWORKS:
        return []
    first = next((e for e in spec.networks if _key(e.network) == _key(spec.network)),
                 NetworkEndpoint(network=spec.network))
    return [first, *(e for e in spec.networks if e is not first)]


def attachments_of(container: Container) -> list[dict]:
    """Every attachment the container has (Attachment dicts), eth0's first."""
    return ([container.network] if container.network else []) + list(container.extra_attachments)


def set_attachments(container: Container, attachments: Sequence[Attachment | dict]) -> None:
    found = [a if isinstance(a, dict) else a.to_dict() for a in attachments]
    found.sort(key=lambda a: (len(a.get("interface", "eth0")), a.get("interface", "eth0")))
    container.network = found[0] if found else None
    container.extra_attachments = found[1:]


def _ports(container: Container, endpoint: NetworkEndpoint) -> list:
    return list(container.spec.ports) if _key(endpoint.network) == _key(container.spec.network) else []


def take_namespace(networks: Any, container: Container) -> Any:
    """A network namespace made ahead for the container's start (agent/network/pool.py), or None:
    the pool is empty or off, the container is on no network (it keeps `lo` only), or it has a
    user namespace (its network namespace must be owned by it, for its root to bind low ports
    or configure it: the launcher makes one)."""
    if container.userns or not wanted(container):
        return None
    return networks.pool.take()


def attach_all(networks: Any, container: Container, pid: int, directory: Path, prepared: Any = None) -> None:
    """At start: attach the container (its init is `pid`) to each of its networks, the first
    through `prepared` when it joined one (take_namespace); the caller detaches them all when
    this raises."""
    made: list[Attachment] = []
    for endpoint in wanted(container):
        made.append(networks.attach(container.id, container.name, pid, endpoint.network, _ports(container, endpoint),
                                    hostname=container.hostname, hosts_path=directory / "hosts",
                                    extra_hosts=container.spec.extra_hosts, aliases=endpoint.aliases,
                                    ip=endpoint.ip, prepared=prepared if not made else None))
        set_attachments(container, made)
    if not made:          # disconnected from every network: localhost still resolves
        from agent.network.rendering import LOCALHOST_LINES
        (directory / "hosts").write_text("\n".join(LOCALHOST_LINES) + "\n")


class Connections:
    """connect and disconnect, over the runtime that owns the containers."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.store = runtime.store

    def _networks(self) -> Any:
        if self.runtime.networks is None:
            raise Conflict("networking is not enabled in this daemon",
                           hint="the daemon's log says why the network manager did not start")
        return self.runtime.networks

    def _name(self, name: str) -> str:
        """The network's name in Corral's records (`bridge` is the default network's)."""
        return self.runtime.networks.default_network if name in ("bridge", "default") else name

    def connect(self, ref: str, network: str, aliases: Sequence[str] = (), ip: str | None = None) -> Container:
        manager = self._networks()
        endpoint = NetworkEndpoint.from_dict({"network": network, "aliases": list(aliases), "ip": ip})
        with self.runtime.network_lock(self.store.get(ref).id):
            container = self.store.get(ref)
            if container.spec.network in NOT_NETWORKS:
                raise Conflict(f"container {container.name} runs with --net {container.spec.network}: "
                               f"it cannot be connected to networks")
            if network in NOT_NETWORKS:
                raise Conflict(f"container {container.name} cannot be connected to the {network} network: "
                               f"--net {network} is chosen at create")
            target = manager.get(network)                      # NotFound naming it
            if ip is not None and ipaddress.IPv4Address(ip) not in ipaddress.IPv4Network(target.subnet):
                raise InvalidArgument(f"ip {ip}: not in the subnet {target.subnet} of network {target.name}",
                                      field="ip")
            endpoints = wanted(container)
            if any(self._name(e.network) == target.name for e in endpoints):
                raise Conflict(f"container {container.name} is already connected to network {network}")
            if len(endpoints) >= MAX_NETWORKS:
                raise Conflict(f"container {container.name} is on {MAX_NETWORKS} networks, the most it can be",
                               hint="disconnect it from one first")
            if container.state in LIVE and container.pid:
                attachment = manager.attach(container.id, container.name, container.pid, network,
                                            _ports(container, endpoint), hostname=container.hostname,
                                            hosts_path=self.store.directory(container.id) / "hosts",
                                            extra_hosts=container.spec.extra_hosts, aliases=endpoint.aliases,
                                            ip=endpoint.ip)
                container = self.store.get(container.id)    # it may have exited meanwhile (not under this lock)
                if container.state in LIVE:
                    set_attachments(container, [*attachments_of(container), attachment])
                else:                                       # its exit detached the rest: this one goes too
                    manager.detach(container.id, target.name)
            container.networks = [e.to_dict() for e in [*endpoints, endpoint]]
            self.store.save(container)
        self._event("connect", target.name, container)
        return container

    def disconnect(self, ref: str, network: str, force: bool = False) -> Container:
        manager = self._networks()
        with self.runtime.network_lock(self.store.get(ref).id):
            container = self.store.get(ref)
            if container.spec.network in NOT_NETWORKS or network in NOT_NETWORKS:
                raise Conflict(f"container {container.name} cannot be disconnected from {network}: "
                               f"--net {container.spec.network} is chosen at create")
            try:
                name = manager.get(network).name
            except NotFound:
                if not force:
                    raise
                name = self._name(network)                     # gone: the container's records are cleaned
            endpoints = wanted(container)
            keep = [e for e in endpoints if self._name(e.network) != name]
            attached = attachments_of(container)
            staying = [a for a in attached if a["network"] != name]
            if len(keep) == len(endpoints) and len(staying) == len(attached) and not force:
                raise Conflict(f"container {container.name} is not connected to network {network}")
            container.networks = [e.to_dict() for e in keep]
            set_attachments(container, staying)
            self.store.save(container)
            manager.detach(container.id, name, pid=container.pid if container.state in LIVE else None)
        self._event("disconnect", name, container)
        return container

    def _event(self, action: str, network: str, container: Container) -> None:
        """docker's network event: the network is the actor, the container an attribute."""
        from agent.events import Event
        self.runtime.events.emit(Event("network", action, network, network,
                                       attributes={"container": container.id, "name": network, "type": "bridge"}))
