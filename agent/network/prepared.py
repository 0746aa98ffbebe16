"""Network namespaces made ahead for bridge containers: the pool's items (pool.py).

A prepared namespace is a new network namespace with `lo` up and a veth pair: `eth0` inside
(down, no address) and the host end on the default network's bridge (down), named `cpool`, the
daemon's tag and 6 random hex digits (interfaces.py). It is held only by descriptors of the daemon (the namespace and a netlink socket opened
in it), never bind-mounted: when the daemon exits or dies, the kernel frees the namespace and
deletes the pair with it, so a crash leaves nothing a later start has to find. (Reconcile still
deletes `cpool` veths on Corral's bridges: the kernel's clean-up runs after the process is gone.)

A container's start `claim`s one: the host end is renamed to the container's veth name
(interfaces.py), put on its network's bridge and brought up; eth0 gets the container's MAC,
address and default route over the socket already inside. Five small netlink requests (rtnl.py),
~0.3 ms, instead of creating the pair and entering the namespace (~3.5 ms; bench/README.md).
The launcher then joins the namespace (`--net join:PATH`) instead of making one. An item is
claimed once and never goes back to the pool: every container gets a namespace no one used.
"""
from __future__ import annotations

import ctypes
import os
import socket
import threading
from dataclasses import dataclass

from agent.errors import KernelError
from agent.network.interfaces import POOL_PREFIX
from agent.network.rtnl import Rtnl

CLONE_NEWNET = 0x40000000


@dataclass
class PreparedNamespace:
    netns: int           # descriptor of the namespace (the daemon's hold on it)
    inside: Rtnl         # a netlink socket opened in it
    host_veth: str       # the host end's pool name
    host_index: int
    index: int           # eth0's index inside

    @property
    def path(self) -> str:
        """Where another process (the launcher) opens the namespace while the daemon holds it."""
        return f"/proc/{os.getpid()}/fd/{self.netns}"

    def close(self) -> None:
        """Let go of it: once no process is in it either, the kernel deletes it and its veth."""
        self.inside.close()
        os.close(self.netns)


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


def prepare(bridge: str, tag: str) -> PreparedNamespace:
    """A prepared namespace whose host end is on `bridge`, named with the daemon's `tag` (see
    the module docstring)."""
    master = bridge_index(bridge)
    netns, inside = _new_namespace()
    name = POOL_PREFIX + tag + os.urandom(3).hex()
    host = Rtnl()
    try:
        host.add_veth(name, master=master, peer="eth0", peer_netns=netns,
                      what=f"cannot create veth {name} for a prepared network namespace on bridge {bridge}")
        host_index = host.index_of(name)
        index = inside.index_of("eth0")
    except BaseException:
        inside.close()
        os.close(netns)          # the pair goes with the namespace
        raise
    finally:
        host.close()
    return PreparedNamespace(netns=netns, inside=inside, host_veth=name, host_index=host_index, index=index)


def claim(prepared: PreparedNamespace, *, bridge: str, host_veth: str, address: str, prefix: int, mac: str,
          gateway: str | None) -> None:
    """Make the prepared namespace a container's endpoint on `bridge`: the host end renamed
    `host_veth`, on the bridge and up; eth0 with `mac`, `address/prefix`, up, and the default route
    via `gateway` (None: none)."""
    master = bridge_index(bridge)
    host = Rtnl()
    try:
        host.set_link(prepared.host_index, name=host_veth, master=master, up=True,
                      what=f"cannot take veth {prepared.host_veth} as {host_veth} on bridge {bridge}")
    finally:
        host.close()
    inside = prepared.inside
    where = f"eth0 ({address}/{prefix} via {gateway}) in a prepared network namespace"
    inside.set_link(prepared.index, mac=mac, up=True, what=f"cannot set up {where}")
    inside.add_address(prepared.index, address, prefix, what=f"cannot add the address of {where}")
    if gateway is not None:
        inside.add_default_route(prepared.index, gateway, what=f"cannot add the default route of {where}")
