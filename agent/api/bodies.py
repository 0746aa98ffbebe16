"""Request bodies of the API that are not runtime objects: exec, image import, network create,
policy replay.

Each is a msgspec schema (agent/schema.py): `schema.decode(request.body, ExecRequest)` validates
it strictly and names a bad field by its path; the OpenAPI generator reads the same classes.
"""
from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from agent.network.model import NETWORK_NAME, Aliases
from agent.runtime.model import ConsoleSize
from agent.schema import AbsolutePath, Argument, Environment, IPv4, Labels, Name, Object

NetworkName = Annotated[str, msgspec.Meta(
    pattern=NETWORK_NAME.pattern, max_length=64,
    description="up to 64 letters, digits, '_', '.' and '-', starting with a letter or digit")]
Subnet = Annotated[str, msgspec.Meta(
    max_length=18, pattern=r"^[0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2}$",
    description="an IPv4 CIDR, /8 to /29, like 10.214.0.0/24")]
# A policy file's text; the whole body is at most agent.schema.MAX_BODY anyway.
PolicyText = Annotated[str, msgspec.Meta(max_length=1024 * 1024, pattern=r"^[^\x00]*$",
                                         description="a policy file's text, without NUL")]


class ExecRequest(Object, frozen=True):
    """`POST /v1/containers/{ref}/exec`: a command to run inside a running container."""

    command: Annotated[list[Argument], msgspec.Meta(min_length=1, max_length=4096)]
    env: Environment = []
    workdir: AbsolutePath | None = None
    # Interactive (agent/api/exec_endpoints.py): either takes the connection over.
    tty: bool = False                        # in a terminal of the container's
    stdin: bool = False                      # the client's input to the command's stdin
    console_size: ConsoleSize | None = None  # the terminal's [rows, columns]


class ImportRequest(Object, frozen=True):
    """`POST /v1/images/import`: a tarball or OCI layout on the daemon's host, and its name."""

    path: AbsolutePath
    reference: Name


class NetworkCreateRequest(Object, frozen=True):
    """`POST /v1/networks`: a network's name, and optionally its subnet and internal flag."""

    name: NetworkName
    subnet: Subnet | None = None
    internal: bool = False


class NetworkConnectRequest(Object, frozen=True):
    """`POST /v1/networks/{name}/connect`: a container, its aliases on the network, its address."""

    container: Name
    aliases: Aliases = []
    ip: IPv4 | None = None


class NetworkDisconnectRequest(Object, frozen=True):
    """`POST /v1/networks/{name}/disconnect`: a container; `force` also when it is not connected."""

    container: Name
    force: bool = False


class ReplayRequest(Object, frozen=True):
    """`POST /v1/policies/replay`: a policy file's text and the name to report problems under."""

    text: PolicyText
    file: Name = "<replay>"


class SuggestRequest(Object, frozen=True):
    """`POST /v1/policies/suggest`: the containers to learn from, by `container` (id, id prefix
    or name, also of a removed container the history still holds) or by selector fields
    (the policy's selector: names, images, labels, services)."""

    container: Name | None = None
    names: Annotated[list[Name], msgspec.Meta(min_length=1, max_length=64)] | None = None
    images: Annotated[list[Name], msgspec.Meta(min_length=1, max_length=64)] | None = None
    labels: Labels | None = None
    services: Annotated[list[Name], msgspec.Meta(min_length=1, max_length=64)] | None = None
    since: Timestamp | None = None         # default: an hour ago
    holdout: Annotated[float, msgspec.Meta(ge=0, le=0.9)] = 0.2
    mode: Literal["enforce", "audit"] = "enforce"
    name: PolicyNameText | None = None     # default: suggested-<container>


# Query parameters: one schema per route that takes any, given to `Router.add(query=...)`. Values
# arrive as text; the router reads booleans as flags (`?all`, `?all=1`, `?all=true`) and numbers
# as decimals, then validates them against these bounds like a body.

Seconds = Annotated[float, msgspec.Meta(ge=0, le=86400, description="seconds")]
Timestamp = Annotated[float, msgspec.Meta(ge=0, le=1e11, description="a UNIX time in seconds")]
PolicyNameText = Annotated[str, msgspec.Meta(max_length=63, pattern=r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$",
                                             description="a policy name (agent.policy.schema.POLICY_NAME)")]
