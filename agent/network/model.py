"""API objects of networking: a Network, a published port (PortMapping), a container's place on
a network (Attachment) and what a container asks of a network it joins (NetworkEndpoint).

All three have one `from_dict` path that rejects unknown keys and names
the field at fault, like the runtime's model; `to_dict` gives plain JSON.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import msgspec

from agent import schema
from agent.errors import InvalidArgument
from agent.fields import check_keys
from agent.schema import IPv4, Port

NETWORK_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$")
# Names `--net` gives a meaning of its own; no user network may take them.
RESERVED_NAMES = ("none", "host", "bridge", "default")
PROTOCOLS = ("tcp", "udp")
# A container has eth0..eth9: its host veth is `cv` + the short id + the slot (IFNAMSIZ is 16).
MAX_NETWORKS = 10
# A name other containers of the network resolve to this one (docker's --network-alias).
Alias = Annotated[str, msgspec.Meta(
    min_length=1, max_length=253, pattern=r"^[a-zA-Z0-9_]([a-zA-Z0-9_.-]{0,251}[a-zA-Z0-9_])?$",
    description="a host name: letters, digits, '_', '.' and '-'")]
Aliases = Annotated[list[Alias], msgspec.Meta(max_length=32)]
NetworkRef = Annotated[str, msgspec.Meta(
    pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$", max_length=64,
    description="bridge (the default network) or the name of a network")]
DRIVERS = ("bridge",)


def _ip(value: Any, where: str) -> str:
    try:
        return str(ipaddress.IPv4Address(value))
    except (ipaddress.AddressValueError, ValueError, TypeError):
        raise InvalidArgument(f"{where}: expected an IPv4 address like 10.213.0.2, got {value!r}") from None


def _port(value: Any, where: str) -> int:
    if isinstance(value, bool):
        raise InvalidArgument(f"{where}: expected a port number 1-65535, got {value!r}")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidArgument(f"{where}: expected a port number 1-65535, got {value!r}") from None
    if not 1 <= number <= 65535 or (isinstance(value, str) and not value.isdigit()):
        raise InvalidArgument(f"{where}: expected a port number 1-65535, got {value!r}")
    return number


def check_network_name(name: Any) -> str:
    if not isinstance(name, str) or not NETWORK_NAME.match(name):
        raise InvalidArgument(
            f"network name {name!r}: use up to 64 letters, digits, '_', '.' and '-', starting with a letter or digit")
    return name


def parse_subnet(text: Any, *, where: str = "subnet") -> ipaddress.IPv4Network:
    """An IPv4 CIDR with room for a gateway and at least two containers (/8 to /29)."""
    try:
        subnet = ipaddress.IPv4Network(text, strict=True)
    except (ipaddress.AddressValueError, ipaddress.NetmaskValueError, TypeError):
        raise InvalidArgument(f"{where} {text!r}: expected an IPv4 CIDR like 10.214.0.0/24") from None
    except ValueError:
        raise InvalidArgument(f"{where} {text!r}: host bits are set; "
                              f"did you mean {ipaddress.IPv4Network(text, strict=False)}?") from None
    if not 8 <= subnet.prefixlen <= 29:
        raise InvalidArgument(f"{where} {text!r}: the prefix length must be between /8 and /29")
    return subnet


class PortMapping(schema.Object, frozen=True):
    """A published port: HOST_IP:HOST_PORT on the host reaches CONTAINER_PORT in the container.

    A msgspec schema (agent/schema.py), as it is part of ContainerSpec.
    """

    host_port: Port
    container_port: Port
    protocol: Literal["tcp", "udp"] = "tcp"
    host_ip: IPv4 = "0.0.0.0"

    @classmethod
    def parse(cls, text: str) -> PortMapping:
        """`[HOSTIP:]HOSTPORT:CTRPORT[/tcp|/udp]`, as `-p` takes it."""
        if not isinstance(text, str) or not text:
            raise InvalidArgument(f"publish {text!r}: expected [HOSTIP:]HOSTPORT:CTRPORT[/tcp|/udp]")
        ports, _, protocol = text.partition("/")
        if _ and protocol not in PROTOCOLS:
            raise InvalidArgument(f"publish {text!r}: protocol must be tcp or udp, got {protocol!r}")
        parts = ports.split(":")
        if len(parts) == 2:
            host_ip, (host_port, container_port) = "0.0.0.0", parts
        elif len(parts) == 3:
            host_ip, host_port, container_port = parts
        else:
            raise InvalidArgument(f"publish {text!r}: expected [HOSTIP:]HOSTPORT:CTRPORT[/tcp|/udp], "
                                  f"like 8080:80 or 127.0.0.1:8080:80/tcp")
        return cls(host_port=_port(host_port, f"publish {text!r}: host port"),
                   container_port=_port(container_port, f"publish {text!r}: container port"),
                   protocol="udp" if protocol == "udp" else "tcp",
                   host_ip=_ip(host_ip or "0.0.0.0", f"publish {text!r}: host ip"))

    def __str__(self) -> str:
        return f"{self.host_ip}:{self.host_port}:{self.container_port}/{self.protocol}"

    def to_dict(self) -> dict[str, Any]:
        return schema.to_builtins(self)

    @classmethod
    def from_dict(cls, data: Any, where: str = "port") -> PortMapping:
        if isinstance(data, str):
            return cls.parse(data)
        return schema.convert(data, cls, where)


class NetworkEndpoint(schema.Object, frozen=True):
    """A network a container is connected to, with its aliases there and the address it asks
    for (None: the next free one). Part of ContainerSpec.networks and of `network connect`."""

    network: NetworkRef
    aliases: Aliases = []
    ip: IPv4 | None = None

    def to_dict(self) -> dict[str, Any]:
        return schema.to_builtins(self)

    @classmethod
    def from_dict(cls, data: Any, where: str = "endpoint") -> NetworkEndpoint:
        return schema.convert(data, cls, where)


@dataclass(frozen=True)
class Network:
    """A bridge network: its subnet, the gateway address the bridge holds, the bridge's name."""

    name: str
    subnet: str
    gateway: str
    bridge: str
    created: float
    driver: str = "bridge"
    internal: bool = False        # True: no masquerade, containers reach only the bridge

    def __post_init__(self) -> None:
        check_network_name(self.name)
        subnet = parse_subnet(self.subnet, where=f"network {self.name}: subnet")
        if ipaddress.IPv4Address(_ip(self.gateway, f"network {self.name}: gateway")) not in subnet:
            raise InvalidArgument(f"network {self.name}: gateway {self.gateway} is not in {self.subnet}")
        if self.driver not in DRIVERS:
            raise InvalidArgument(f"network {self.name}: driver {self.driver!r} is not supported (only bridge)")
        if not isinstance(self.bridge, str) or not 1 <= len(self.bridge) <= 15:
            raise InvalidArgument(f"network {self.name}: bridge {self.bridge!r} must be 1-15 characters")

    @property
    def prefix(self) -> int:
        return ipaddress.IPv4Network(self.subnet).prefixlen

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str = "network") -> Network:
        check_keys(data, cls, where)
        try:
            return cls(**data)
        except TypeError as exc:
            raise InvalidArgument(f"{where}: {exc}") from None


