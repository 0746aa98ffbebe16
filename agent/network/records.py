"""Reconcile's repair of a live container's network records (NetworkManager.reconcile): its
address reserved, its endpoint record and its published ports' rules written again where a
crash or a damaged file lost them.
"""
from __future__ import annotations

import logging

from agent.errors import CorralError
from agent.network.model import Attachment, Network
from agent.network.nat import NatTable, container_tag, port_rules
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
