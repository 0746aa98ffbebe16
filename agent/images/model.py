"""API objects of the image store: `ImageConfig`, `Image`, and image references.

A reference is written the way docker writes it, `[REGISTRY[:PORT]/]PATH[:TAG]`, with the tag
defaulting to `latest`. An image's id is the sha256 of the canonical JSON of its layer digests
and its config, so the same content imported twice gets the same id.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from agent.errors import InvalidArgument
from agent.fields import check_keys

DEFAULT_TAG = "latest"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# What `corral images` shows for an image that lost its name when the name was given to
# newer content (docker calls these dangling images).
UNTAGGED = "<none>"

# The grammar of github.com/distribution/reference, without digests.
_PATH_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_DOMAIN = re.compile(
    r"^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
    r"(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(?::[0-9]+)?$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_ID = re.compile(r"^sha256:[0-9a-f]{64}$")
_MAX_NAME = 255


def _bad(reference: str, why: str) -> InvalidArgument:
    return InvalidArgument(f"image reference {reference!r}: {why}",
                           hint="write it like busybox, busybox:latest or registry:5000/team/app:1.0")


def parse_reference(reference: str) -> tuple[str, str]:
    """(name, tag) from "busybox", "busybox:1.36" or "localhost:5000/team/app:v1"."""
    if not isinstance(reference, str) or not reference:
        raise _bad(str(reference), "an image name is required")
    if "@" in reference:
        raise _bad(reference, "digest references (@sha256:...) are not supported; use NAME:TAG")
    name, tag = reference, DEFAULT_TAG
    # The tag separator is the last ':' after the last '/'; an earlier ':' is a registry port.
    colon = reference.rfind(":")
    if colon > reference.rfind("/"):
        name, tag = reference[:colon], reference[colon + 1:]
        if not _TAG.match(tag):
            raise _bad(reference, f"tag {tag!r} must be letters, digits, '_', '.' or '-' "
                                  "(at most 128, not starting with '.' or '-')")
    if len(name) > _MAX_NAME:
        raise _bad(reference, f"the name is longer than {_MAX_NAME} characters")
    components = name.split("/")
    first = components[0]
    if len(components) > 1 and ("." in first or ":" in first or first == "localhost"):
        if not _DOMAIN.match(first):
            raise _bad(reference, f"registry {first!r} is not a valid host[:port]")
        components = components[1:]
    for component in components:
        if not _PATH_COMPONENT.match(component):
            if component.lower() != component and _PATH_COMPONENT.match(component.lower()):
                raise _bad(reference, "repository names must be lowercase")
            raise _bad(reference, f"{component or '(empty)'!r} is not a valid name component: "
                                  "use lowercase letters and digits separated by '.', '_', '__' or '-'")
    return name, tag


def format_reference(name: str, tag: str) -> str:
    return f"{name}:{tag}"


def _string_list(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidArgument(f"{where}: expected a list of strings, got {value!r}")
    return list(value)


@dataclass(frozen=True)
class ImageConfig:
    """How a container of the image starts when `corral run` gives no command of its own, and
    the rest of the image config's `config` section that docker honours (Dockerfile's USER,
    LABEL, EXPOSE, VOLUME, STOPSIGNAL, HEALTHCHECK, SHELL).

    `to_dict` leaves out the fields added after the first four while they hold their default, so
    the ids of images stored before they existed (`image_id` hashes `to_dict`) do not change.
    """

    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=lambda: [DEFAULT_PATH])   # "K=V"
    workdir: str = "/"
    user: str = ""                                                  # "" = root
    labels: dict[str, str] = field(default_factory=dict)
    exposed_ports: list[str] = field(default_factory=list)          # "80/tcp"
    volumes: list[str] = field(default_factory=list)                # absolute paths
    stop_signal: str = ""                                           # "" = SIGTERM
    # Docker's HealthConfig as the image config writes it: Test (["CMD", ...], ["CMD-SHELL",
    # "..."] or ["NONE"]) and Interval, Timeout, StartPeriod (nanoseconds), Retries.
    healthcheck: dict[str, Any] = field(default_factory=dict)
    shell: list[str] = field(default_factory=list)                  # SHELL; [] = ["/bin/sh", "-c"]

    def __post_init__(self) -> None:
        for item in self.env:
            if "=" not in item or item.startswith("="):
                raise InvalidArgument(f"image config env {item!r}: expected KEY=VALUE")
        if not self.workdir.startswith("/"):
            raise InvalidArgument(f"image config workdir {self.workdir!r}: must be an absolute path")
        for path in self.volumes:
            if not path.startswith("/"):
                raise InvalidArgument(f"image config volume {path!r}: must be an absolute path")
        for port in self.exposed_ports:
            number, _, proto = port.partition("/")
            if not number.isdigit() or not 0 < int(number) < 65536 or proto not in ("tcp", "udp", "sctp"):
                raise InvalidArgument(f"image config exposed port {port!r}: expected PORT/tcp|udp|sctp")

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"entrypoint": list(self.entrypoint), "cmd": list(self.cmd),
                                "env": list(self.env), "workdir": self.workdir}
        for name in _LATER_FIELDS:
            value = getattr(self, name)
            if value:
                data[name] = value.copy() if isinstance(value, (list, dict)) else value
        return data

    @classmethod
    def from_dict(cls, data: dict, where: str = "image config") -> ImageConfig:
        check_keys(data, cls, where)
        workdir = data.get("workdir", "/")
        if not isinstance(workdir, str):
            raise InvalidArgument(f"{where}.workdir: expected a string, got {workdir!r}")
        return cls(entrypoint=_string_list(data.get("entrypoint"), f"{where}.entrypoint"),
                   cmd=_string_list(data.get("cmd"), f"{where}.cmd"),
                   env=_string_list(data.get("env", [DEFAULT_PATH]), f"{where}.env"),
                   workdir=workdir or "/",
                   user=_string(data.get("user"), f"{where}.user"),
                   labels=_string_map(data.get("labels"), f"{where}.labels"),
                   exposed_ports=_string_list(data.get("exposed_ports"), f"{where}.exposed_ports"),
                   volumes=_string_list(data.get("volumes"), f"{where}.volumes"),
                   stop_signal=_string(data.get("stop_signal"), f"{where}.stop_signal"),
                   healthcheck=_healthcheck(data.get("healthcheck"), f"{where}.healthcheck"),
                   shell=_string_list(data.get("shell"), f"{where}.shell"))

    @classmethod
    def from_oci(cls, settings: Any, where: str) -> ImageConfig:
        """The `config` section of an OCI/Docker image config blob (`Entrypoint`, `Cmd`, `Env`,
        `WorkingDir`, `User`, `Labels`, `ExposedPorts`, `Volumes`, `StopSignal`, `Healthcheck`,
        `Shell`); anything else in it is ignored, as docker ignores what it does not use."""
        if settings is None:
            settings = {}
        if not isinstance(settings, dict):
            raise InvalidArgument(f"{where}: expected an object, got {type(settings).__name__}")
        return cls(entrypoint=_string_list(settings.get("Entrypoint"), f"{where}.Entrypoint"),
                   cmd=_string_list(settings.get("Cmd"), f"{where}.Cmd"),
                   env=_string_list(settings.get("Env"), f"{where}.Env") or [DEFAULT_PATH],
                   workdir=_string(settings.get("WorkingDir"), f"{where}.WorkingDir") or "/",
                   user=_string(settings.get("User"), f"{where}.User"),
                   labels=_string_map(settings.get("Labels"), f"{where}.Labels"),
                   exposed_ports=sorted(_keys(settings.get("ExposedPorts"), f"{where}.ExposedPorts")),
                   volumes=sorted(_keys(settings.get("Volumes"), f"{where}.Volumes")),
                   stop_signal=_string(settings.get("StopSignal"), f"{where}.StopSignal"),
                   healthcheck=_healthcheck(settings.get("Healthcheck"), f"{where}.Healthcheck"),
                   shell=_string_list(settings.get("Shell"), f"{where}.Shell"))

    def to_oci(self) -> dict[str, Any]:
        """The `config` section of an image config blob, as docker writes it (empty fields left out)."""
        data: dict[str, Any] = {"Env": list(self.env), "WorkingDir": self.workdir}
        if self.entrypoint:
            data["Entrypoint"] = list(self.entrypoint)
        if self.cmd:
            data["Cmd"] = list(self.cmd)
        optional = {"User": self.user, "Labels": dict(self.labels),
                    "ExposedPorts": {port: {} for port in self.exposed_ports},
                    "Volumes": {path: {} for path in self.volumes}, "StopSignal": self.stop_signal,
                    "Healthcheck": dict(self.healthcheck), "Shell": list(self.shell)}
        data.update({key: value for key, value in optional.items() if value})
        return data


_LATER_FIELDS = ("user", "labels", "exposed_ports", "volumes", "stop_signal", "healthcheck", "shell")
_HEALTH_KEYS = {"Test": list, "Interval": int, "Timeout": int, "StartPeriod": int,
                "StartInterval": int, "Retries": int}


def _string(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidArgument(f"{where}: expected a string, got {value!r}")
    return value


def _string_map(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise InvalidArgument(f"{where}: expected an object of strings, got {value!r}")
    return dict(value)


def _keys(value: Any, where: str) -> list[str]:
    """Docker writes sets as objects with empty values: {"80/tcp": {}}."""
    if value is None:
        return []
    if not isinstance(value, dict):
        raise InvalidArgument(f"{where}: expected an object, got {value!r}")
    return [str(key) for key in value]


def _healthcheck(value: Any, where: str) -> dict[str, Any]:
    if not value:
        return {}
    if not isinstance(value, dict):
        raise InvalidArgument(f"{where}: expected an object, got {value!r}")
    checked: dict[str, Any] = {}
    for key, item in value.items():
        kind = _HEALTH_KEYS.get(key)
        if kind is None:
            raise InvalidArgument(f"{where}: unknown field {key!r} (known: {', '.join(_HEALTH_KEYS)})")
        if kind is list:
            checked[key] = _string_list(item, f"{where}.{key}")
        elif not isinstance(item, int) or isinstance(item, bool) or item < 0:
            raise InvalidArgument(f"{where}.{key}: expected a non-negative integer, got {item!r}")
        elif item:
            checked[key] = item
    return checked


def image_id(layers: list[str], config: ImageConfig) -> str:
    """sha256 of the canonical JSON of (layers, config): equal content, equal id."""
    canonical = json.dumps({"layers": list(layers), "config": config.to_dict()},
                           sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Image:
    """One named image: its layers (digests of uncompressed tars, lowest first) and config."""

    id: str                 # "sha256:<64 hex>"
    name: str               # "busybox", or UNTAGGED
    tag: str                # "latest", or UNTAGGED
    layers: list[str]       # "sha256:<64 hex>", lowest first
    config: ImageConfig
    created: float          # seconds since the epoch, when this name was given to the content
    size: int               # bytes of the extracted layers
    # Where a pulled image came from: `name@sha256:...` of its manifest in each registry it was
    # pulled from or pushed to (`corral images --digests`), and the digests of the manifest and
    # config blobs kept under images/blobs/ (so a push re-sends them byte for byte).
    repo_digests: list[str] = field(default_factory=list)
    manifest_digest: str = ""
    config_digest: str = ""

    def __post_init__(self) -> None:
        for digest in (self.id, *self.layers):
            if not _ID.match(digest):
                raise InvalidArgument(f"image {self.name}:{self.tag}: {digest!r} is not a sha256 digest")

    @property
    def reference(self) -> str:
        return format_reference(self.name, self.tag)

    @property
    def short_id(self) -> str:
        """The 12 hex digits `corral images` shows."""
        return self.id.split(":", 1)[1][:12]

    @property
    def tagged(self) -> bool:
        return self.name != UNTAGGED

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "name": self.name, "tag": self.tag, "layers": list(self.layers),
                                "config": self.config.to_dict(), "created": self.created, "size": self.size}
        if self.repo_digests or self.manifest_digest or self.config_digest:
            data.update(repo_digests=list(self.repo_digests), manifest_digest=self.manifest_digest,
                        config_digest=self.config_digest)
        return data

    @classmethod
    def from_dict(cls, data: dict, where: str = "image") -> Image:
        check_keys(data, cls, where)
        for key in ("id", "name", "tag"):
            if not isinstance(data[key], str):
                raise InvalidArgument(f"{where}.{key}: expected a string, got {data[key]!r}")
        if not isinstance(data["created"], (int, float)) or isinstance(data["created"], bool):
            raise InvalidArgument(f"{where}.created: expected seconds since the epoch, got {data['created']!r}")
        if not isinstance(data["size"], int) or isinstance(data["size"], bool) or data["size"] < 0:
            raise InvalidArgument(f"{where}.size: expected a number of bytes, got {data['size']!r}")
        return cls(id=data["id"], name=data["name"], tag=data["tag"],
                   layers=_string_list(data["layers"], f"{where}.layers"),
                   config=ImageConfig.from_dict(data["config"], f"{where}.config"),
                   created=float(data["created"]), size=data["size"],
                   repo_digests=_string_list(data.get("repo_digests"), f"{where}.repo_digests"),
                   manifest_digest=str(data.get("manifest_digest", "")),
                   config_digest=str(data.get("config_digest", "")))
