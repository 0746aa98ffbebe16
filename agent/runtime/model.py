"""API objects of the runtime: what a user asks for (ContainerSpec) and what is (Container).

ContainerSpec and Mount (mount_model.py) are msgspec schemas (agent/schema.py): the one declaration validates
`POST /v1/containers` bodies, state files and CLI-built specs, and generates the OpenAPI
document. To add a field to a container, add it to ContainerSpec below with a bounded type
(agent.schema: Text, AbsolutePath, Arguments, ... or an `Annotated[..., msgspec.Meta(...)]`)
and a default; decoding, errors with field paths, to_dict and the OpenAPI schema follow.
Container is the daemon's record of one container, saved as JSON in its state directory.
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
from agent.health.model import HealthConfig
from agent.network.model import MAX_NETWORKS, NetworkEndpoint, PortMapping
from agent.runtime.mount_model import DeviceMapping, Mount
from agent.schema import AbsolutePath, Arguments, Environment, Labels, Name

NAME_PATTERN = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")
NET_MODES = ("none", "host", "bridge")

ContainerName = Annotated[str, msgspec.Meta(
    pattern=NAME_PATTERN.pattern, max_length=128,
    description="letters, digits, '_', '.' and '-', starting with a letter or digit")]
Hostname = Annotated[str, msgspec.Meta(
    pattern=r"^[a-zA-Z0-9_]([a-zA-Z0-9_.-]{0,62}[a-zA-Z0-9_])?$", max_length=64,
    description="a host name: letters, digits, '_', '.' and '-' (the kernel takes 64 bytes)")]
NetworkMode = Annotated[str, msgspec.Meta(
    pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$", max_length=64,
    description="none, host, bridge or the name of a network")]
Memory = Annotated[int, msgspec.Meta(ge=4 * 1024 * 1024, le=1 << 50, description="bytes, at least 4 MiB")]
Cpus = Annotated[float, msgspec.Meta(ge=0.01, le=1024)]
PidsLimit = Annotated[int, msgspec.Meta(ge=1, le=4194304)]   # the kernel's PID_MAX_LIMIT
Capability = Annotated[str, msgspec.Meta(
    min_length=1, max_length=64, pattern=r"^[A-Za-z_]+$", description="NET_ADMIN, CAP_NET_ADMIN or ALL")]
SecurityOpt = Annotated[str, msgspec.Meta(
    max_length=(1 << 20) + 16,
    description="seccomp=unconfined, seccomp=<profile JSON in Docker's format>, no-new-privileges")]
TmpfsOptions = Annotated[str, msgspec.Meta(max_length=256, description="like size=64m,mode=1777,noexec")]
User = Annotated[str, msgspec.Meta(
    max_length=65, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,31})?$",
    description="USER[:GROUP], names resolved in the image's /etc/passwd and /etc/group")]


TerminalSide = Annotated[int, msgspec.Meta(ge=0, le=65535)]
ConsoleSize = Annotated[list[TerminalSide], msgspec.Meta(
    min_length=2, max_length=2, description="[rows, columns] of the terminal")]


# Users and environment: the types of the fields agent/runtime/environment.py turns into the
# launcher's options and the name-resolution files.

GroupName = Annotated[str, msgspec.Meta(
    pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}$", max_length=32,
    description="a group name from the image's /etc/group, or a gid")]
UlimitName = Literal["core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile",
                     "nproc", "rss", "rtprio", "rttime", "sigpending", "stack"]
# -1 is unlimited, as in docker's API.
UlimitValue = Annotated[int, msgspec.Meta(ge=-1, le=(1 << 63) - 1, description="a number, or -1 for unlimited")]
IPAddress = Annotated[str, msgspec.Meta(
    min_length=2, max_length=45, pattern=r"^[0-9A-Fa-f.:]+$", description="an IPv4 or IPv6 address")]
DnsSearch = Annotated[str, msgspec.Meta(
    pattern=r"^[A-Za-z0-9_]([A-Za-z0-9_.-]{0,252}[A-Za-z0-9_.])?$", max_length=254,
    description="a search domain, like example.com")]
DnsOption = Annotated[str, msgspec.Meta(
    pattern=r"^[A-Za-z0-9_-]+(:[0-9]{1,4})?$", max_length=64, description="a resolver option, like ndots:2 or edns0")]
ExtraHost = Annotated[str, msgspec.Meta(
    pattern=r"^[A-Za-z0-9_]([A-Za-z0-9_.-]{0,252})?:[0-9A-Za-z.:-]+$", max_length=300,
    description="NAME:IP, IP an address or host-gateway")]
ShmSize = Annotated[int, msgspec.Meta(ge=4096, le=1 << 40, description="bytes of /dev/shm")]

HOST_GATEWAY = "host-gateway"


class Ulimit(schema.Object, frozen=True):
    """One resource limit (`--ulimit nofile=1024:2048`), as docker's HostConfig.Ulimits."""

    name: UlimitName
    soft: UlimitValue
    hard: UlimitValue

    def __post_init__(self) -> None:
        if _unlimited(self.soft) > _unlimited(self.hard):
            raise InvalidArgument(f"ulimit {self.name}: the soft limit {self.soft} is above the hard limit "
                                  f"{self.hard}", field="ulimits")

    @classmethod
    def parse(cls, text: str) -> Ulimit:
        """`NAME=SOFT[:HARD]` (HARD defaults to SOFT), as docker's `--ulimit`."""
        name, sep, values = text.partition("=")
        soft, _, hard = values.partition(":")
        try:
            numbers = [int(soft), int(hard or soft)]
        except ValueError:
            numbers = []
        if not sep or not numbers:
            raise InvalidArgument(f"--ulimit {text!r}: expected NAME=SOFT[:HARD] like nofile=1024:2048",
                                  field="--ulimit")
        return schema.convert({"name": name, "soft": numbers[0], "hard": numbers[1]}, cls, f"--ulimit {text!r}")

    def launcher_arg(self) -> str:
        return f"{self.name}={self.soft}:{self.hard}"


