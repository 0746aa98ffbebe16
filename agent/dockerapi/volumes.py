"""Volumes: Corral's named volumes (agent/volumes/ keeps them, agent/runtime/volumes.py knows
which containers use them) in Docker's shape: list (filters dangling, driver, label, name),
create (Driver `local`, Labels; DriverOpts refused by name: Corral's volumes are plain
directories), inspect, remove (409 while a container uses it, also with force, as docker
answers) and prune (filters label, label!, all; anonymous volumes only unless `all=true`, and
every unused one for clients older than API 1.42, as dockerd does).

An anonymous volume carries docker's label `com.docker.volume.anonymous` in these views, the
way dockerd marks the ones it makes, so clients that tell them apart by it keep working.
"""
from __future__ import annotations

import datetime
from typing import Any

from agent.dockerapi import filters
from agent.dockerapi.app import Parts
from agent.dockerapi.create import is_zero
from agent.dockerapi.router import Reply, Request, Router
from agent.errors import Conflict, InvalidArgument, NotFound
from agent.runtime.filters import VOLUME_KEYS
from agent.runtime.filters import volumes as volume_filters
from agent.volumes.model import DRIVER, Volume

ANONYMOUS_LABEL = "com.docker.volume.anonymous"
PRUNE_KEYS = ("label", "label!", "all")
# The create body's fields that have no behaviour of their own here.
_CREATE_FIELDS = ("Name", "Driver", "DriverOpts", "Labels", "ClusterVolumeSpec")


class VolumeRoutes:
    def __init__(self, parts: Parts) -> None:
        self.parts = parts

    @property
    def volumes(self):
        """The runtime's Volumes (agent/runtime/volumes.py)."""
        return self.parts.runtime.volumes

    def register(self, router: Router) -> None:
        router.add("GET", "/volumes", self.list)
        router.add("POST", "/volumes/create", self.create)
        router.add("POST", "/volumes/prune", self.prune)
        router.add("GET", "/volumes/{name}", self.inspect)
        router.add("DELETE", "/volumes/{name}", self.remove)

    def list(self, request: Request) -> Reply:
        wanted = filters.parse(request.text("filters"), VOLUME_KEYS, "volumes")
        refs = reference_counts(self.volumes)
        views = [volume_view(volume, refs=refs.get(volume.name, 0)) for volume in self.volumes.store.list()]
        kept = volume_filters(views, wanted, lambda name: refs.get(name, 0))
        for view in kept:
            view.pop("UsageData", None)             # docker lists it only in system/df
        return Reply.json({"Volumes": kept, "Warnings": None})

    def create(self, request: Request) -> Reply:
        body = request.json(required=False)
        if not isinstance(body, dict):
            raise InvalidArgument("the volume create body must be a JSON object with Name, Driver, Labels")
        for key, value in body.items():
            if key not in _CREATE_FIELDS and not is_zero(value):
                raise InvalidArgument(f"{key}: Corral cannot honour {value!r}", field=key)
        driver = body.get("Driver") or DRIVER
        if driver != DRIVER:
            raise InvalidArgument(f"Driver: Corral cannot honour {driver!r}: its volumes use the {DRIVER} driver",
                                  field="Driver")
        for option, value in (body.get("DriverOpts") or {}).items():
            raise InvalidArgument(f"DriverOpts.{option}: Corral cannot honour {value!r}: a volume here is a "
                                  "directory the daemon keeps (no mount type, device or options)",
                                  field=f"DriverOpts.{option}")
        if not is_zero(body.get("ClusterVolumeSpec")):
            raise InvalidArgument("ClusterVolumeSpec: Corral runs no swarm", field="ClusterVolumeSpec")
        labels = body.get("Labels") or {}
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            raise InvalidArgument(f"Labels: expected an object of strings, got {labels!r}", field="Labels")
        name = body.get("Name") or None
        if name is not None:
            self.volumes.store.check_name(name)
        # The volume whether it was made now or existed already (docker answers so too).
        made = self.volumes.create(name, dict(labels))
        return Reply.json(volume_view(self._get(made["Name"])), status=201)

    def inspect(self, request: Request) -> Reply:
        return Reply.json(volume_view(self._get(request.params["name"])))

    def remove(self, request: Request) -> Reply:
        name = request.params["name"]
        force = request.flag("force")
        if not force:
            self._get(name)                          # 404 in docker's words
        try:
            self.volumes.remove(name, force=force)
        except Conflict as exc:
            raise Conflict(f"remove {name}: volume is in use - {exc.message}") from None
        return Reply.empty()

    def prune(self, request: Request) -> Reply:
        wanted = filters.parse(request.text("filters"), PRUNE_KEYS, "volume prune")
        every = filters.truthy(wanted.get("all"))
        if every is None:
            every = _older_than(request.version, (1, 42))

        def chosen(volume: Volume) -> bool:
            labels = dict(volume.labels)
            return filters.labels_match(wanted.get("label", []), labels) and \
                not any(filters.labels_match([item], labels) for item in wanted.get("label!", []))
        pruned = self.volumes.prune(all=every, select=chosen)
        return Reply.json({"VolumesDeleted": pruned["removed"] or None, "SpaceReclaimed": pruned["space_reclaimed"]})

    def _get(self, name: str) -> Volume:
        try:
            return self.volumes.store.get(name)
        except (NotFound, InvalidArgument):
            raise NotFound(f"get {name}: no such volume") from None



def volume_view(volume: Volume, *, refs: int | None = None, size: int | None = None) -> dict[str, Any]:
    """One volume as dockerd shows it (`docker volume inspect`); UsageData with `refs`."""
    created = datetime.datetime.fromtimestamp(volume.created_at, tz=datetime.UTC)
    labels = dict(volume.labels)
    if volume.anonymous:
        labels.setdefault(ANONYMOUS_LABEL, "")
    view: dict[str, Any] = {
        "Name": volume.name, "Driver": volume.driver, "Mountpoint": volume.mountpoint,
        "CreatedAt": created.strftime("%Y-%m-%dT%H:%M:%SZ"), "Labels": labels or None,
        "Scope": "local", "Options": None,
    }
    if refs is not None:
        view["UsageData"] = {"RefCount": refs, "Size": -1 if size is None else size}
    return view


def volume_views(parts: Parts, usage: bool = False) -> list[dict]:
    """Every volume; with `usage`, UsageData as `system df` shows it (sizes measured now when
    the cached figures miss a volume, as dockerd measures them for df)."""
    volumes = parts.runtime.volumes
    listed = volumes.store.list()
    if not usage:
        return [volume_view(volume) for volume in listed]
    sizes = volumes.usage.sizes()
    if any(volume.name not in sizes for volume in listed):
        sizes = volumes.usage.measure()
    refs = reference_counts(volumes)
    return [volume_view(volume, refs=refs.get(volume.name, 0), size=sizes.get(volume.name)) for volume in listed]


def reference_counts(volumes) -> dict[str, int]:
    """How many containers use each volume (`volumes`: the runtime's Volumes)."""
    return {view["Name"]: view["UsageData"]["RefCount"] for view in volumes.list()}


def _older_than(asked: str | None, version: tuple[int, int]) -> bool:
    if not asked:
        return False
    try:
        major, minor = (int(part) for part in asked.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) < version