SignalName = Annotated[str, msgspec.Meta(
    min_length=1, max_length=16, pattern=r"^[A-Za-z0-9+]+$",
    description="a signal name (KILL, SIGTERM, RTMIN+1) or number")]


# docker's filters as JSON, {"label": ["a=b"]} (agent/runtime/filters.py)
FiltersText = Annotated[str, msgspec.Meta(max_length=4096, pattern=r"^[^\x00]*$",
                                          description='docker\'s filters as JSON: {"label": ["a=b"]}')]


class ListQuery(Object, frozen=True):
    all: bool = False          # stopped containers too
    filters: FiltersText | None = None


class FiltersQuery(Object, frozen=True):
    """A listing that takes only docker's filters (images, networks)."""

    filters: FiltersText | None = None


class CreateQuery(Object, frozen=True):
    start: bool = False        # start the container after creating it


class RemoveQuery(Object, frozen=True):
    force: bool = False        # kill it first if it runs
    volumes: bool = False      # remove its anonymous volumes too (docker's `rm -v`)


class StopQuery(Object, frozen=True):
    timeout: Seconds | None = None   # between the stop signal and SIGKILL; default: --stop-timeout, else 10
    signal: SignalName | None = None  # default: the container's --stop-signal, else TERM


WaitCondition = Annotated[str, msgspec.Meta(
    pattern=r"^(not-running|next-exit|removed)$", max_length=16,
    description="not-running (default), next-exit or removed, as docker's wait --condition")]


class WaitQuery(Object, frozen=True):
    condition: WaitCondition = "not-running"
    # Once it has exited, remove it with its anonymous volumes (`rm -v`) before answering: the
    # foreground `run --rm` in one round trip instead of wait + remove.
    remove: bool = False


class KillQuery(Object, frozen=True):
    signal: SignalName = "KILL"


class FollowQuery(Object, frozen=True):
    follow: bool = False       # keep the stream open for what comes


LogTime = Annotated[str, msgspec.Meta(
    min_length=1, max_length=64, pattern=r"^[0-9A-Za-z.:+ -]+$",
    description="a duration back from now (10m, 1h30m), UNIX seconds (1700000000.5) or an RFC 3339 date")]
LogTail = Annotated[str, msgspec.Meta(max_length=12, pattern=r"^(all|[0-9]+)$",
                                      description="a number of lines, or all")]


class LogsQuery(Object, frozen=True):
    """`GET /v1/containers/{ref}/logs` (agent/runtime/logs.py says how each is read)."""

    follow: bool = False       # keep the stream open for what comes
    timestamps: bool = False   # each line starts with its time (RFC3339Nano, UTC) and a space
    since: LogTime | None = None   # lines at or after
    until: LogTime | None = None   # lines at or before
    tail: LogTail = "all"      # the last N lines of the log first
    stdout: bool = True
    stderr: bool = True


class EventsQuery(Object, frozen=True):
    since: Timestamp | None = None
    follow: bool = False
    filters: FiltersText | None = None


class ReplayQuery(Object, frozen=True):
    since: Timestamp | None = None   # default: an hour ago


class ProveQuery(Object, frozen=True):
    container: str | None = None    # id, id prefix or name; default: every running container
    canary: bool = False            # also try each egress and kill rule with a canary process


class StatsQuery(Object, frozen=True):
    syscalls: bool = False     # with per-syscall counts


# Volumes and files (agent/api/volume_endpoints.py, agent/api/file_endpoints.py)

class VolumeListQuery(Object, frozen=True):
    filters: FiltersText | None = None     # dangling, driver, label, name


class VolumeRemoveQuery(Object, frozen=True):
    force: bool = False        # a missing volume is not an error (one in use is still refused)


class VolumePruneQuery(Object, frozen=True):
    all: bool = False          # named volumes too, not only anonymous ones


class ArchiveQuery(Object, frozen=True):
    path: AbsolutePath         # in the container


class ArchiveUploadQuery(Object, frozen=True):
    path: AbsolutePath         # an existing directory in the container
    copy_uid_gid: bool = False     # keep the archive's owners (`cp -a`); else files belong to root