def _unlimited(value: int) -> float:
    return float("inf") if value == -1 else value


def check_environment(spec: ContainerSpec) -> None:
    """What the fields' types cannot say; InvalidArgument naming the field."""
    for index, server in enumerate(spec.dns):
        _address(server, f"dns[{index}]")
    for index, entry in enumerate(spec.extra_hosts):
        address = entry.partition(":")[2]       # NAME:IP, split as docker does (IPv6 keeps its colons)
        if address != HOST_GATEWAY:
            _address(address, f"extra_hosts[{index}]")
        elif spec.network == "none":
            raise InvalidArgument(f"extra_hosts[{index}]: {entry!r}: host-gateway needs a network "
                                  "(the container has none)", field=f"extra_hosts[{index}]")
    names = [limit.name for limit in spec.ulimits]
    for name in names:
        if names.count(name) > 1:
            raise InvalidArgument(f"ulimits: {name} is given twice", field="ulimits")


def _address(text: str, where: str) -> None:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise InvalidArgument(f"{where}: {text!r} is not an IP address", field=where) from None
RestartName = Annotated[str, msgspec.Meta(
    pattern=r"^(no|always|unless-stopped|on-failure)$", max_length=16,
    description="no, always, unless-stopped or on-failure")]
RetryCount = Annotated[int, msgspec.Meta(ge=0, le=1_000_000, description="on-failure's retries; 0: no limit")]
StopSignal = Annotated[str, msgspec.Meta(
    min_length=1, max_length=16, pattern=r"^[A-Za-z0-9+]+$",
    description="a signal name (TERM, SIGQUIT, RTMIN+1) or number")]
StopTimeout = Annotated[int, msgspec.Meta(ge=-1, le=86400, description="seconds; -1: wait for ever")]


