"""Network namespaces made ahead for bridge containers: the pool's items (pool.py).

A prepared namespace is a new network namespace with `lo` up and a veth pair: `eth0` inside and
the host end on the default network's bridge (down), named `cpool`, the daemon's tag and 6 random
hex digits (interfaces.py). The pool makes it for the default network (pooled.py): eth0 has an
address the network's allocator holds for the item, its MAC and the default route, and is up.
It is held only by descriptors of the daemon (the namespace and a netlink socket opened in it),
never bind-mounted: when the daemon exits or dies, the kernel frees the namespace and deletes
the pair with it, so a crash leaves nothing a later start has to find. (The pool's thread still
deletes `cpool` veths on Corral's bridges: the kernel's clean-up runs after the process is gone.)

A container's start `claim`s one: the host end is renamed to the container's veth name
(interfaces.py), put on its network's bridge and brought up, one request; eth0 keeps what it
was given if that is the container's (the default network, the item's address), else gets the
container's MAC, address and default route over the socket already inside (four more requests,
rtnl.py). ~0.03-0.3 ms, instead of creating the pair and entering the namespace (~3.5 ms;
bench/README.md). The launcher joins the namespace (`--net join:PATH`) instead of making one.
An item is claimed once and never goes back to the pool: every container gets a namespace no
one used.
"""
from __future__ import annotations

import ctypes
import logging
import os
import socket
import threading
from dataclasses import dataclass
from typing import Callable

from agent.errors import KernelError
from agent.network.rtnl import Rtnl

CLONE_NEWNET = 0x40000000

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Endpoint:
    """What a pool item's eth0 is given ahead: the default network's settings and an address
    the network's allocator holds for the item (pooled.py)."""
    address: str
    prefix: int
    mac: str
    gateway: str


@dataclass
class PreparedNamespace:
    netns: int           # descriptor of the namespace (the daemon's hold on it)
    inside: Rtnl         # a netlink socket opened in it
    host_veth: str       # the host end's pool name
    host_index: int
    index: int           # eth0's index inside
    master: int = 0      # the bridge the host end is on
    endpoint: Endpoint | None = None            # eth0's settings made ahead, if any
    release: Callable[[], None] | None = None   # frees the address held for it (None: handed over)

    @property
    def path(self) -> str:
        """Where another process (the launcher) opens the namespace while the daemon holds it."""
        return f"/proc/{os.getpid()}/fd/{self.netns}"

    def close(self) -> None:
        """Let go of it: once no process is in it either, the kernel deletes it and its veth;
        the address held for it is freed unless a container took it."""
        self.inside.close()
        os.close(self.netns)
        release, self.release = self.release, None
        if release is not None:
            try:
                release()
            except Exception:  # the next start's reconcile frees it
                log.exception("cannot free the address of pool item %s", self.host_veth)


def _new_namespace() -> tuple[int, Rtnl]:
    """A new network namespace with lo up: a short-lived thread unshares into it, opens it and a
    netlink socket there (both stay bound to it), and ends; the daemon's threads never move."""
    result: dict = {}

    def enter() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(CLONE_NEWNET) != 0:
            result["error"] = KernelError(f"cannot make a network namespace: {os.strerror(ctypes.get_errno())}")
            return
        try:
            result["netns"] = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            inside = Rtnl()
            result["inside"] = inside
            inside.set_link(1, up=True, what="cannot bring lo up in a new network namespace")
        except (OSError, KernelError) as exc:
            result["error"] = exc

    thread = threading.Thread(target=enter, name="corral-netns-new")
    thread.start()
    thread.join()
    if "error" in result:
        if "inside" in result:
            result["inside"].close()
        if "netns" in result:
            os.close(result["netns"])
        error = result["error"]
        raise error if isinstance(error, KernelError) else KernelError(f"cannot make a network namespace: {error}")
    return result["netns"], result["inside"]


def bridge_index(bridge: str) -> int:
    try:
        return socket.if_nametoindex(bridge)       # an ioctl, not a netlink dump
    except OSError:
        raise KernelError(f"bridge {bridge} does not exist",
                          hint="the daemon recreates it at start; restart it, or recreate the network") from None


def prepare(bridge: str, name: str, endpoint: Endpoint | None = None) -> PreparedNamespace:
    """A prepared namespace whose host end `name` is on `bridge` (down), with eth0 given
    `endpoint`'s MAC, address and default route and up, if given (see the module docstring)."""
    master = bridge_index(bridge)
    netns, inside = _new_namespace()
    host = Rtnl()
    try:
        host.add_veth(name, master=master, peer="eth0", peer_netns=netns,
                      what=f"cannot create veth {name} for a prepared network namespace on bridge {bridge}")
        host_index = host.index_of(name)
        index = inside.index_of("eth0")
        if endpoint is not None:
            _configure(inside, index, endpoint, "in a new network namespace")
    except BaseException:
        inside.close()
        os.close(netns)          # the pair goes with the namespace
        raise
    finally:
        host.close()
    return PreparedNamespace(netns=netns, inside=inside, host_veth=name, host_index=host_index, index=index,
                             master=master, endpoint=endpoint)


def _configure(inside: Rtnl, index: int, endpoint: Endpoint, where: str) -> None:
    """eth0 up with the endpoint's MAC, address and (a gateway given) default route."""
    what = f"eth0 ({endpoint.address}/{endpoint.prefix} via {endpoint.gateway}) {where}"
    inside.set_link(index, mac=endpoint.mac, up=True, what=f"cannot set up {what}")
    inside.add_address(index, endpoint.address, endpoint.prefix, what=f"cannot add the address of {what}")
    if endpoint.gateway:
        inside.add_default_route(index, endpoint.gateway, what=f"cannot add the default route of {what}")


def claim(prepared: PreparedNamespace, *, bridge: str, host_veth: str, address: str, prefix: int, mac: str,
          gateway: str | None) -> None:
    """Make the prepared namespace a container's endpoint on `bridge`: the host end renamed
    `host_veth`, on the bridge and up; eth0 with `mac`, `address/prefix`, up, and the default route
    via `gateway` (None: none). What the item was given ahead is not done again: for the
    endpoint it was made for, this is one request, the host end's."""
    master = bridge_index(bridge)
    wanted = Endpoint(address, prefix, mac, gateway or "")
    host = Rtnl()
    try:
        host.set_link(prepared.host_index, name=host_veth, master=master if master != prepared.master else None,
                      up=True, what=f"cannot take veth {prepared.host_veth} as {host_veth} on bridge {bridge}")
    finally:
        host.close()
    made = prepared.endpoint
    if made == wanted:
        return
    inside = prepared.inside
    where = "in a prepared network namespace"
    if made is not None:        # made for another network or address: its address goes, its route with it
        inside.del_address(prepared.index, made.address, made.prefix,
                           what=f"cannot remove {made.address}/{made.prefix} from eth0 {where}")
    _configure(inside, prepared.index, wanted, where)
