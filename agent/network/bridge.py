"""The netlink side of networking, with pyroute2: bridges, veth pairs, addresses, routes.

A container's veth pair is created with its peer already in the container's network namespace
(`IFLA_NET_NS_FD` on the peer), named `eth0` and given its MAC there. Creating the peer in
place costs about 2 ms; creating it on the host and moving it costs about 20 ms more (the
kernel waits for an RCU grace period on every move), and attach is on the launch path. The
inside of the namespace is configured through a netlink socket opened in that namespace: a
short-lived thread `setns`es into it and opens the socket, which stays bound to the namespace
it was made in; the daemon's own threads never change namespace and nothing forks.

Every OSError or NetlinkError becomes a KernelError naming the interface or process at fault.
"""
from __future__ import annotations

import ctypes
import errno
import os
import re
import socket
import threading
from contextlib import contextmanager
from typing import Iterable, Iterator

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from agent.errors import KernelError
from agent.network.model import mac_of
from agent.network.prepared import Endpoint, PreparedNamespace, claim, prepare
from agent.network.rtnl import Rtnl

CLONE_NEWNET = 0x40000000
PROC = "/proc"
SYSCTL = "/proc/sys/net/ipv4"


def _error(what: str, exc: BaseException) -> KernelError:
    code = getattr(exc, "code", None) or getattr(exc, "errno", None)
    reason = os.strerror(code) if isinstance(code, int) and code > 0 else str(exc)
    return KernelError(f"{what}: {reason}")


@contextmanager
def _iproute() -> Iterator[IPRoute]:
    try:
        ipr = IPRoute()
    except OSError as exc:
        raise _error("cannot open a netlink socket", exc) from exc
    try:
        yield ipr
    finally:
        ipr.close()


def _index(ipr: IPRoute, name: str) -> int | None:
    try:
        return ipr.link("get", ifname=name)[0]["index"]
    except NetlinkError as exc:
        if exc.code == errno.ENODEV:
            return None
        raise


def _namespace_socket(netns_fd: int, interface: str | None = None) -> tuple[IPRoute, int | None]:
    """An IPRoute whose socket lives in the namespace of `netns_fd` (see the module docstring),
    and the index of `interface` there, looked up by the thread inside with an ioctl (a netlink
    `link get` is ~0.8 ms of pyroute2's encoding and decoding on the start's path)."""
    result: dict = {}

    def enter() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(netns_fd, CLONE_NEWNET) != 0:
            result["error"] = OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
            return
        try:
            result["index"] = socket.if_nametoindex(interface) if interface else None
            result["ipr"] = IPRoute()
        except OSError as exc:
            result["error"] = exc
        # The thread ends here, in the container's namespace; it is never reused.

    thread = threading.Thread(target=enter, name="corral-netns")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["ipr"], result["index"]


def write_sysctl(path: str, value: str) -> None:
    try:
        with open(path) as handle:
            if handle.read().strip() == value:
                return
        with open(path, "w") as handle:
            handle.write(value)
    except OSError as exc:
        raise KernelError(f"cannot set {path} to {value}: {exc.strerror}") from exc