class RestartPolicy(schema.Object, frozen=True):
    """Docker's HostConfig.RestartPolicy (`--restart NAME[:MAX]`; agent/runtime/restarts.py)."""

    name: RestartName = "no"
    maximum_retry_count: RetryCount = 0

    @classmethod
    def parse(cls, text: str) -> RestartPolicy:
        """`no`, `always`, `unless-stopped`, `on-failure` or `on-failure:N`, as docker's --restart."""
        name, sep, count = text.partition(":")
        if sep and (name != "on-failure" or not count.isdigit()):
            raise InvalidArgument(f"--restart {text!r}: only on-failure takes a count, like on-failure:3",
                                  field="restart_policy")
        return schema.convert({"name": name, "maximum_retry_count": int(count) if sep else 0}, cls,
                              f"--restart {text!r}")

    def __post_init__(self) -> None:
        if self.maximum_retry_count and self.name != "on-failure":
            raise InvalidArgument(f"restart_policy: maximum_retry_count cannot be used with {self.name!r}",
                                  field="restart_policy.maximum_retry_count")

    def __str__(self) -> str:
        return f"{self.name}:{self.maximum_retry_count}" if self.maximum_retry_count else self.name


class ContainerSpec(schema.Object, frozen=True):
    """What `corral run` asks for: the body of `POST /v1/containers`."""

    # New fields go here, each with a bounded type and a default (see the module docstring).

    image: Name
    command: Arguments = []                  # empty: the image's entrypoint/cmd
    name: ContainerName | None = None
    env: Environment = []                    # "K=V"
    workdir: AbsolutePath | None = None
    mounts: Annotated[list[Mount], msgspec.Meta(max_length=256)] = []
    hostname: Hostname | None = None
    memory: Memory | None = None             # bytes
    cpus: Cpus | None = None
    pids_limit: PidsLimit | None = None
    network: NetworkMode = "bridge"          # none | host | bridge | a network name
    ports: Annotated[list[PortMapping], msgspec.Meta(max_length=256)] = []
    # Further networks to join (`--network a --network b`), and the aliases and address on any
    # of them, `network` included (`--network-alias`); agent/runtime/connections.py.
    networks: Annotated[list[NetworkEndpoint], msgspec.Meta(max_length=MAX_NETWORKS)] = []
    labels: Labels = {}
    auto_remove: bool = False
    entrypoint: Arguments | None = None
    devices: Annotated[list[DeviceMapping], msgspec.Meta(max_length=32)] = []   # --device
    # Security, named as in Docker's HostConfig (agent/security/options.py, docs/security.md).
    cap_add: Annotated[list[Capability], msgspec.Meta(max_length=64)] = []
    cap_drop: Annotated[list[Capability], msgspec.Meta(max_length=64)] = []
    privileged: bool = False                 # every capability, no seccomp, /sys and cgroups writable
    security_opt: Annotated[list[SecurityOpt], msgspec.Meta(max_length=16)] = []
    read_only: bool = False                  # the root file system read-only
    tmpfs: Annotated[dict[AbsolutePath, TmpfsOptions], msgspec.Meta(max_length=64)] = {}   # target -> options
    user: User | None = None
    # Users and environment (agent/runtime/environment.py, docs/cli.md).
    group_add: Annotated[list[GroupName], msgspec.Meta(max_length=32)] = []
    init: bool = False                       # a tiny init as pid 1: reaps zombies, forwards signals
    ulimits: Annotated[list[Ulimit], msgspec.Meta(max_length=16)] = []
    shm_size: ShmSize | None = None          # bytes of /dev/shm; None: 64 MiB
    dns: Annotated[list[IPAddress], msgspec.Meta(max_length=8)] = []
    dns_search: Annotated[list[DnsSearch], msgspec.Meta(max_length=8)] = []
    dns_options: Annotated[list[DnsOption], msgspec.Meta(max_length=16)] = []
    extra_hosts: Annotated[list[ExtraHost], msgspec.Meta(max_length=64)] = []   # NAME:IP or NAME:host-gateway
    # User namespace (agent/userns, docs/security.md): auto maps root to a range of its own,
    # host shares the host's ids; None: the daemon's default (--userns).
    userns: Literal["auto", "host"] | None = None
    # Health check (agent/health/): over the image's HEALTHCHECK; test ["NONE"] turns it off.
    healthcheck: HealthConfig | None = None
    # Life cycle (agent/runtime/restarts.py, agent/runtime/lifecycle.py).
    restart_policy: RestartPolicy = RestartPolicy()
    stop_signal: StopSignal | None = None    # None: SIGTERM
    stop_timeout: StopTimeout | None = None  # None: 10 seconds
    # Terminals and stdin (docs/cli.md, agent/runtime/attach.py), named as in Docker's Config.
    tty: bool = False                        # a terminal the shim owns
    open_stdin: bool = False                 # stdin kept open for attached clients
    stdin_once: bool = False                 # closed when the first attached client ends its input
    console_size: ConsoleSize | None = None  # the terminal's size at start

    def __post_init__(self) -> None:
        # What one field's type cannot say. Not a ValueError, so msgspec passes it on as is.
        from agent.security.options import of_spec
        of_spec(self)                        # an unknown capability, a bad profile or tmpfs option
        check_environment(self)              # addresses, host-gateway without a network, a ulimit twice
        from agent.userns.allocator import mode_of
        mode_of(self, "host")                # --userns auto with --privileged or --net host
        if self.ports and self.network in ("none", "host"):
            raise InvalidArgument(f"ports: {self.ports[0]} cannot be published with --net {self.network}",
                                  hint="use --net bridge or a network name", field="ports")
        if self.networks:
            from agent.runtime.connections import check_spec_networks
            check_spec_networks(self)
        if self.auto_remove and self.restart_policy.name != "no":
            raise InvalidArgument(f"conflicting options: --restart {self.restart_policy} and --rm",
                                  field="restart_policy")
        if self.stop_signal is not None:
            from agent.units import parse_signal
            try:
                parse_signal(self.stop_signal, field="stop_signal")
            except InvalidArgument as exc:
                raise InvalidArgument(exc.message, field="stop_signal") from None

    def to_dict(self) -> dict[str, Any]:
        return schema.to_builtins(self)

    @classmethod
    def from_dict(cls, data: Any, where: str = "") -> ContainerSpec:
        """The spec in `data` (parsed JSON), validated; InvalidArgument names the bad field."""
        return schema.convert(data, cls, where)

    @classmethod
    def checked(cls, **fields: Any) -> ContainerSpec:
        """A spec from keyword fields, validated as a request body is (the constructor is not)."""
        return cls.from_dict({key: schema.to_builtins(value) for key, value in fields.items()})


