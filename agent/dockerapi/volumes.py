"""Volumes. Corral's named volumes (issue 15) are not in this tree yet: the list is empty and
creating one is refused with 501, so clients say so instead of guessing; bind mounts of host
paths work through HostConfig.Binds and Mounts."""
from __future__ import annotations

from agent.dockerapi.app import Parts
from agent.dockerapi.errors import NotImplementedHere
from agent.dockerapi.router import Reply, Request, Router
from agent.errors import NotFound

_WHY = "named volumes are not available through Corral's Docker API yet; bind-mount a host path instead"


class VolumeRoutes:
    def __init__(self, parts: Parts) -> None:
        self.parts = parts

    def register(self, router: Router) -> None:
        router.add("GET", "/volumes", self.list)
        router.add("POST", "/volumes/create", self.unavailable)
        router.add("POST", "/volumes/prune", self.prune)
        router.add("GET", "/volumes/{name}", self.missing)
        router.add("DELETE", "/volumes/{name}", self.missing)

    def list(self, request: Request) -> Reply:
        return Reply.json({"Volumes": volume_views(self.parts), "Warnings": None})

    def prune(self, request: Request) -> Reply:
        return Reply.json({"VolumesDeleted": None, "SpaceReclaimed": 0})

    def missing(self, request: Request) -> Reply:
        raise NotFound(f"get {request.params['name']}: no such volume")

    def unavailable(self, request: Request) -> Reply:
        raise NotImplementedHere(_WHY)


def volume_views(parts: Parts, usage: bool = False) -> list[dict]:
    return []
