"""The v1 endpoints of volumes: list, create, inspect, remove, prune.

`VolumeEndpoints(volumes).register(router)`, `volumes` being the runtime's Volumes
(agent/runtime/volumes.py), which knows the containers that use each volume.
"""
from __future__ import annotations

from agent.api.bodies import VolumeListQuery, VolumePruneQuery, VolumeRemoveQuery
from agent.api.routes import Request, Response, Router
from agent.runtime import filters
from agent.volumes.model import VolumeCreateRequest


class VolumeEndpoints:
    def __init__(self, volumes) -> None:
        self._volumes = volumes

    def register(self, router: Router) -> None:
        router.add("GET", "/v1/volumes", self.list_volumes, query=VolumeListQuery)
        router.add("POST", "/v1/volumes", self.create_volume, body=VolumeCreateRequest)
        router.add("POST", "/v1/volumes/prune", self.prune_volumes, query=VolumePruneQuery)
        router.add("GET", "/v1/volumes/{name}", self.inspect_volume)
        router.add("DELETE", "/v1/volumes/{name}", self.remove_volume, query=VolumeRemoveQuery)

    def list_volumes(self, request: Request) -> Response:
        wanted = filters.parse(request.args.filters, filters.VOLUME_KEYS, "volumes")
        return Response.json(filters.volumes(self._volumes.list(), wanted))

    def create_volume(self, request: Request) -> Response:
        body = request.decode(VolumeCreateRequest)
        return Response.json(self._volumes.create(body.name, dict(body.labels)), status=201)

    def inspect_volume(self, request: Request) -> Response:
        return Response.json(self._volumes.inspect(request.params["name"]))

    def remove_volume(self, request: Request) -> Response:
        self._volumes.remove(request.params["name"], force=request.args.force)
        return Response.empty()

    def prune_volumes(self, request: Request) -> Response:
        return Response.json(self._volumes.prune(all=request.args.all))
