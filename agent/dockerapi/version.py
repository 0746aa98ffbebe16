"""The Engine API versions this compat layer claims, and the check of a request's `/v1.NN/`.

1.47 is Docker 27's API: newer than the 1.44 Docker 29 clients require, and old enough that no
route a client picks by version is one we lack. A client asking for a newer version is told the
maximum (as dockerd says it), and negotiating clients (the CLI, docker-py with `auto`) read
`API-Version` from `/_ping` and come down to it.
"""
from __future__ import annotations

import re

from agent.errors import InvalidArgument

API_VERSION = "1.47"
MIN_API_VERSION = "1.24"
_VERSION = re.compile(r"^/v(\d+)\.(\d+)(/.*)$")


def parse(version: str) -> tuple[int, int]:
    major, _, minor = version.partition(".")
    return int(major), int(minor)


def split_path(path: str) -> tuple[str | None, str]:
    """("1.44", "/containers/json") from "/v1.44/containers/json"; (None, path) when bare."""
    match = _VERSION.match(path)
    if match is None:
        return None, path
    return f"{match.group(1)}.{match.group(2)}", match.group(3)


def check(version: str | None) -> None:
    """400 for a version outside what we serve, in dockerd's words (clients show them)."""
    if version is None:
        return
    if parse(version) > parse(API_VERSION):
        raise InvalidArgument(f"client version {version} is too new. Maximum supported API version is {API_VERSION}")
    if parse(version) < parse(MIN_API_VERSION):
        raise InvalidArgument(f"client version {version} is too old. Minimum supported API version is "
                              f"{MIN_API_VERSION}, please upgrade your client to a newer version")
