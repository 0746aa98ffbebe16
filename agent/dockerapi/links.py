"""`HostConfig.Links` on a user-defined network, as docker gives them there: each link's alias
resolves, for the linking container only, to the linked
container's address on that network. Compose's `run` links its one-off container to the
service's containers this way.

Corral's containers resolve names through /etc/hosts, so a link becomes an ExtraHosts entry
(`alias:address`) written at create. On the default network docker's legacy links also set
environment variables (`WEB_PORT_80_TCP=...`), which Corral does not: links are refused there,
naming the field, rather than half-honoured.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agent.errors import InvalidArgument, NotFound
from agent.runtime.connections import attachments_of
from agent.runtime.model import RUNNING, Container

FIELD = "HostConfig.Links"


def links_as_hosts(links: Any, network_mode: Any, find: Callable[[str], Container]) -> list[str]:
    """ExtraHosts entries for `links` ("container[:alias]") of a container created on
    `network_mode`; `find` looks a container up by name or id (raising NotFound)."""
    if not links:
        return []
    if not isinstance(links, list) or not all(isinstance(link, str) for link in links):
        raise InvalidArgument(f"{FIELD}: expected a list of \"container:alias\" strings", field=FIELD)
    if not isinstance(network_mode, str) or network_mode in ("", "default", "bridge", "host", "none") \
            or network_mode.startswith("container:"):
        raise InvalidArgument(f"{FIELD}: Corral honours links on user-defined networks only (on the default "
                              f"network docker's legacy links also set environment variables); got NetworkMode "
                              f"{network_mode or 'default'!r}", field=FIELD)
    hosts = []
    for link in links:
        target, _, alias = link.partition(":")
        target, alias = target.lstrip("/"), alias.lstrip("/") or target.lstrip("/")
        try:
            container = find(target)
        except NotFound:
            raise InvalidArgument(f"{FIELD}: {link!r}: no such container {target}", field=FIELD) from None
        if container.state != RUNNING:
            raise InvalidArgument(f"{FIELD}: {link!r}: cannot link to {target}, which is not running", field=FIELD)
        address = next((a.get("address") for a in attachments_of(container) if a.get("network") == network_mode), None)
        if not address:
            raise InvalidArgument(f"{FIELD}: {link!r}: {target} is not on network {network_mode}", field=FIELD)
        if alias != container.name:            # its name resolves on its network already
            hosts.append(f"{alias}:{address}")
    return hosts
