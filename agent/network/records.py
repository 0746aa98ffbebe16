"""Reconcile's records (NetworkManager.reconcile): addresses (those a crash left held for pool
items too), endpoint records and published ports' rules no running container claims are freed; a live container's address is reserved and
its endpoint record and rules are written again where a crash or a damaged file lost them.
"""
from __future__ import annotations

import logging

from agent.errors import CorralError
from agent.network.model import Attachment, Network
from agent.network.nat import NatTable, container_tag, port_rules
from agent.network.pooled import is_holder
from agent.network.store import Endpoint, NetworkStore

log = logging.getLogger(__name__)


def keep_records(store: NetworkStore, nat: NatTable, container_id: str, attachment: Attachment,
                 known: dict[str, Network], tags: set[str]) -> None:
    """The records of a live container's attachment, written again if missing."""
    owner = known.get(attachment.network)
    if owner is None:
        log.warning("container %s is attached to network %s, which no longer exists",
                    container_id[:12], attachment.network)
        return
    store.allocator(owner).reserve(container_id, attachment.address)
    try:
        found = store.find_endpoint(container_id, attachment.network)
    except CorralError as exc:
        log.error("%s; written again from the container's state", exc)
        found = None
    if found is None:
        store.save_endpoint(Endpoint(attachment))
    if attachment.ports and container_tag(container_id) not in tags:
        nat.add(port_rules(nat.name, attachment))


def free_stale_records(store: NetworkStore, networks: list[Network], pairs: set[tuple[str, str]]) -> set[str]:
    """Free the address and endpoint record of each (network, container) not in `pairs`; the
    ids of the containers they were. A torn address file is set aside, to be rebuilt from the
    running containers (keep_records)."""
    stale: set[str] = set()
    for network in networks:
        allocator = store.allocator(network)
        try:
            allocator.addresses()
        except CorralError as exc:
            log.error("%s; rebuilding it from the running containers", exc)
            allocator.path.rename(allocator.path.with_name(allocator.path.name + ".torn"))
        for container_id in allocator.addresses():
            if (network.name, container_id) not in pairs:
                if not is_holder(container_id):      # a pool item's, which a crash left (pooled.py)
                    stale.add(container_id)
                allocator.release(container_id)
        for path in store.endpoint_paths(network.name):
            if (network.name, path.stem) not in pairs:
                stale.add(path.stem)
                path.unlink(missing_ok=True)
    return stale


def remove_stale_rules(nat: NatTable, tags: set[str], published: set[str]) -> set[str]:
    """Remove the port rules of containers not in `published`; their ids."""
    stale = set()
    for tag in tags:
        if tag.startswith("corral:container:") and tag.split(":", 2)[2] not in published:
            stale.add(tag.split(":", 2)[2])
            nat.remove_tagged(tag)
    return stale
