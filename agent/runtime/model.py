"""API objects of the runtime: what a user asks for (ContainerSpec) and what is (Container).

Both are dataclasses built by one `from_dict` path that rejects unknown keys and names the
field at fault, so the API, the state files and the CLI share one definition.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from agent.errors import InvalidArgument
from agent.fields import check_keys
from agent.network.model import NETWORK_NAME, PortMapping

NAME_PATTERN = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")
NET_MODES = ("none", "host", "bridge")


@dataclass(frozen=True)
class Mount:
    """A bind mount of a host path into the container (`-v HOST:CTR[:ro]`)."""

    source: str
    target: str
    readonly: bool = False

    @classmethod
    def parse(cls, text: str) -> "Mount":
        parts = text.split(":")
        if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
            raise InvalidArgument(f"volume {text!r}: expected HOST:CONTAINER[:ro]")
        if len(parts) == 3 and parts[2] not in ("ro", "rw"):
            raise InvalidArgument(f"volume {text!r}: mode must be ro or rw, got {parts[2]!r}")
        if not parts[0].startswith("/") or not parts[1].startswith("/"):
            raise InvalidArgument(f"volume {text!r}: both paths must be absolute")
        return cls(source=parts[0], target=parts[1], readonly=len(parts) == 3 and parts[2] == "ro")


@dataclass(frozen=True)
class ContainerSpec:
    """What `corral run` asks for."""

    image: str
    command: list[str] = field(default_factory=list)     # empty: the image's entrypoint/cmd
    name: str | None = None
    env: list[str] = field(default_factory=list)          # "K=V"
    workdir: str | None = None
    mounts: list[Mount] = field(default_factory=list)
    hostname: str | None = None
    memory: int | None = None                             # bytes
    cpus: float | None = None
    pids_limit: int | None = None
    network: str = "bridge"                               # none | host | bridge | a network name
    ports: list[PortMapping] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    auto_remove: bool = False
    entrypoint: list[str] | None = None

    def __post_init__(self) -> None:
        if not self.image:
            raise InvalidArgument("image: an image name is required, like busybox:latest")
        if self.name is not None and not NAME_PATTERN.match(self.name):
            raise InvalidArgument(
                f"name {self.name!r}: use letters, digits, '_', '.' and '-', starting with a letter or digit")
        for item in self.env:
            if "=" not in item or item.startswith("="):
                raise InvalidArgument(f"env {item!r}: expected KEY=VALUE")
        if self.workdir is not None and not self.workdir.startswith("/"):
            raise InvalidArgument(f"workdir {self.workdir!r}: must be an absolute path")
        if self.memory is not None and self.memory < 4 * 1024 * 1024:
            raise InvalidArgument(f"memory {self.memory}: the minimum is 4MiB")
        if self.pids_limit is not None and self.pids_limit < 1:
            raise InvalidArgument(f"pids-limit {self.pids_limit}: must be at least 1")
        if self.cpus is not None and not 0.01 <= self.cpus <= 1024:
            raise InvalidArgument(f"cpus {self.cpus}: must be between 0.01 and 1024")
        if self.network not in NET_MODES and not NETWORK_NAME.match(self.network):
            raise InvalidArgument(f"network {self.network!r}: use none, host, bridge or a network name",
                                  hint="`corral network ls` lists networks")
        if self.ports and self.network in ("none", "host"):
            raise InvalidArgument(f"publish {self.ports[0]}: ports cannot be published with --net {self.network}",
                                  hint="use --net bridge or a network name")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ContainerSpec":
        check_keys(data, cls, "container spec")
        data = dict(data)
        mounts = data.pop("mounts", []) or []
        parsed = []
        for index, item in enumerate(mounts):
            if isinstance(item, str):
                parsed.append(Mount.parse(item))
            else:
                check_keys(item, Mount, f"mounts[{index}]")
                parsed.append(Mount(**item))
        ports = data.pop("ports", []) or []
        if not isinstance(ports, list):
            raise InvalidArgument("container spec.ports: expected a list")
        parsed_ports = [PortMapping.from_dict(item, f"ports[{index}]") for index, item in enumerate(ports)]
        try:
            return cls(mounts=parsed, ports=parsed_ports, **data)
        except TypeError as exc:
            raise InvalidArgument(f"container spec: {exc}") from None


# Container states, as docker names them.
CREATED, RUNNING, PAUSED, EXITED, REMOVING = "created", "running", "paused", "exited", "removing"


@dataclass
class Container:
    """A container as the daemon knows it; saved as JSON in the container's state directory."""

    id: str
    name: str
    spec: ContainerSpec
    image_id: str
    created_at: float
    # Resolved at create from the spec and the image, so start and exec need not read the image.
    command: list[str] = field(default_factory=list)   # entrypoint + cmd
    env: list[str] = field(default_factory=list)
    workdir: str = "/"
    hostname: str = ""
    state: str = CREATED
    pid: int | None = None                  # host pid of the container's init
    shim_pid: int | None = None             # host pid of the launcher that waits for it
    exit_code: int | None = None
    oom_killed: bool = False
    started_at: float | None = None
    finished_at: float | None = None
    cgroup: dict | None = None              # CgroupPaths.to_dict()
    cgroup_id: int | None = None
    rootfs: str | None = None
    network: dict | None = None             # agent.network.model.Attachment.to_dict() while attached
    error: str | None = None
    observed: bool = False                  # True for containers Corral did not start

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["spec"] = self.spec.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "Container":
        check_keys(data, cls, "container")
        data = dict(data)
        data["spec"] = ContainerSpec.from_dict(data["spec"])
        return cls(**data)