# Container states, as docker names them.
CREATED, RUNNING, PAUSED, EXITED, REMOVING = "created", "running", "paused", "exited", "removing"
LIVE = (RUNNING, PAUSED)        # a process runs (frozen or not): the shim is watched


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
    extra_attachments: list[dict] = field(default_factory=list)   # its other networks' attachments
    # The networks it is connected to, as connect/disconnect left them (NetworkEndpoint dicts);
    # None: those of its spec (agent/runtime/connections.py).
    networks: list[dict] | None = None
    error: str | None = None
    observed: bool = False                  # True for containers Corral did not start
    # The user-namespace range (IdRange.to_dict() + "ownership": idmapped | chown) when it has
    # one: saved at create, so a restarted daemon never hands the same range to another.
    userns: dict | None = None
    restart_count: int = 0                  # restarts by its restart policy since the user's last start
    stopped_by_user: bool = False           # docker's HasBeenManuallyStopped: stop/kill, until the next start
    user: str = ""                          # resolved at create: the spec's -u, else the image's USER; "": root

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["spec"] = self.spec.to_dict()
        return schema.to_builtins(data)

    @classmethod
    def from_dict(cls, data: dict) -> Container:
        check_keys(data, cls, "container")
        data = dict(data)
        data["spec"] = ContainerSpec.from_dict(data["spec"], "container.spec")
        return cls(**data)
