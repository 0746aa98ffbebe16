"""A container's health check: `HealthConfig` as the spec and the image give it (docker's
HealthConfig, durations in seconds), and `HealthCheck`, the one in force after merging them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import msgspec

from agent import schema
from agent.errors import InvalidArgument
from agent.schema import Argument

# docker's defaults.
DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_START_PERIOD = 0.0
DEFAULT_RETRIES = 3
# How many results inspect keeps, and how much of each output (docker's figures).
KEPT_RESULTS = 5
MAX_OUTPUT = 4096

Seconds = Annotated[float, msgspec.Meta(ge=0.01, le=7 * 86400.0, description="seconds, from 0.01 to a week")]
StartPeriod = Annotated[float, msgspec.Meta(ge=0, le=7 * 86400.0, description="seconds, up to a week")]
Retries = Annotated[int, msgspec.Meta(ge=1, le=1000)]
TestCommand = Annotated[list[Argument], msgspec.Meta(
    max_length=4096, description='["CMD", "cmd", "arg"...], ["CMD-SHELL", "a shell command"] or ["NONE"]')]


class HealthConfig(schema.Object, frozen=True):
    """The health check of a spec (`--health-*` flags) or an image (HEALTHCHECK). Unset
    fields are the image's, then docker's defaults: 30 s interval and timeout, 3 retries."""

    test: TestCommand = []             # empty: the image's; ["NONE"]: no check (--no-healthcheck)
    interval: Seconds | None = None
    timeout: Seconds | None = None
    start_period: StartPeriod | None = None
    retries: Retries | None = None

    def __post_init__(self) -> None:
        if not self.test:
            return
        kind = self.test[0]
        if kind not in ("CMD", "CMD-SHELL", "NONE"):
            raise InvalidArgument(f"healthcheck.test: the first item must be CMD, CMD-SHELL or NONE, got {kind!r}",
                                  field="healthcheck.test")
        if kind == "CMD" and len(self.test) < 2:
            raise InvalidArgument("healthcheck.test: CMD needs a command after it", field="healthcheck.test")
        if kind == "CMD-SHELL" and (len(self.test) != 2 or not self.test[1].strip()):
            raise InvalidArgument("healthcheck.test: CMD-SHELL takes one shell command after it",
                                  field="healthcheck.test")

    @classmethod
    def from_docker(cls, data: Any, where: str) -> HealthConfig | None:
        """An image config's `Healthcheck` ({Test, Interval, Timeout, StartPeriod, Retries},
        durations in nanoseconds, 0 for "inherit"); None when absent."""
        if not data:
            return None
        if not isinstance(data, dict):
            raise InvalidArgument(f"{where}: Healthcheck must be an object, got {data!r}")

        def seconds(key: str) -> float | None:
            value = data.get(key) or 0
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InvalidArgument(f"{where}: Healthcheck.{key} must be nanoseconds, got {value!r}")
            return value / 1e9 if value else None
        retries = data.get("Retries") or None
        return schema.convert({"test": list(data.get("Test") or []), "interval": seconds("Interval"),
                               "timeout": seconds("Timeout"), "start_period": seconds("StartPeriod"),
                               "retries": retries}, cls, f"{where}: Healthcheck")

    def to_dict(self) -> dict[str, Any]:
        return schema.to_builtins(self)

    @classmethod
    def from_dict(cls, data: Any, where: str) -> HealthConfig:
        return schema.convert(data, cls, where)


@dataclass(frozen=True)
class HealthCheck:
    """The check in force for one container."""

    command: list[str]                 # what exec runs
    interval: float
    timeout: float
    start_period: float
    retries: int


def effective(spec: HealthConfig | None, image: HealthConfig | None) -> HealthCheck | None:
    """The spec's check over the image's, field by field as docker merges them; None when
    neither has a test or the test is NONE (`--no-healthcheck`)."""
    spec = spec or HealthConfig()
    image = image or HealthConfig()
    test = list(spec.test or image.test)
    if not test or test[0] == "NONE":
        return None

    def pick(mine, theirs, default):
        return mine if mine is not None else theirs if theirs is not None else default
    command = ["/bin/sh", "-c", test[1]] if test[0] == "CMD-SHELL" else test[1:]
    return HealthCheck(command=command,
                       interval=pick(spec.interval, image.interval, DEFAULT_INTERVAL),
                       timeout=pick(spec.timeout, image.timeout, DEFAULT_TIMEOUT),
                       start_period=pick(spec.start_period, image.start_period, DEFAULT_START_PERIOD),
                       retries=pick(spec.retries, image.retries, DEFAULT_RETRIES))
