"""The network manager's side of the pool of namespaces made ahead (pool.py, prepared.py).

An item is made for the default network: the network's allocator holds an address for it
(under `pool:` and the item's veth name, never a container id), and its eth0 gets that address,
its MAC and the default route while it waits. A start whose first network is the default one
and that asks for no address of its own takes the address over in one locked change of the
allocator (`hand_over`), so the start does only the host end's rename (one netlink request);
any other start reconfigures eth0 (prepared.claim) and the item's address is freed when the item
is closed. An address held for an item is never given to anyone else; the daemon's stop frees
those of the items it still holds, and after a crash the next start's reconcile frees them with
every other address no running container holds (records.py).
"""
from __future__ import annotations

import collections
import os
import threading
from typing import Any, Collection

from agent.errors import Conflict
from agent.network.interfaces import POOL_PREFIX, pool_pattern
from agent.network.ipam import AddressAllocator
from agent.network.model import Network, mac_of
from agent.network.prepared import Endpoint, PreparedNamespace
from agent.network.store import NetworkStore

HOLDER = "pool:"       # an allocator key that is a pool item's, not a container's


def make_item(store: NetworkStore, links: Any, network: Network, tag: str, avoid: Collection[str] = ()) -> PreparedNamespace:
    """A pool item on `network`'s bridge with an address of it held and set on eth0 (not one of
    `avoid` if another is free: those exited containers get back at their next start)."""
    name = POOL_PREFIX + tag + os.urandom(3).hex()
    allocator = store.allocator(network)
    address = allocator.allocate(HOLDER + name, avoid=avoid)
    try:
        item = links.prepare_namespace(network.bridge, name, Endpoint(address, network.prefix, mac_of(address),
                                                                      network.gateway))
    except BaseException:
        allocator.release(HOLDER + name)
        raise
    item.release = lambda: allocator.release(HOLDER + name)
    return item


def take_address(store: NetworkStore, network: Network, prepared: PreparedNamespace | None, container_id: str,
                 ip: str | None) -> str | None:
    """The address `prepared` was made with, now `container_id`'s, if the item fits this attach
    (made for `network`: its allocator holds the item's address; no address asked for); else
    None, and the caller allocates one."""
    if prepared is None or prepared.release is None or ip is not None:
        return None
    address = store.allocator(network).hand_over(HOLDER + prepared.host_veth, container_id)
    if address is not None:
        prepared.release = None            # the container's now: its detach frees it
    return address


def address_for(store: NetworkStore, network: Network, allocator: AddressAllocator, prepared: PreparedNamespace | None,
                container_id: str, ip: str | None, previous: str | None) -> str:
    """A container's address on `network` at an attach: `ip` if asked for; else the one it had
    before its exit (`previous`), if still free: a container started again gets its address back,
    as before the pool; else the item's; else the lowest free one."""
    if ip is None and previous is not None:
        try:
            return allocator.allocate(container_id, previous)
        except Conflict:
            pass                            # taken meanwhile
    return take_address(store, network, prepared, container_id, ip) or allocator.allocate(container_id, ip)


class Previous:
    """The address each exited container had on each network (kept for its next start), for
    the last `size` exits: a container removed right after its exit may leave one behind.
    Thread-safe: the teardown thread remembers, starts take, the pool's thread avoids them."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._held: collections.OrderedDict[str, dict[str, str]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def remember(self, container_id: str, network: str, address: str) -> None:
        with self._lock:
            self._held.setdefault(container_id, {})[network] = address
            self._held.move_to_end(container_id)
            while len(self._held) > self.size:
                self._held.popitem(last=False)

    def take(self, container_id: str, network: str) -> str | None:
        with self._lock:
            return self._held.get(container_id, {}).pop(network, None)

    def addresses(self, network: str) -> set[str]:
        with self._lock:
            return {held[network] for held in self._held.values() if network in held}

    def forget(self, container_id: str) -> None:
        with self._lock:
            self._held.pop(container_id, None)


def is_holder(key: str) -> bool:
    return key.startswith(HOLDER)


def remove_old_pool(links: Any, networks: list[Network], tag: str) -> None:
    """A previous run's pool veths, by the pool's thread before it fills: the kernel deletes
    them itself once their namespaces are freed, and a `link del` meanwhile waits for that
    (tens of ms), which the daemon's start to ready must not."""
    links.remove_links(links.veths(pool_pattern(tag), [n.bridge for n in networks]))