class Links:
    """Bridges and container veths on the host, through netlink. `proc` and `sysctl` are the
    roots of /proc and /proc/sys/net/ipv4 (injectable like psutil's)."""

    def __init__(self, *, proc: str = PROC, sysctl: str = SYSCTL) -> None:
        self._proc = proc
        self._sysctl = sysctl

    # ---- bridges ------------------------------------------------------------------------

    def ensure_bridge(self, name: str, gateway: str, prefix: int) -> None:
        """The bridge exists, holds `gateway/prefix`, is up, and may route 127/8 (see nat.py).

        Its MAC is fixed (derived from the gateway): a bridge without one takes the lowest MAC
        of its ports and changes it as containers come and go, which would leave stale gateway
        entries in the containers' ARP caches.
        """
        with _iproute() as ipr:
            try:
                index = _index(ipr, name)
                if index is None:
                    try:
                        ipr.link("add", ifname=name, kind="bridge", address=mac_of(gateway))
                    except NetlinkError as exc:
                        if exc.code != errno.EEXIST:
                            raise
                    index = _index(ipr, name)
                held = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"])
                        for a in ipr.get_addr(index=index, family=socket.AF_INET)}
                if (gateway, prefix) not in held:
                    ipr.addr("add", index=index, address=gateway, prefixlen=prefix)
                ipr.link("set", index=index, state="up")
            except NetlinkError as exc:
                raise _error(f"cannot set up bridge {name} with {gateway}/{prefix}", exc) from exc
        # route_localnet lets a connection to 127.0.0.1:HOSTPORT, DNATed in the output chain,
        # leave through the bridge with its loopback source (masqueraded in postrouting).
        write_sysctl(f"{self._sysctl}/conf/{name}/route_localnet", "1")
        # Containers' traffic to anywhere but the bridge is routed by the host.
        write_sysctl(f"{self._sysctl}/ip_forward", "1")

    def remove_bridge(self, name: str) -> None:
        self.remove_link(name)

    def exists(self, name: str) -> bool:
        with _iproute() as ipr:
            try:
                return _index(ipr, name) is not None
            except NetlinkError as exc:
                raise _error(f"cannot look up interface {name}", exc) from exc

    # ---- container endpoints --------------------------------------------------------------

    def create_endpoint(self, *, pid: int, bridge: str, host_veth: str, address: str, prefix: int,
                        mac: str, gateway: str, interface: str = "eth0", default_route: bool = True) -> None:
        """A veth pair: `host_veth` on `bridge`, its peer `interface` in the network namespace of
        `pid` with `address/prefix`, `mac`, up, and (with `default_route`: the container's first
        network) a default route via `gateway`; the subnet's own route comes with the address.

        All or nothing: on failure the pair is deleted before this raises.
        """
        netns = self._open_netns(pid)
        try:
            with _iproute() as ipr:
                bridge_index = self._bridge_index(bridge)
                try:
                    # One request: the pair, the host end on the bridge and up (a lookup and a
                    # set less; pyroute2 decodes each answer in Python, ~0.5 ms apiece).
                    ipr.link("add", ifname=host_veth, kind="veth", master=bridge_index, state="up",
                             peer={"ifname": interface, "net_ns_fd": netns, "address": mac})
                except NetlinkError as exc:
                    raise _error(f"cannot create veth {host_veth} with peer {interface} in the network "
                                 f"namespace of process {pid}", exc) from exc
                try:
                    self._configure_inside(netns, pid, interface, address, prefix,
                                           gateway if default_route else None)
                except BaseException as exc:
                    try:
                        ipr.link("del", ifname=host_veth)
                    except NetlinkError:
                        pass   # already gone with its namespace
                    if isinstance(exc, NetlinkError):
                        raise _error(f"cannot attach veth {host_veth} to bridge {bridge}", exc) from exc
                    raise
        finally:
            os.close(netns)

    def prepare_namespace(self, bridge: str, name: str, endpoint: Endpoint | None = None) -> PreparedNamespace:
        """A network namespace made ahead, its veth's host end `name` on `bridge`, eth0 given
        `endpoint` (prepared.py)."""
        return prepare(bridge, name, endpoint)

    def claim_endpoint(self, prepared: PreparedNamespace, *, bridge: str, host_veth: str, address: str,
                       prefix: int, mac: str, gateway: str | None) -> None:
        """`create_endpoint` for a container that joined `prepared`: its eth0 is already there.
        On failure the caller closes `prepared`, and the kernel deletes the pair with it."""
        claim(prepared, bridge=bridge, host_veth=host_veth, address=address, prefix=prefix, mac=mac, gateway=gateway)

    def set_default_route(self, pid: int, gateway: str) -> None:
        """Point the default route of `pid`'s namespace at `gateway` (its first network left,
        the next one takes over), as docker does when the gateway's network is disconnected."""
        netns = self._open_netns(pid)
        try:
            inside, _ = _namespace_socket(netns)
        except OSError as exc:
            raise _error(f"cannot enter the network namespace of process {pid}", exc) from exc
        finally:
            os.close(netns)
        try:
            inside.route("replace", dst="0.0.0.0/0", gateway=gateway)
        except NetlinkError as exc:
            raise _error(f"cannot set the default route via {gateway} in the network namespace of process {pid}",
                         exc) from exc
        finally:
            inside.close()

    def _open_netns(self, pid: int) -> int:
        try:
            return os.open(f"{self._proc}/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise KernelError(f"process {pid} has exited: its network namespace is gone") from None
        except OSError as exc:
            raise KernelError(f"cannot open the network namespace of process {pid}: {exc.strerror}") from exc

    def _bridge_index(self, bridge: str) -> int:
        try:
            index: int | None = socket.if_nametoindex(bridge)     # an ioctl, not a netlink dump
        except OSError:
            index = None
        if index is None:
            raise KernelError(f"bridge {bridge} does not exist",
                              hint="the daemon recreates it at start; restart it, or recreate the network")
        return index

    @staticmethod
    def _configure_inside(netns: int, pid: int, interface: str, address: str, prefix: int,
                          gateway: str | None) -> None:
        try:
            inside, index = _namespace_socket(netns, interface)
        except OSError as exc:
            raise _error(f"cannot enter the network namespace of process {pid} or find {interface} there",
                         exc) from exc
        try:
            inside.addr("add", index=index, address=address, prefixlen=prefix)
            inside.link("set", index=index, state="up")
            # lo: the launcher brings it up in every namespace it makes (loopback_up).
            if gateway is not None:     # replace: a lower interface takes the route from a higher one
                inside.route("replace", dst="0.0.0.0/0", gateway=gateway)
        except NetlinkError as exc:
            raise _error(f"cannot configure {interface} ({address}/{prefix} via {gateway}) in the "
                         f"network namespace of process {pid}", exc) from exc
        finally:
            inside.close()

    def remove_link(self, name: str) -> None:
        """Delete an interface (a veth takes its peer with it); a missing one is not an error."""
        self.remove_links([name])

    def remove_links(self, names: Iterable[str]) -> None:
        """`remove_link` of each, over one netlink socket with hand-packed requests (rtnl.py:
        pyroute2 spent ~1 ms opening its socket and ~0.5 ms per request in Python, on the daemon's
        GIL beside the next start; a container's exit deletes its veths here)."""
        sock = Rtnl()
        try:
            for name in names:
                sock.del_link(name)
        finally:
            sock.close()

    def veths(self, pattern: re.Pattern, bridges: Iterable[str]) -> list[str]:
        """Names of the veths that match `pattern` in full and are ports of one of `bridges`
        (so a second Corral, a test's, never sees the other's interfaces)."""
        with _iproute() as ipr:
            try:
                links = ipr.get_links()
            except NetlinkError as exc:
                raise _error("cannot list interfaces", exc) from exc
        by_index = {link["index"]: link.get_attr("IFLA_IFNAME") for link in links}
        wanted = set(bridges)
        names = []
        for link in links:
            name = link.get_attr("IFLA_IFNAME")
            kind = link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND")
            master = by_index.get(link.get_attr("IFLA_MASTER"))
            if kind == "veth" and name and pattern.fullmatch(name) and master in wanted:
                names.append(name)
        return names

    def addresses(self, name: str) -> list[str]:
        """The IPv4 addresses (`a.b.c.d/len`) an interface holds; [] when it does not exist."""
        with _iproute() as ipr:
            index = _index(ipr, name)
            if index is None:
                return []
            return [f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}"
                    for a in ipr.get_addr(index=index, family=socket.AF_INET)]

    def routes(self) -> list[tuple[str, str]]:
        """The host's IPv4 routes of the main table as (destination CIDR, interface), default
        route left out: what a new subnet must not overlap."""
        with _iproute() as ipr:
            try:
                routes = ipr.get_routes(family=socket.AF_INET, table=254)
                names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
            except NetlinkError as exc:
                raise _error("cannot list routes", exc) from exc
        found = []
        for route in routes:
            if route["dst_len"] == 0:
                continue
            found.append((f"{route.get_attr('RTA_DST')}/{route['dst_len']}",
                          names.get(route.get_attr("RTA_OIF"), "?")))
        return found
