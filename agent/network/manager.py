"""`NetworkManager`: networks, and containers attached to them, for the runtime and the API.

State lives under `<root>/networks/<name>/`: `network.json` (the Network), `addresses.json`
(the allocator, see ipam.py) and `endpoints/<container id>.json` (each Attachment, with where
the container's /etc/hosts file is kept so it can be rewritten when neighbours come and go).
The kernel side (bridge.py, nat.py) is injected, so the bookkeeping can be driven by doubles.

Containers on one network find each other by name through /etc/hosts: each attachment's hosts
file lists the container and every other container of its network, and is rewritten in place
(the runtime bind-mounts it, so the inode must stay) whenever one attaches or detaches.
"""
from __future__ import annotations

import errno
import hashlib
import ipaddress
import json
import logging
import re
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Callable

from agent.atomic_file import write_atomically
from agent.errors import Conflict, CorralError, InvalidArgument, KernelError, NotFound
from agent.network.ipam import AddressAllocator, gateway_of
from agent.network.model import (RESERVED_NAMES, Attachment, Network, PortMapping, check_network_name,
                                 mac_of, parse_subnet)
from agent.network.nat import NatTable, container_tag, network_rules, network_tag, port_rules

log = logging.getLogger(__name__)

# Outside Docker's pools (172.17-31.x, 192.168.x), Podman's (10.88/10.89), Kubernetes'
# defaults (10.96/12, 10.244/16, k3s 10.42/10.43), CGNAT/Tailscale (100.64/10) and home
# routers (192.168.0/1.x); docs/networking.md says why, and the daemon can change both.
DEFAULT_NETWORK = "corral0"
DEFAULT_SUBNET = "10.213.0.0/16"
SUBNET_POOL = "10.214.0.0/16"        # user networks without --subnet get the next free /24
POOL_PREFIX = 24
VETH_PREFIX = "cv"
VETH_PATTERN = re.compile(VETH_PREFIX + r"[0-9a-f]{12}")
LOCALHOST_LINES = ("127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
                   "fe00::0\tip6-localnet", "ff00::0\tip6-mcastprefix",
                   "ff02::1\tip6-allnodes", "ff02::2\tip6-allrouters")


def host_veth_of(container_id: str) -> str:
    """The host end of a container's veth: `cv` and the 12-digit short id (15 bytes at most)."""
    return VETH_PREFIX + container_id[:12]


def bridge_of(name: str) -> str:
    """The bridge of a user network: a hash, since names may be longer than IFNAMSIZ allows."""
    return "cbr-" + hashlib.sha256(name.encode()).hexdigest()[:10]


def hosts_file(attachment: Attachment, peers: list[Attachment] = (), hostname: str | None = None) -> str:
    """/etc/hosts of a container: localhost, itself, then the other containers of its network."""
    names = [n for n in dict.fromkeys([hostname, attachment.container_name, attachment.container_id[:12]]) if n]
    lines = [*LOCALHOST_LINES, f"{attachment.address}\t{' '.join(names)}"]
    others = sorted((p for p in peers if p.container_id != attachment.container_id), key=lambda p: p.container_name)
    if others:
        lines.append(f"# containers on network {attachment.network}")
        lines += [f"{p.address}\t{p.container_name} {p.container_id[:12]}" for p in others]
    return "\n".join(lines) + "\n"


def hostname_file(hostname: str) -> str:
    return hostname + "\n"


def resolv_conf(host_file: Path = Path("/etc/resolv.conf"),
                fallback: Path = Path("/run/systemd/resolve/resolv.conf")) -> str:
    """The host's resolv.conf, unless its resolver listens on loopback (systemd-resolved's
    127.0.0.53, dnsmasq's 127.0.0.1), which a container cannot reach: then systemd-resolved's
    upstream list if there is one, else a file with no nameserver that says why."""
    for path in (host_file, fallback):
        try:
            text = path.read_text()
        except OSError:
            continue
        servers = [line.split()[1] for line in text.splitlines()
                   if line.split()[:1] == ["nameserver"] and len(line.split()) > 1]
        if servers and not any(_is_loopback(server) for server in servers):
            return text if text.endswith("\n") else text + "\n"
    return ("# corral: the host's resolver listens on loopback, which this container cannot reach;\n"
            "# no nameserver is set. Run the container with --net host, or bind-mount a resolv.conf.\n")


