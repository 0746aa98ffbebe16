"""Request bodies of the API that are not runtime objects: exec and image import.

Built through `from_dict`, which rejects unknown keys and names the field at fault, like
ContainerSpec.from_dict does for `POST /v1/containers`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent.errors import InvalidArgument
from agent.fields import check_keys


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidArgument(f"{where}: expected a list of strings, got {value!r}")
    return list(value)


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"{where}: expected a non-empty string, got {value!r}")
    return value


@dataclass(frozen=True)
class ExecRequest:
    """`POST /v1/containers/{ref}/exec`: a command to run inside a running container."""

    command: list[str]
    env: list[str] = field(default_factory=list)
    workdir: str | None = None

    @classmethod
    def from_dict(cls, data: Any) -> "ExecRequest":
        check_keys(data, cls, "exec request")
        if "command" not in data:
            raise InvalidArgument("exec request: field 'command' is required, like [\"ls\", \"-l\"]")
        command = _strings(data["command"], "exec request.command")
        if not command:
            raise InvalidArgument("exec request.command: must not be empty")
        env = _strings(data.get("env") or [], "exec request.env")
        for item in env:
            if "=" not in item or item.startswith("="):
                raise InvalidArgument(f"exec request.env {item!r}: expected KEY=VALUE")
        workdir = data.get("workdir")
        if workdir is not None and not (isinstance(workdir, str) and workdir.startswith("/")):
            raise InvalidArgument(f"exec request.workdir {workdir!r}: must be an absolute path")
        return cls(command=command, env=env, workdir=workdir)


@dataclass(frozen=True)
class ImportRequest:
    """`POST /v1/images/import`: a tarball or OCI layout on the daemon's host, and its name."""

    path: str
    reference: str

    @classmethod
    def from_dict(cls, data: Any) -> "ImportRequest":
        check_keys(data, cls, "image import request")
        for key in ("path", "reference"):
            if key not in data:
                raise InvalidArgument(f"image import request: field {key!r} is required")
        path = _string(data["path"], "image import request.path")
        if not path.startswith("/"):
            raise InvalidArgument(f"image import request.path {path!r}: must be an absolute path on the daemon's host")
        return cls(path=path, reference=_string(data["reference"], "image import request.reference"))
