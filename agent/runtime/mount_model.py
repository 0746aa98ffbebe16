"""Where a container's files come from: `Mount` (--mount, -v, --tmpfs) and `DeviceMapping`
(--device), the msgspec schemas ContainerSpec's mount and device fields are made of
(agent/runtime/model.py); kept apart so the container model stays one object per file's job.
"""
from __future__ import annotations

import re
from typing import Annotated, Literal

import msgspec

from agent import schema
from agent.errors import InvalidArgument
from agent.schema import AbsolutePath

MountType = Literal["bind", "volume", "tmpfs"]
MountSource = Annotated[str, msgspec.Meta(
    min_length=1, max_length=4096, pattern=r"^[^\x00]+$",
    description="bind: an absolute host path; volume: a volume's name (none: a new anonymous volume)")]
# Docker's volume-name rule; kept here (not imported from agent.volumes) so the model stays light.
_VOLUME_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{1,127}$")


class Mount(schema.Object, frozen=True):
    """What `-v` and `--mount` put at `target`: a host directory (`bind`), a volume the daemon
    keeps (`volume`; `-v NAME:/path`, or `-v /path` for a new anonymous one), or a `tmpfs`."""

    target: AbsolutePath
    source: MountSource | None = None
    readonly: bool = False
    type: MountType = "bind"
    volume_nocopy: bool = False              # volume: do not fill a new volume from the image
    tmpfs_size: Annotated[int, msgspec.Meta(ge=0, le=1 << 50)] | None = None     # bytes
    tmpfs_mode: Annotated[int, msgspec.Meta(ge=0, le=0o7777)] | None = None

    def __post_init__(self) -> None:
        # A ValueError: msgspec reports it with the mount's path (`mounts[1]: ...`).
        if self.type == "bind" and not (self.source or "").startswith("/"):
            raise ValueError(f"source: a bind mount needs an absolute host path, got {self.source!r}")
        if self.type == "volume" and self.source is not None and not _VOLUME_NAME.match(self.source):
            raise ValueError(f"source: {self.source!r} is not a volume name (2 to 128 letters, digits, "
                             "'_', '.' or '-', starting with a letter or digit)")
        if self.type == "tmpfs" and self.source is not None:
            raise ValueError("source: a tmpfs mount has no source")
        if self.type != "tmpfs" and (self.tmpfs_size is not None or self.tmpfs_mode is not None):
            raise ValueError(f"tmpfs_size and tmpfs_mode are for tmpfs mounts, not {self.type}")
        if self.type != "volume" and self.volume_nocopy:
            raise ValueError(f"volume_nocopy is for volume mounts, not {self.type}")

    @classmethod
    def parse(cls, text: str) -> Mount:
        """`-v`: HOST:CTR[:ro|rw] (a bind), NAME:CTR[:ro|rw] (a volume), or CTR (an anonymous volume)."""
        from agent.runtime.mount_flags import parse_volume
        return parse_volume(text)

    def tmpfs_options(self) -> str:
        """As a --tmpfs option string (agent/security/options.py)."""
        options = [] if self.tmpfs_size is None else [f"size={self.tmpfs_size}"]
        if self.tmpfs_mode is not None:
            options.append(f"mode={self.tmpfs_mode:o}")
        return ",".join(options + (["ro"] if self.readonly else []))


DeviceAccess = Annotated[str, msgspec.Meta(
    min_length=1, max_length=3, pattern=r"^r?w?m?$", description="r (read), w (write), m (mknod), in that order")]


class DeviceMapping(schema.Object, frozen=True):
    """A host device node exposed to the container (`--device HOST[:CTR[:rwm]]`); every other
    node can be created but not opened (agent/cgroups/devices.py)."""

    host: AbsolutePath
    container: AbsolutePath | None = None    # None: the host path
    access: DeviceAccess = "rwm"

    @classmethod
    def parse(cls, text: str) -> DeviceMapping:
        parts = text.split(":")
        if not 1 <= len(parts) <= 3 or not parts[0]:
            raise InvalidArgument(f"device {text!r}: expected HOST[:CONTAINER[:rwm]]")
        access = parts[2] if len(parts) == 3 else "rwm"
        container = parts[1] if len(parts) > 1 and parts[1] else None
        if len(parts) == 2 and container and not container.startswith("/"):
            access, container = container, None             # HOST:rwm, as Docker allows
        data = {"host": parts[0], "container": container,
                "access": "".join(letter for letter in "rwm" if letter in access)}
        if len(set(access)) != len(access) or not set(access) <= set("rwm"):
            raise InvalidArgument(f"device {text!r}: access {access!r} must be letters of rwm, each once")
        return schema.convert(data, cls, f"device {text!r}")

    @property
    def target(self) -> str:
        return self.container or self.host

    def bind(self) -> str:
        """The launcher's --bind SRC:DST for the node (read-only when not writable)."""
        return f"{self.host}:{self.target}" + ("" if "w" in self.access else ":ro")
