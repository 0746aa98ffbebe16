"""The schemas of services: `ServiceSpec` (the body of `POST /v1/services`), `ServiceChange`
(`POST /v1/services/{name}/update`), `Scale`, and `Service`, the daemon's saved record.

msgspec schemas (agent/schema.py): the one declaration validates bodies and saved records and
generates the OpenAPI document; a bad value is reported by its field path.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from agent import schema
from agent.errors import Conflict, InvalidArgument
from agent.network.model import PortMapping
from agent.runtime.model import Cpus, Memory, NetworkMode
from agent.schema import Arguments, Environment, Labels, Name

# More replicas than this on one host is a typo (a zero too many), not a plan.
MAX_REPLICAS = 100
SERVICE_LABEL = "corral.service"
SLOT_LABEL = "corral.service.slot"
VERSION_LABEL = "corral.service.version"

# No dots: a replica's container name is NAME.SLOT.SUFFIX.
ServiceName = Annotated[str, msgspec.Meta(
    pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_-]{0,62}$", max_length=63,
    description="letters, digits, '_' and '-', starting with a letter or digit (no dots)")]
Replicas = Annotated[int, msgspec.Meta(ge=0, le=MAX_REPLICAS, description=f"0 to {MAX_REPLICAS}")]
Parallelism = Annotated[int, msgspec.Meta(ge=1, le=MAX_REPLICAS)]
Seconds = Annotated[float, msgspec.Meta(ge=0, le=3600, description="seconds")]
Grace = Annotated[float, msgspec.Meta(ge=0, le=300, description="seconds")]
HealthCommand = Annotated[str, msgspec.Meta(min_length=1, max_length=4096, pattern=r"^[^\x00]+$",
                                            description="a shell command, run with sh -c in the replica")]
Interval = Annotated[float, msgspec.Meta(ge=0.01, le=86400, description="seconds")]
Retries = Annotated[int, msgspec.Meta(ge=1, le=1000)]
UpdateOrder = Literal["stop-first", "start-first"]
FailureAction = Literal["pause", "rollback"]
RestartCondition = Literal["any", "on-failure", "none"]
UpdateState = Literal["", "updating", "paused", "completed", "rollback_started", "rollback_completed"]


class UpdateConfig(schema.Object, frozen=True):
    """How `service update` replaces replicas (docker's --update-* flags)."""

    parallelism: Parallelism = 1             # replicas replaced at a time
    delay: Seconds = 0.0                     # between batches
    order: UpdateOrder = "stop-first"        # start-first keeps capacity: the new one serves before the old stops
    failure_action: FailureAction = "pause"
    monitor: Seconds = 5.0                   # a new replica that exits within this is a failed update


class ServiceSpec(schema.Object, frozen=True):
    """What `corral service create` asks for: the body of `POST /v1/services`."""

    name: ServiceName
    image: Name
    command: Arguments = []                  # empty: the image's
    replicas: Replicas = 1
    env: Environment = []
    memory: Memory | None = None             # bytes, per replica
    cpus: Cpus | None = None                 # per replica
    labels: Labels = {}                      # on every replica, with corral.service and its slot
    network: NetworkMode = "bridge"
    port: PortMapping | None = None          # the one published port, balanced over the replicas
    # The replicas' health check (docker's --health-cmd, run with sh -c): a replica takes traffic
    # once healthy and is replaced when unhealthy (docs/services.md says what this needs).
    health_cmd: HealthCommand | None = None
    health_interval: Interval | None = None  # seconds between checks (the runtime's default: 30)
    health_retries: Retries | None = None    # failures in a row that make a replica unhealthy (3)
    restart_condition: RestartCondition = "any"
    stop_grace_period: Grace = 10.0          # SIGTERM, then SIGKILL after this (after the drain)
    update: UpdateConfig = UpdateConfig()

    def __post_init__(self) -> None:
        if self.port is not None and self.network in ("none", "host"):
            raise InvalidArgument(f"port: {self.port} cannot be published with --network {self.network}",
                                  hint="use --network bridge or a network's name", field="port")
        for key in self.labels:
            if key.startswith(SERVICE_LABEL):
                raise InvalidArgument(f"labels: {key!r} is set by Corral on each replica", field="labels")

    def to_dict(self) -> dict[str, Any]:
        return schema.to_builtins(self)

    @classmethod
    def from_dict(cls, data: Any, where: str = "") -> ServiceSpec:
        return schema.convert(data, cls, where)


class ServiceChange(schema.Object, frozen=True):
    """`service update`: only the fields given change; the replicas are then rolled if what
    they run changed (image, command, env, limits, health check), or scaled if only the count."""

    image: Name | None = None
    command: Arguments | None = None
    replicas: Replicas | None = None
    env_add: Environment = []
    env_rm: Annotated[list[Name], msgspec.Meta(max_length=4096)] = []
    health_cmd: HealthCommand | None = None
    update: UpdateConfig | None = None

    def apply(self, spec: ServiceSpec) -> ServiceSpec:
        data = spec.to_dict()
        for key in ("image", "command", "replicas", "health_cmd"):
            if getattr(self, key) is not None:
                data[key] = schema.to_builtins(getattr(self, key))
        if self.update is not None:
            data["update"] = schema.to_builtins(self.update)
        if self.env_add or self.env_rm:
            added = {entry.partition("=")[0] for entry in self.env_add}
            data["env"] = [entry for entry in data["env"]
                           if entry.partition("=")[0] not in added | set(self.env_rm)] + list(self.env_add)
        return ServiceSpec.from_dict(data, "update")


class Scale(schema.Object, frozen=True):
    """The body of `POST /v1/services/{name}/scale`."""

    replicas: Replicas


class PastReplica(schema.Object, frozen=True):
    """A replica that is gone (exited, replaced or updated away), for `service ps`."""

    name: str
    slot: int
    image: str
    version: int
    state: str                               # exited | replaced | removed
    exit_code: int | None = None
    finished_at: float = 0.0


class Service(schema.Object, frozen=True):
    """The daemon's record of a service: the desired state, saved in its state directory."""

    spec: ServiceSpec
    version: int = 1                         # bumped when what the replicas run changes
    previous: ServiceSpec | None = None      # what `service rollback` returns to
    previous_version: int = 0                # its version: its replicas are current again after a rollback
    update_state: UpdateState = ""
    update_message: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0
    history: list[PastReplica] = []

    @property
    def name(self) -> str:
        return self.spec.name

    def to_dict(self) -> dict[str, Any]:
        return schema.to_builtins(self)

    @classmethod
    def from_dict(cls, data: Any, where: str = "") -> Service:
        return schema.convert(data, cls, where)

    def replace(self, **fields: Any) -> Service:
        return msgspec.structs.replace(self, **fields)

    def updated(self, spec: ServiceSpec, now: float) -> Service:
        """`spec` desired: rolled out under a new version when what replicas run changed."""
        if not template_changed(self.spec, spec):
            return self.replace(spec=spec, updated_at=now)
        return self.replace(spec=spec, previous=self.spec, previous_version=self.version,
                            version=max(self.version, self.previous_version) + 1,
                            update_state="updating", update_message="", updated_at=now)

    def rolled_back(self, message: str, now: float) -> Service:
        """The previous spec desired again, under its own version (its replicas need no change)."""
        if self.previous is None:
            raise Conflict(f"service {self.name} has no previous spec to roll back to")
        return self.replace(spec=self.previous, previous=self.spec, version=self.previous_version,
                            previous_version=self.version, update_state="rollback_started",
                            update_message=message, updated_at=now)


def template_changed(old: ServiceSpec, new: ServiceSpec) -> bool:
    """Whether the replicas must be replaced: anything but the count and the update settings."""
    strip = {"replicas": 0, "update": None}
    return {**old.to_dict(), **strip} != {**new.to_dict(), **strip}
