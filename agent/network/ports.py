"""Checks of published ports before any rule is made: not twice for one container, not a host
port another container publishes, not a host port a process on the host listens on."""
from __future__ import annotations

import errno
import socket
from typing import Iterable, Mapping

from agent.errors import Conflict, InvalidArgument, KernelError
from agent.network.model import Attachment, PortMapping


def clash(one: PortMapping, other: PortMapping) -> bool:
    """Whether two mappings claim the same host port (0.0.0.0 claims every address)."""
    return one.protocol == other.protocol and one.host_port == other.host_port and \
        (one.host_ip == other.host_ip or "0.0.0.0" in (one.host_ip, other.host_ip))


def check_ports(container_name: str, ports: list[PortMapping], attached: Iterable[Attachment], *,
                host_check: bool = True, reserved: Mapping[str, PortMapping] | None = None) -> None:
    """Refuse the container's mappings when they clash with each other, with another
    container's, with one `reserved` by another owner (a service's port, which no socket
    holds), or (`host_check`) with a socket on the host."""
    attached = list(attached)
    seen: list[PortMapping] = []
    for port in ports:
        for other in seen:
            if clash(port, other):
                raise Conflict(f"port {port} is published twice for container {container_name}")
        seen.append(port)
        for attachment in attached:
            for other in attachment.ports:
                if clash(port, other):
                    raise Conflict(f"host port {port.host_port}/{port.protocol} is already published "
                                   f"by container {attachment.container_name} ({other})")
        for owner, other in (reserved or {}).items():
            if clash(port, other):
                raise Conflict(f"host port {port.host_port}/{port.protocol} is already published by {owner}")
        if host_check:
            check_host_port(port)


def check_host_port(port: PortMapping) -> None:
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
