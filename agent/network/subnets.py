"""Subnet planning: the next free /24 of the pool for a network without --subnet, and the
refusal of a subnet that overlaps another network's or a route of the host (traffic to it
would go the wrong way). Pure: the networks and the host's routes are passed in."""
from __future__ import annotations

import ipaddress
from typing import Iterable, Sequence

from agent.errors import Conflict
from agent.network.model import Network

POOL_PREFIX = 24
Route = tuple[str, str]         # (destination, interface), as bridge.Links.routes() lists them


def host_route_over(subnet: ipaddress.IPv4Network, routes: Iterable[Route], bridges: set[str]) -> str | None:
    """The host's route that overlaps `subnet`, as text, or None. A route on one of
    `bridges` (ours: a network's, or the one a network is about to use, left by an earlier
    daemon) is not a clash."""
    for destination, interface in routes:
        if interface not in bridges and ipaddress.IPv4Network(destination, strict=False).overlaps(subnet):
            return f"{destination} on {interface}"
    return None


def free_subnet(pool: ipaddress.IPv4Network, networks: Sequence[Network], routes: Sequence[Route]) -> str:
    """The first /24 of the pool that no network and no foreign route uses."""
    taken = [ipaddress.IPv4Network(n.subnet) for n in networks]
    bridges = {n.bridge for n in networks}
    for candidate in pool.subnets(new_prefix=POOL_PREFIX):
        if not any(candidate.overlaps(t) for t in taken) and host_route_over(candidate, routes, bridges) is None:
            return str(candidate)
    raise Conflict(f"no free /{POOL_PREFIX} left in the pool {pool}", hint="give the network a --subnet")


def check_overlap(network: Network, networks: Sequence[Network], routes: Sequence[Route]) -> None:
    """Refuse `network` when its subnet overlaps another network's or a foreign host route."""
    subnet = ipaddress.IPv4Network(network.subnet)
    for other in networks:
        if other.name != network.name and ipaddress.IPv4Network(other.subnet).overlaps(subnet):
            raise Conflict(f"subnet {network.subnet} overlaps {other.subnet} of network {other.name}",
                           hint="choose another --subnet")
    route = host_route_over(subnet, routes, {n.bridge for n in networks} | {network.bridge})
    if route is not None:
        raise Conflict(f"subnet {network.subnet} of network {network.name} overlaps the host's route {route}",
                       hint="choose another subnet (for the default network: the daemon's --default-subnet)")
