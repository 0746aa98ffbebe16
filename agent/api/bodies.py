"""Request bodies of the API that are not runtime objects: exec, image import, network create,
policy replay.

Each is a msgspec schema (agent/schema.py): `schema.decode(request.body, ExecRequest)` validates
it strictly and names a bad field by its path; the OpenAPI generator reads the same classes.
"""
from __future__ import annotations

from typing import Annotated

import msgspec

from agent.network.model import NETWORK_NAME
from agent.schema import AbsolutePath, Argument, Environment, Name, Object

NetworkName = Annotated[str, msgspec.Meta(
    pattern=NETWORK_NAME.pattern, max_length=64,
    description="up to 64 letters, digits, '_', '.' and '-', starting with a letter or digit")]
Subnet = Annotated[str, msgspec.Meta(
    max_length=18, pattern=r"^[0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2}$",
    description="an IPv4 CIDR, /8 to /29, like 10.214.0.0/24")]
# A policy file's text; the whole body is at most agent.schema.MAX_BODY anyway.
PolicyText = Annotated[str, msgspec.Meta(max_length=1024 * 1024, pattern=r"^[^\x00]*$")]


class ExecRequest(Object, frozen=True):
    """`POST /v1/containers/{ref}/exec`: a command to run inside a running container."""

    command: Annotated[list[Argument], msgspec.Meta(min_length=1, max_length=4096)]
    env: Environment = []
    workdir: AbsolutePath | None = None


class ImportRequest(Object, frozen=True):
    """`POST /v1/images/import`: a tarball or OCI layout on the daemon's host, and its name."""

    path: AbsolutePath
    reference: Name


class NetworkCreateRequest(Object, frozen=True):
    """`POST /v1/networks`: a network's name, and optionally its subnet and internal flag."""

    name: NetworkName
    subnet: Subnet | None = None
    internal: bool = False


class ReplayRequest(Object, frozen=True):
    """`POST /v1/policies/replay`: a policy file's text and the name to report problems under."""

    text: PolicyText
    file: Name = "<replay>"
