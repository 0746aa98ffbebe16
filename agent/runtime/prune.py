"""`container prune`, `network prune` and `system df`: what is unused, and its removal (images
are pruned by agent/api/image_endpoints.py).

Answers have docker's shapes (`ContainersDeleted`, `NetworksDeleted`,
`SpaceReclaimed`; `system df`'s `Images`, `Containers`), so docker's clients read them. A
container's size is what it wrote (its overlay upper directory); an image's, its layers.
"""
from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from agent.errors import CorralError, InvalidArgument
from agent.events import Event
from agent.runtime.model import LIVE, REMOVING, Container

if TYPE_CHECKING:
    from agent.runtime.containers import Runtime

FILTERS = ("until", "label", "label!")
_GO_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|ms|s|m|h))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class PruneFilter:
    """docker's prune filters: `until` (created before), `label` (has) and `label!` (has not)."""

    until: float | None = None
    labels: tuple[str, ...] = ()
    not_labels: tuple[str, ...] = ()

    @classmethod
    def parse(cls, filters: dict[str, list[str]], now: float) -> PruneFilter:
        unknown = sorted(set(filters) - set(FILTERS))
        if unknown:
            raise InvalidArgument(f"invalid filter {unknown[0]!r} (prune knows {', '.join(FILTERS)})",
                                  field="filters")
        until = [until_time(text, now) for text in filters.get("until", [])]
        return cls(until=min(until) if until else None, labels=tuple(filters.get("label", [])),
                   not_labels=tuple(filters.get("label!", [])))

    def matches(self, created: float, labels: dict[str, str]) -> bool:
        if self.until is not None and created >= self.until:
            return False
        return all(_has_label(labels, want) for want in self.labels) and \
            not any(_has_label(labels, want) for want in self.not_labels)


def _has_label(labels: dict[str, str], want: str) -> bool:
    key, sep, value = want.partition("=")
    return key in labels and (not sep or labels[key] == value)


def until_time(text: str, now: float) -> float:
    """A UNIX time from docker's `until`: a timestamp, an RFC 3339 date or a Go duration ago."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    if _GO_DURATION.match(text):
        return now - sum(float(number) * _UNIT[unit] for number, unit in _DURATION_PART.findall(text))
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument(f"filter until={text!r}: expected a timestamp, a date like 2024-05-01T12:00:00Z "
                              "or a duration like 10m or 1h30m", field="filters") from None
    if moment.tzinfo is None:
        moment = moment.astimezone()     # docker reads a date without a zone in local time
    return moment.timestamp()


def directory_size(path: Path) -> int:
    """Bytes of the files below `path` (not following links), 0 when it is gone."""
    total = 0
    for directory, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(directory, name)).st_size
            except OSError:
                continue
    return total


class Pruning:
    """Finds what is unused and removes it through the runtime, image store and networks."""

    def __init__(self, runtime: Runtime, clock: Callable[[], float] = time.time) -> None:
        self.runtime = runtime
        self.clock = clock

    def container_size(self, container: Container) -> int:
        return directory_size(self.runtime.rootfs.container_dir(container.id) / "upper")

    def prune_containers(self, filters: dict[str, list[str]]) -> dict:
        wanted = PruneFilter.parse(filters, self.clock())
        deleted, reclaimed = [], 0
        for container in self.runtime.store.all():
            if container.state in LIVE or container.state == REMOVING or \
                    not wanted.matches(container.created_at, dict(container.spec.labels)):
                continue
            size = self.container_size(container)
            try:
                self.runtime.remove(container.id)
            except CorralError:
                continue       # started or removed meanwhile
            deleted.append(container.id)
            reclaimed += size
        self.runtime.events.emit(Event("container", "prune", attributes={"reclaimed": reclaimed}))
        return {"ContainersDeleted": deleted, "SpaceReclaimed": reclaimed}

    def prune_networks(self, filters: dict[str, list[str]]) -> dict:
        """Networks no container is attached to; the default network stays."""
        networks = self.runtime.networks
        wanted = PruneFilter.parse(filters, self.clock())
        deleted: list[str] = []
        if networks is None:
            return {"NetworksDeleted": deleted}
        for network in networks.list_networks():
            if network.name == networks.default_network or networks.attachments(network.name) or \
                    not wanted.matches(network.created, {}):
                continue
            try:
                networks.remove_network(network.name)
            except CorralError:
                continue
            deleted.append(network.name)
        return {"NetworksDeleted": deleted}

    def disk_usage(self) -> dict:
        """docker's GET /system/df, in its field names (`LayersSize`: the images' bytes, each once)."""
        containers = self.runtime.store.all()
        images = self.runtime.images.list()
        return {
            "LayersSize": sum({i.id: i.size for i in images}.values()),
            "Images": [{"Id": i.id, "RepoTags": [i.reference] if i.tagged else [], "Created": int(i.created),
                        "Size": i.size, "Containers": sum(1 for c in containers if c.image_id == i.id)}
                       for i in images],
            "Containers": [{"Id": c.id, "Names": [c.name], "Image": c.spec.image, "State": c.state,
                            "SizeRw": self.container_size(c), "Created": int(c.created_at)}
                           for c in containers],
        }
