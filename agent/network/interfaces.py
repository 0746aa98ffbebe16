"""Names of Corral's interfaces: the host end of a container's veth on each of its networks
(`cv` + short id + slot, within IFNAMSIZ), the host end of a prepared namespace's veth while it
waits in the pool (`cpool` + the daemon's tag + 6 random hex digits; prepared.py), the slot
(ethN) a new attachment takes, and the bridge of a user network."""
from __future__ import annotations

import hashlib
import re
from typing import Iterable

from agent.errors import Conflict
from agent.network.model import MAX_NETWORKS
from agent.network.store import Endpoint

VETH_PREFIX = "cv"
VETH_PATTERN = re.compile(VETH_PREFIX + r"[0-9a-f]{12}[1-9]?")
POOL_PREFIX = "cpool"


def pool_tag(root: object) -> str:
    """4 hex digits of the daemon's root: daemons sharing a bridge (tests, benches) each find
    only their own pool items, and a daemon started again on its root finds its last run's."""
    return hashlib.sha256(str(root).encode()).hexdigest()[:4]


def pool_pattern(tag: str) -> re.Pattern:
    return re.compile(POOL_PREFIX + tag + r"[0-9a-f]{6}")


def host_veth_of(container_id: str, slot: int = 0) -> str:
    """The host end of a container's veth on its `eth<slot>`: `cv`, the 12-digit short id and,
    past eth0, the slot (15 bytes at most, as IFNAMSIZ allows)."""
    return VETH_PREFIX + container_id[:12] + (str(slot) if slot else "")


def slot_of(endpoint: Endpoint) -> int:
    return int(endpoint.attachment.interface[3:] or 0)


def free_slot(interfaces: Iterable[str]) -> int:
    """The lowest ethN a container does not use yet."""
    used = set(interfaces)
    for slot in range(MAX_NETWORKS):
        if f"eth{slot}" not in used:
            return slot
    raise Conflict(f"a container can be connected to {MAX_NETWORKS} networks at most",
                   hint="disconnect it from one first")


def bridge_of(name: str) -> str:
    """The bridge of a user network: a hash, since names may be longer than IFNAMSIZ allows."""
    return "cbr-" + hashlib.sha256(name.encode()).hexdigest()[:10]