@dataclass(frozen=True)
class Attachment:
    """Where a container sits on a network: its interface, address, MAC and published ports."""

    network: str
    container_id: str
    container_name: str
    host_veth: str
    address: str
    prefix: int
    mac: str
    gateway: str
    interface: str = "eth0"
    ports: list[PortMapping] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)   # names its network's peers resolve to it

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["ports"] = [port.to_dict() for port in self.ports]
        return data

    @classmethod
    def from_dict(cls, data: Any, where: str = "attachment") -> Attachment:
        check_keys(data, cls, where)
        data = dict(data)
        ports = data.pop("ports", []) or []
        if not isinstance(ports, list):
            raise InvalidArgument(f"{where}.ports: expected a list, got {type(ports).__name__}")
        parsed = [PortMapping.from_dict(item, f"{where}.ports[{index}]") for index, item in enumerate(ports)]
        data["aliases"] = list(data.get("aliases") or [])
        _ip(data["address"], f"{where}.address")
        _ip(data["gateway"], f"{where}.gateway")
        try:
            return cls(ports=parsed, **data)
        except TypeError as exc:
            raise InvalidArgument(f"{where}: {exc}") from None


def mac_of(address: str) -> str:
    """The MAC docker derives from an IPv4 address: 02:42 then the four bytes of the address.

    Deriving it means an address given again gets the same MAC, so the neighbours' ARP caches
    stay right when the allocator reuses a released address.
    """
    packed = ipaddress.IPv4Address(address).packed
    return "02:42:" + ":".join(f"{byte:02x}" for byte in packed)