def _is_loopback(server: str) -> bool:
    try:
        return ipaddress.ip_address(server.split("%")[0]).is_loopback
    except ValueError:
        return False


class NetworkManager:
    """Networks and attachments. Thread-safe: the API serves requests on several threads."""

    def __init__(self, root: Path, *, default_network: str = DEFAULT_NETWORK,
                 default_subnet: str = DEFAULT_SUBNET, subnet_pool: str = SUBNET_POOL,
                 table: str = "corral", links=None, nat: NatTable | None = None,
                 host_resolv: Path = Path("/etc/resolv.conf"),
                 clock: Callable[[], float] = time.time) -> None:
        self.directory = Path(root) / "networks"
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

    # ---- networks -----------------------------------------------------------------------

    def ensure_default(self) -> Network:
        """The default network, created on first use; its bridge and rules are (re)made."""
        with self._lock:
            try:
                network = self._load(self.default_network)
            except CorralError as exc:
                if not isinstance(exc, NotFound):   # torn: made again from the daemon's settings
                    log.error("%s; the default network is written again", exc)
                subnet = self.default_subnet
                network = Network(name=self.default_network, subnet=subnet, gateway=gateway_of(subnet),
                                  bridge=self.default_network, created=self._clock())
                self._check_overlap(network)
                self._save(network)
            self._ensure_kernel(network)
            return network

    def create_network(self, name: str, subnet: str | None = None, *, internal: bool = False) -> Network:
        with self._lock:
            check_network_name(name)
            if name in RESERVED_NAMES or name == self.default_network:
                raise Conflict(f"network name {name!r} is reserved", hint="choose another name")
            if self._path(name).exists():
                raise Conflict(f"network {name} already exists", hint="`corral network ls` lists them")
            chosen = str(parse_subnet(subnet)) if subnet is not None else self._free_subnet()
            network = Network(name=name, subnet=chosen, gateway=gateway_of(chosen), bridge=bridge_of(name),
                              created=self._clock(), internal=internal)
            self._check_overlap(network)
            self._save(network)
            try:
                self._ensure_kernel(network)
            except BaseException:
                self._forget_network(network)
                raise
            return network

    def list_networks(self) -> list[Network]:
        networks = []
        if self.directory.is_dir():
            for entry in sorted(self.directory.iterdir()):
                if (entry / "network.json").is_file():
                    try:
                        networks.append(self._load(entry.name))
                    except CorralError as exc:   # one torn file must not hide the other networks
                        log.error("%s; network %s is skipped until the file is fixed", exc, entry.name)
        return networks

    def get(self, name: str) -> Network:
        return self._load(self._resolve(name))

    def inspect(self, name: str) -> dict:
        network = self.get(name)
        return {**network.to_dict(),
                "containers": {a.container_id: {"name": a.container_name, "address": f"{a.address}/{a.prefix}",
                                                "mac": a.mac, "ports": [str(p) for p in a.ports]}
                               for a in self.attachments(network.name)}}

    def remove_network(self, name: str) -> None:
        with self._lock:
            network = self.get(name)
            if network.name == self.default_network:
                raise Conflict(f"network {network.name} is the default network and cannot be removed")
            users = self.attachments(network.name)
            if users:
                raise Conflict(f"network {network.name} is in use by container(s) "
                               f"{', '.join(sorted(a.container_name for a in users))}",
                               hint="remove those containers first")
            self._forget_network(network)

    # ---- containers ---------------------------------------------------------------------

    def attach(self, container_id: str, container_name: str, pid: int, network_name: str,
               ports: list[PortMapping] = (), *, hostname: str | None = None,
               hosts_path: Path | None = None) -> Attachment:
        """Give the container (its init is `pid`) an interface on the network, an address, a
        default route and its published ports. Everything or nothing: on failure whatever was
        made is removed before this raises."""
        with self._lock:
            name = self._resolve(network_name)
            network = self.ensure_default() if name == self.default_network else self._load(name)
            if name != self.default_network:
                self._ensure_kernel(network)
            if self._find_record(container_id) is not None:
                raise Conflict(f"container {container_name} is already attached to a network")
            ports = list(ports)
            self._check_ports(container_name, ports)
            undo: list[Callable[[], None]] = []
            allocator = self._allocator(network)
            try:
                address = allocator.allocate(container_id)
                undo.append(lambda: allocator.release(container_id))
                attachment = Attachment(network=network.name, container_id=container_id,
                                        container_name=container_name, host_veth=host_veth_of(container_id),
                                        address=address, prefix=network.prefix, mac=mac_of(address),
                                        gateway=network.gateway, ports=ports)
                self.links.create_endpoint(pid=pid, bridge=network.bridge, host_veth=attachment.host_veth,
                                           address=address, prefix=network.prefix, mac=attachment.mac,
                                           gateway=network.gateway)
                undo.append(lambda: self.links.remove_link(attachment.host_veth))
                if ports:
                    self.nat.add(port_rules(self.nat.name, attachment))
                    undo.append(lambda: self.nat.remove_tagged(container_tag(container_id)))
                self._save_record(attachment, hostname, hosts_path)
                undo.append(lambda: self._record_path(network.name, container_id).unlink(missing_ok=True))
                if hosts_path is not None:
                    self._write_hosts(Path(hosts_path), hosts_file(attachment, self.attachments(network.name),
                                                                   hostname))
            except BaseException:
                for step in reversed(undo):
                    _quietly(step)
                raise
            self._refresh_hosts(network.name, skip=container_id)
            return attachment

    def detach(self, container_id: str) -> None:
        """Remove the container's veth, address and rules; detaching twice is not an error."""
        with self._lock:
            found = self._find_record(container_id)
            self.nat.remove_tagged(container_tag(container_id))
            self.links.remove_link(host_veth_of(container_id))
            if found is None:
                return
            attachment, _hostname, _hosts = found
            try:
                self._allocator(self._load(attachment.network)).release(container_id)
            except NotFound:
                pass
            self._record_path(attachment.network, container_id).unlink(missing_ok=True)
            self._refresh_hosts(attachment.network)

    def attachments(self, network_name: str | None = None) -> list[Attachment]:
        """Every attachment, or those of one network."""
        names = [self._resolve(network_name)] if network_name else [n.name for n in self.list_networks()]
        found = []
        for name in names:
            folder = self.directory / name / "endpoints"
            if folder.is_dir():
                for path in sorted(folder.glob("*.json")):
                    found.append(self._read_record(path)[0])
        return found

    def hosts_file(self, attachment: Attachment, hostname: str | None = None) -> str:
        return hosts_file(attachment, self.attachments(attachment.network), hostname)

    def hostname_file(self, hostname: str) -> str:
        return hostname_file(hostname)

    def resolv_conf(self) -> str:
        return resolv_conf(self.host_resolv)

    # ---- daemon start -------------------------------------------------------------------

    def reconcile(self, live: dict[str, Attachment]) -> list[str]:
        """At daemon start: keep what `live` (the running containers' attachments) uses and
        remove the veths, addresses, records and nft rules of every other container. Bridges
        and network rules are made again where missing (after a reboot). Returns the ids of
        the containers whose leftovers were removed."""
        with self._lock:
            self.ensure_default()
            networks = self.list_networks()
            for network in networks:
                self._ensure_kernel(network, again=True)
            stale: set[str] = set()
            for network in networks:
                allocator = self._allocator(network)
                try:
                    allocator.addresses()
                except CorralError as exc:   # rebuilt below from the running containers
                    log.error("%s; rebuilding it from the running containers", exc)
                    allocator.path.rename(allocator.path.with_name(allocator.path.name + ".torn"))
                for container_id in allocator.addresses():
                    if container_id not in live:
                        stale.add(container_id)
                        allocator.release(container_id)
                folder = self.directory / network.name / "endpoints"
                for path in folder.glob("*.json") if folder.is_dir() else ():
                    if path.stem not in live:
                        stale.add(path.stem)
                        path.unlink(missing_ok=True)
            live_short = {cid[:12] for cid in live}
            for name in self.links.veths(VETH_PATTERN, [n.bridge for n in networks]):
                if name[len(VETH_PREFIX):] not in live_short:
                    stale.add(name[len(VETH_PREFIX):])
                    self.links.remove_link(name)
            tags = self.nat.tags()
            for tag in tags:
                if tag.startswith("corral:container:") and tag.split(":", 2)[2] not in live:
                    stale.add(tag.split(":", 2)[2])
                    self.nat.remove_tagged(tag)
            known = {n.name: n for n in networks}
            for container_id, attachment in live.items():
                network = known.get(attachment.network)
                if network is None:
                    log.warning("container %s is attached to network %s, which no longer exists",
                                container_id[:12], attachment.network)
                    continue
                self._allocator(network).reserve(container_id, attachment.address)
                try:
                    found = self._find_record(container_id)
                except CorralError as exc:
                    log.error("%s; written again from the container's state", exc)
                    found = None
                if found is None:
                    self._save_record(attachment, None, None)
                if attachment.ports and container_tag(container_id) not in tags:
                    self.nat.add(port_rules(self.nat.name, attachment))
            for network in networks:
                self._refresh_hosts(network.name)
            return sorted(stale)

    # ---- internals ----------------------------------------------------------------------

    def _resolve(self, name: str) -> str:
        """`bridge` and `default` are the default network, as `--net bridge` asks for."""
        return self.default_network if name in ("bridge", "default") else check_network_name(name)

    def _path(self, name: str) -> Path:
        return self.directory / name / "network.json"

    def _load(self, name: str) -> Network:
        path = self._path(name)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise NotFound(f"network {name} does not exist", hint="`corral network ls` lists networks") from None
        except (OSError, ValueError) as exc:
            raise CorralError(f"network file {path} is unreadable: {exc}") from None
        return Network.from_dict(data, where=str(path))

    def _save(self, network: Network) -> None:
        write_atomically(self._path(network.name), json.dumps(network.to_dict(), indent=1) + "\n")

    def _allocator(self, network: Network) -> AddressAllocator:
        return AddressAllocator(self.directory / network.name / "addresses.json", network.subnet)

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
        shutil.rmtree(self.directory / network.name, ignore_errors=True)

    def _free_subnet(self) -> str:
        taken = [ipaddress.IPv4Network(n.subnet) for n in self.list_networks()]
        for candidate in self.subnet_pool.subnets(new_prefix=POOL_PREFIX):
            if not any(candidate.overlaps(t) for t in taken) and not self._host_route_over(candidate):
                return str(candidate)
        raise Conflict(f"no free /{POOL_PREFIX} left in the pool {self.subnet_pool}",
                       hint="give the network a --subnet")

    def _host_route_over(self, subnet: ipaddress.IPv4Network, own_bridge: str | None = None) -> str | None:
        # A route on a bridge of ours (one this state knows, or the bridge this network is
        # about to use, left by an earlier daemon) is not a clash.
        bridges = {n.bridge for n in self.list_networks()} | {own_bridge}
        for destination, interface in self.links.routes():
            if interface not in bridges and ipaddress.IPv4Network(destination, strict=False).overlaps(subnet):
                return f"{destination} on {interface}"
        return None

    def _check_overlap(self, network: Network) -> None:
        subnet = ipaddress.IPv4Network(network.subnet)
        for other in self.list_networks():
            if other.name != network.name and ipaddress.IPv4Network(other.subnet).overlaps(subnet):
                raise Conflict(f"subnet {network.subnet} overlaps {other.subnet} of network {other.name}",
                               hint="choose another --subnet")
        route = self._host_route_over(subnet, network.bridge)
        if route is not None:
            raise Conflict(f"subnet {network.subnet} of network {network.name} overlaps the host's route {route}",
                           hint="choose another subnet (for the default network: the daemon's --default-subnet)")

    def _check_ports(self, container_name: str, ports: list[PortMapping]) -> None:
        seen: list[PortMapping] = []
        for port in ports:
            for other in seen:
                if _clash(port, other):
                    raise Conflict(f"port {port} is published twice for container {container_name}")
            seen.append(port)
            for attachment in self.attachments():
                for other in attachment.ports:
                    if _clash(port, other):
                        raise Conflict(f"host port {port.host_port}/{port.protocol} is already published "
                                       f"by container {attachment.container_name} ({other})")
            _check_host_port(port)

    def _record_path(self, network: str, container_id: str) -> Path:
        return self.directory / network / "endpoints" / f"{container_id}.json"

    def _save_record(self, attachment: Attachment, hostname: str | None, hosts_path: Path | None) -> None:
        record = {"attachment": attachment.to_dict(), "hostname": hostname,
                  "hosts_path": str(hosts_path) if hosts_path else None}
        write_atomically(self._record_path(attachment.network, attachment.container_id),
                          json.dumps(record, indent=1) + "\n")

    @staticmethod
    def _read_record(path: Path) -> tuple[Attachment, str | None, str | None]:
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise CorralError(f"endpoint file {path} is unreadable: {exc}") from None
        return Attachment.from_dict(record["attachment"], where=str(path)), record.get("hostname"), \
            record.get("hosts_path")

    def _find_record(self, container_id: str) -> tuple[Attachment, str | None, str | None] | None:
        if self.directory.is_dir():
            for entry in self.directory.iterdir():
                path = entry / "endpoints" / f"{container_id}.json"
                if path.is_file():
                    return self._read_record(path)
        return None

    def _refresh_hosts(self, network_name: str, skip: str | None = None) -> None:
        """Rewrite the hosts file of every container of the network (best effort: a container
        whose file is gone is being removed)."""
        folder = self.directory / network_name / "endpoints"
        records = [self._read_record(path) for path in sorted(folder.glob("*.json"))] if folder.is_dir() else []
        peers = [record[0] for record in records]
        for attachment, hostname, hosts_path in records:
            if hosts_path and attachment.container_id != skip:
                try:
                    self._write_hosts(Path(hosts_path), hosts_file(attachment, peers, hostname))
                except CorralError as exc:
                    log.warning("cannot update the hosts file of container %s: %s", attachment.container_name, exc)

    @staticmethod
    def _write_hosts(path: Path, text: str) -> None:
        # In place (truncate and write), not by rename: the file is bind-mounted into the
        # container, and a bind mount follows the inode.
        try:
            with open(path, "w") as handle:
                handle.write(text)
        except OSError as exc:
            raise KernelError(f"cannot write the hosts file {path}: {exc.strerror}") from exc


def _clash(one: PortMapping, other: PortMapping) -> bool:
    return one.protocol == other.protocol and one.host_port == other.host_port and \
        (one.host_ip == other.host_ip or "0.0.0.0" in (one.host_ip, other.host_ip))


def _check_host_port(port: PortMapping) -> None:
    """Refuse a host port a process on the host already listens on: the DNAT would hide it."""
    kind = socket.SOCK_STREAM if port.protocol == "tcp" else socket.SOCK_DGRAM
    probe = socket.socket(socket.AF_INET, kind)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((port.host_ip, port.host_port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise Conflict(f"host port {port.host_ip}:{port.host_port}/{port.protocol} is in use on the host",
                           hint="stop what listens there or publish another host port") from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise InvalidArgument(f"publish {port}: {port.host_ip} is not an address of this host") from None
        raise KernelError(f"cannot check host port {port}: {exc.strerror}") from exc
    finally:
        probe.close()


def _quietly(step: Callable[[], None]) -> None:
    try:
        step()
    except Exception:  # undoing goes on past one failed step; the log keeps it
        log.exception("network clean-up step failed")
