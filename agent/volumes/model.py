"""The schema of a volume (agent/schema.py): its record on disk and the API's view of it."""
from __future__ import annotations

import datetime
import re
from typing import Annotated, Any

import msgspec

from agent import schema
from agent.schema import AbsolutePath, Labels

# Docker's rule for volume names: two or more characters.
VOLUME_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{1,127}$")
VolumeName = Annotated[str, msgspec.Meta(
    pattern=VOLUME_NAME.pattern, max_length=128,
    description="2 to 128 letters, digits, '_', '.' or '-', starting with a letter or digit")]
DRIVER = "local"


class Volume(schema.Object, frozen=True):
    """One volume as the store keeps it (`<root>/volumes/<name>/volume.json`)."""

    name: VolumeName
    mountpoint: AbsolutePath                  # the host directory mounted into containers
    created_at: float
    labels: Labels = {}
    anonymous: bool = False                   # made for `-v /path` or an image's VOLUME
    driver: str = DRIVER

    def to_dict(self) -> dict[str, Any]:
        return schema.to_builtins(self)

    def describe(self, users: list[str] | None = None, size: int | None = None) -> dict[str, Any]:
        """Docker's shape (`docker volume inspect`), with the containers using it."""
        created = datetime.datetime.fromtimestamp(self.created_at, tz=datetime.UTC)
        view: dict[str, Any] = {
            "Name": self.name, "Driver": self.driver, "Mountpoint": self.mountpoint,
            "CreatedAt": created.strftime("%Y-%m-%dT%H:%M:%SZ"), "Labels": dict(self.labels),
            "Scope": "local", "Options": {}, "Anonymous": self.anonymous,
        }
        if users is not None:
            view["UsageData"] = {"RefCount": len(users), "Size": -1 if size is None else size}
            view["Containers"] = list(users)
        return view


class VolumeCreateRequest(schema.Object, frozen=True):
    """`POST /v1/volumes`: a name (none: a generated one, as docker does) and labels."""

    name: VolumeName | None = None
    labels: Labels = {}
