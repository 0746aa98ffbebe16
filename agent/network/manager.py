"""`NetworkManager`: networks, and containers attached to them, for the runtime and the API.

The orchestration only: what is kept on disk is store.py's, the name-resolution files are
rendering.py's, port checks ports.py's and subnet planning subnets.py's. The kernel side
(bridge.py, nat.py) is injected, so the bookkeeping can be driven by doubles.

Containers on one network find each other by name through /etc/hosts: each attachment's hosts
file lists the container and every other container of its network, and is rewritten in place
(the runtime bind-mounts it, so the inode must stay) whenever one attaches or detaches.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from agent.errors import Conflict, CorralError, InvalidArgument, NotFound
from agent.network.interfaces import (
    VETH_PATTERN,
    VETH_PREFIX,
    bridge_of,
    free_slot,
    host_veth_of,
    pool_tag,
    slot_of,
)
from agent.network.ipam import gateway_of
from agent.network.model import (
    MAX_NETWORKS,
    RESERVED_NAMES,
    Attachment,
    Network,
    PortMapping,
    check_network_name,
    mac_of,
    parse_subnet,
)
from agent.network.nat import NatTable, container_tag, network_rules, network_tag, port_rules
from agent.network.pool import NamespacePool
from agent.network.pooled import Previous, address_for, make_item, remove_old_pool
from agent.network.ports import check_ports
from agent.network.records import free_stale_records, keep_records, remove_stale_rules
from agent.network.rendering import hostname_file, hosts_file, refresh_hosts, resolv_conf, write_container_hosts
from agent.network.store import Endpoint, NetworkStore
from agent.network.subnets import check_overlap, free_subnet
from agent.network.teardown import Teardown

__all__ = ["DEFAULT_NETWORK", "DEFAULT_SUBNET", "SUBNET_POOL", "VETH_PATTERN", "VETH_PREFIX", "NetworkManager",
           "bridge_of", "host_veth_of", "hostname_file", "hosts_file", "resolv_conf"]

log = logging.getLogger(__name__)

# Outside Docker's pools (172.17-31.x, 192.168.x), Podman's (10.88/10.89), Kubernetes'
# defaults (10.96/12, 10.244/16, k3s 10.42/10.43), CGNAT/Tailscale (100.64/10) and home
# routers (192.168.0/1.x); docs/networking.md says why, and the daemon can change both.
DEFAULT_NETWORK = "corral0"
DEFAULT_SUBNET = "10.213.0.0/16"
SUBNET_POOL = "10.214.0.0/16"        # user networks without --subnet get the next free /24
POOL_START_DELAY = 1.0               # seconds after reconcile before the netns pool fills (pool.py)


class NetworkManager:
    """Networks and attachments. Thread-safe: the API serves requests on several threads."""

    def __init__(self, root: Path, *, default_network: str = DEFAULT_NETWORK,
                 default_subnet: str = DEFAULT_SUBNET, subnet_pool: str = SUBNET_POOL,
                 table: str = "corral", links: Any = None, nat: NatTable | None = None,
                 host_resolv: Path = Path("/etc/resolv.conf"),
                 clock: Callable[[], float] = time.time, netns_pool: int = 0) -> None:
        self.directory = Path(root) / "networks"
        self.store = NetworkStore(self.directory)
        self.default_network = check_network_name(default_network)
        if len(default_network) > 15:
            raise InvalidArgument(f"default network {default_network!r}: its bridge takes its name, "
                                  f"so it must be 15 characters at most")
        self.default_subnet = str(parse_subnet(default_subnet, where="default subnet"))
        self.subnet_pool = ipaddress.IPv4Network(subnet_pool)
        if links is None:
            from agent.network.bridge import Links
            links = Links()
        self.links = links
        self.nat = nat if nat is not None else NatTable(table)
        self.host_resolv = Path(host_resolv)
        self._clock = clock
        self._lock = threading.RLock()
        self._ready: set[str] = set()   # networks whose bridge and rules this manager has made
        # Host ports published without a container attachment: owner ("service web") -> port.
        self.reserved: dict[str, PortMapping] = {}
        self.teardown = Teardown(self._detach_exited)
        self.previous = Previous()
        # Namespaces made ahead for starts on a bridge (pool.py); filled once reconcile is done.
        self.pool_tag = pool_tag(root)
        self.pool = NamespacePool(
            netns_pool, lambda: make_item(self.store, self.links, self.store.load(self.default_network), self.pool_tag,
                                          avoid=self.previous.addresses(self.default_network)),
            before_fill=lambda: remove_old_pool(self.links, self.list_networks(), self.pool_tag))

    def close(self) -> None:
        """At the daemon's stop: queued detaches finished, the pool's namespaces let go."""
        self.pool.close()
        self.teardown.close()

    # ---- networks -----------------------------------------------------------------------

    def ensure_default(self) -> Network:
        """The default network, created on first use; its bridge and rules are (re)made."""
        with self._lock:
            try:
                network = self.store.load(self.default_network)
            except CorralError as exc:
                if not isinstance(exc, NotFound):   # torn: made again from the daemon's settings
                    log.error("%s; the default network is written again", exc)
                subnet = self.default_subnet
                network = Network(name=self.default_network, subnet=subnet, gateway=gateway_of(subnet),
                                  bridge=self.default_network, created=self._clock())
                self._check_overlap(network)
                self.store.save(network)
            self._ensure_kernel(network)
            return network

    def create_network(self, name: str, subnet: str | None = None, *, internal: bool = False) -> Network:
        with self._lock:
            check_network_name(name)
            if name in RESERVED_NAMES or name == self.default_network:
                raise Conflict(f"network name {name!r} is reserved", hint="choose another name")
            if self.store.exists(name):
                raise Conflict(f"network {name} already exists", hint="`corral network ls` lists them")
            chosen = (str(parse_subnet(subnet)) if subnet is not None
                      else free_subnet(self.subnet_pool, self.store.networks(), self.links.routes()))
            network = Network(name=name, subnet=chosen, gateway=gateway_of(chosen), bridge=bridge_of(name),
                              created=self._clock(), internal=internal)
            self._check_overlap(network)
            self.store.save(network)
            try:
                self._ensure_kernel(network)
            except BaseException:
                self._forget_network(network)
                raise
            return network

    def list_networks(self) -> list[Network]:
        return self.store.networks()

    def get(self, name: str) -> Network:
        return self.store.load(self._resolve(name))

    def inspect(self, name: str) -> dict:
        network = self.get(name)
        return {**network.to_dict(),
                "containers": {a.container_id: {"name": a.container_name, "address": f"{a.address}/{a.prefix}",
                                                "mac": a.mac, "ports": [str(p) for p in a.ports],
                                                "interface": a.interface, "aliases": list(a.aliases)}
                               for a in self.attachments(network.name)}}

    def remove_network(self, name: str) -> None:
        self.teardown.wait()
        with self._lock:
            network = self.get(name)
            if network.name == self.default_network:
                raise Conflict(f"network {network.name} is the default network and cannot be removed")
            users = self._attachments(network.name)
            if users:
                raise Conflict(f"network {network.name} is in use by container(s) "
                               f"{', '.join(sorted(a.container_name for a in users))}",
                               hint="remove those containers first")
            self._forget_network(network)

    # ---- containers ---------------------------------------------------------------------

    def attach(self, container_id: str, container_name: str, pid: int, network_name: str,
               ports: Sequence[PortMapping] = (), *, hostname: str | None = None,
               hosts_path: Path | None = None, extra_hosts: Sequence[str] = (),
               aliases: Sequence[str] = (), ip: str | None = None, prepared: Any = None) -> Attachment:
        """Give the container (its init is `pid`) an interface on the network, an address (`ip`,
        else the next free one), its published ports, and the default route if this is its first
        network or its lowest interface (the default route goes via the lowest ethN). Its
        network's peers resolve its name and `aliases` to it. Everything or nothing:
        on failure whatever was made is removed before this raises. `prepared`: the pool's namespace
        the container joined (pool.py), whose eth0 this network takes if it is the first."""
        # What an exited container's queued detach still holds: its own records, and an address
        # or host ports another one may ask for (teardown.py).
        self.teardown.wait(None if ip is not None or ports else container_id)
        with self._lock:
            name = self._resolve(network_name)
            network = self.ensure_default() if name == self.default_network else self.store.load(name)
            if name != self.default_network:
                self._ensure_kernel(network)
            present = self.store.find_endpoints(container_id)
            if any(e.attachment.network == network.name for e in present):
                raise Conflict(f"container {container_name} is already connected to network {network.name}")
            slot = free_slot(e.attachment.interface for e in present)
            published = list(ports)
            if published:           # every container's records read: only for a container that publishes
                check_ports(container_name, published, self._attachments(), reserved=self.reserved)
            undo: list[Callable[[], object]] = []     # each step's result is of no interest
            allocator = self.store.allocator(network)
            try:
                address = address_for(self.store, network, allocator, prepared if slot == 0 else None, container_id,
                                      ip, self.previous.take(container_id, network.name))
                undo.append(lambda: allocator.release(container_id))
                attachment = Attachment(network=network.name, container_id=container_id,
                                        container_name=container_name, host_veth=host_veth_of(container_id, slot),
                                        address=address, prefix=network.prefix, mac=mac_of(address),
                                        gateway=network.gateway, interface=f"eth{slot}", ports=published,
                                        aliases=list(dict.fromkeys(aliases)))
                default_route = all(slot < slot_of(e) for e in present)
                if prepared is not None and slot == 0:
                    self.links.claim_endpoint(prepared, bridge=network.bridge, host_veth=attachment.host_veth,
                                              address=address, prefix=network.prefix, mac=attachment.mac,
                                              gateway=network.gateway if default_route else None)
                else:
                    self.links.create_endpoint(pid=pid, bridge=network.bridge, host_veth=attachment.host_veth,
                                               address=address, prefix=network.prefix, mac=attachment.mac,
                                               gateway=network.gateway, interface=attachment.interface,
                                               default_route=default_route)
                undo.append(lambda: self.links.remove_link(attachment.host_veth))
                if published:
                    self.nat.add(port_rules(self.nat.name, attachment))
                    undo.append(lambda: self.nat.remove_tagged(container_tag(container_id)))
                self.store.save_endpoint(Endpoint(attachment, hostname, str(hosts_path) if hosts_path else None,
                                                  tuple(extra_hosts)))
                undo.append(lambda: self.store.remove_endpoint(network.name, container_id))
                if hosts_path is not None:
                    write_container_hosts(self.store, container_id, strict=True)
            except BaseException:
                for step in reversed(undo):
                    _quietly(step)
                raise
            refresh_hosts(self.store, network.name, skip=container_id)
            return attachment

    def detach(self, container_id: str, network_name: str | None = None, *, pid: int | None = None) -> None:
        """Remove the container's veth, address, rules and names on `network_name`, or on every
        network (None: the container has stopped or is being removed). When the network holding
        its default route is left and `pid` runs, the next network's gateway takes the route.
        Detaching twice is not an error; a detach queued at the container's exit does it all."""
        if network_name is None:
            self.previous.forget(container_id)      # removed (or its start failed): no next start
            if self.teardown.pending(container_id):
                return
        self.teardown.wait(container_id)
        self._detach(container_id, network_name, pid=pid)

    def detach_exited(self, container_id: str) -> None:
        """The container has exited: `detach` from every network, queued (teardown.py)."""
        self.teardown.submit(container_id)

    def _detach_exited(self, container_id: str) -> None:
        # Outside the lock: this waits for the kernel's clean-up of the namespace (tens of ms),
        # which must not hold up other containers' attaches.
        self.links.remove_links(host_veth_of(container_id, slot) for slot in range(MAX_NETWORKS))
        self._detach(container_id, None, links_gone=True)

    def _detach(self, container_id: str, network_name: str | None, *, pid: int | None = None,
                links_gone: bool = False) -> None:
        with self._lock:
            endpoints = self.store.find_endpoints(container_id)
            if network_name is None:
                leaving = endpoints
                # Only published ports make rules of a container (reading the table is ~1 ms);
                # rules a crash left without their endpoint record go at the next start's reconcile.
                if any(e.attachment.ports for e in endpoints):
                    self.nat.remove_tagged(container_tag(container_id))
                if not links_gone:
                    self.links.remove_links(host_veth_of(container_id, slot) for slot in range(MAX_NETWORKS))
            else:
                name = self._resolve(network_name)
                leaving = [e for e in endpoints if e.attachment.network == name]
                for endpoint in leaving:
                    if endpoint.attachment.ports:
                        self.nat.remove_tagged(container_tag(container_id))
                    self.links.remove_link(endpoint.attachment.host_veth)
            for endpoint in leaving:
                network = endpoint.attachment.network
                if links_gone:                      # exited: its next start takes the address back
                    self.previous.remember(container_id, network, endpoint.attachment.address)
                try:
                    self.store.allocator(self.store.load(network)).release(container_id)
                except NotFound:
                    pass
                self.store.remove_endpoint(network, container_id)
                refresh_hosts(self.store, network)
            staying = [e for e in endpoints if e not in leaving]
            if network_name is not None and staying:
                write_container_hosts(self.store, container_id)
                if leaving and endpoints[0] in leaving and pid is not None:   # it held the default route
                    self.links.set_default_route(pid, staying[0].attachment.gateway)

    def rename(self, container_id: str, container_name: str) -> list[Attachment]:
        """The container's attachments under its new name; its peers' hosts files follow."""
        with self._lock:
            renamed = []
            for found in self.store.find_endpoints(container_id):
                attachment = dataclasses.replace(found.attachment, container_name=container_name)
                self.store.save_endpoint(dataclasses.replace(found, attachment=attachment))
                renamed.append(attachment)
            for attachment in renamed:
                refresh_hosts(self.store, attachment.network)
            return renamed

    def reserve_port(self, owner: str, port: PortMapping) -> None:
        """Keep containers off a host port that `owner` publishes by other means (a service's
        balancer); the caller has checked it is free."""
        with self._lock:
            self.reserved[owner] = port

    def release_port(self, owner: str) -> None:
        with self._lock:
            self.reserved.pop(owner, None)

    def attachments(self, network_name: str | None = None) -> list[Attachment]:
        """Every attachment, or those of one network; exited containers' queued detaches done first."""
        self.teardown.wait()
        return self._attachments(network_name)

    def _attachments(self, network_name: str | None = None) -> list[Attachment]:
        names = [self._resolve(network_name)] if network_name else [n.name for n in self.list_networks()]
        return [endpoint.attachment for name in names for endpoint in self.store.endpoints(name)]

    def hosts_file(self, attachment: Attachment, hostname: str | None = None) -> str:
        return hosts_file(attachment, self._attachments(attachment.network), hostname)

    def hostname_file(self, hostname: str) -> str:
        return hostname_file(hostname)

    def resolv_conf(self) -> str:
        return resolv_conf(self.host_resolv)

    # ---- daemon start -------------------------------------------------------------------

    def reconcile(self, live: Mapping[str, Attachment | Sequence[Attachment]]) -> list[str]:
        """At daemon start: keep what `live` (the running containers' attachments, one or a list
        per container) uses and remove every other veth, address, record and nft rule, those
        of a live container's network it no longer is on included. Bridges and network rules
        are made again where missing (after a reboot). Returns the ids of the containers whose
        leftovers were removed."""
        wanted = {cid: [found] if isinstance(found, Attachment) else list(found) for cid, found in live.items()}
        pairs = {(a.network, cid) for cid, found in wanted.items() for a in found}
        with self._lock:
            self.ensure_default()
            networks = self.list_networks()
            for network in networks:
                self._ensure_kernel(network, again=True)
            stale = free_stale_records(self.store, networks, pairs)
            kept = {a.host_veth for found in wanted.values() for a in found}
            for name in self.links.veths(VETH_PATTERN, [n.bridge for n in networks]):
                if name not in kept:
                    stale.add(name[len(VETH_PREFIX):len(VETH_PREFIX) + 12])
                    self.links.remove_link(name)
            published = {cid for cid, found in wanted.items() if any(a.ports for a in found)}
            tags = self.nat.tags()
            stale |= remove_stale_rules(self.nat, tags, published)
            known = {n.name: n for n in networks}
            for container_id, found in wanted.items():
                for attachment in found:
                    keep_records(self.store, self.nat, container_id, attachment, known, tags)
            for network in networks:
                refresh_hosts(self.store, network.name)
        self.pool.start(delay=POOL_START_DELAY)
        return sorted(stale)

    # ---- internals ----------------------------------------------------------------------

    def _resolve(self, name: str) -> str:
        """`bridge` and `default` are the default network, as `--net bridge` asks for."""
        return self.default_network if name in ("bridge", "default") else check_network_name(name)

    def _ensure_kernel(self, network: Network, *, again: bool = False) -> None:
        """Make the bridge and the network's rules if missing. Done once per network for the
        life of the manager (a few ms saved on every launch); reconcile does it `again`."""
        if network.name in self._ready and not again:
            return
        self.links.ensure_bridge(network.bridge, network.gateway, network.prefix)
        if network_tag(network.name) not in self.nat.tags():
            self.nat.add(network_rules(self.nat.name, network))
        self._ready.add(network.name)

    def _forget_network(self, network: Network) -> None:
        self._ready.discard(network.name)
        self.nat.remove_tagged(network_tag(network.name))
        self.links.remove_bridge(network.bridge)
        self.store.forget(network)

    def _check_overlap(self, network: Network) -> None:
        check_overlap(network, self.store.networks(), self.links.routes())


def _quietly(step: Callable[[], object]) -> None:
    try:
        step()
    except Exception:  # undoing goes on past one failed step; the log keeps it
        log.exception("network clean-up step failed")
