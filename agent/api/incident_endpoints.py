"""The v1 endpoints of incident bundles (agent/incidents): list, one bundle, and its export."""
from __future__ import annotations

from agent.api.routes import Request, Response, Router
from agent.errors import CorralError


class IncidentEndpoints:
    def __init__(self, store) -> None:
        self._store = store

    def register(self, router: Router) -> None:
        router.add("GET", "/v1/incidents", self.list)
        router.add("GET", "/v1/incidents/{ref}", self.show)
        router.add("GET", "/v1/incidents/{ref}/export", self.export)

    def _need(self):
        if self._store is None:
            raise CorralError("incidents are not recorded by this daemon")
        return self._store

    def list(self, request: Request) -> Response:
        return Response.json(self._need().list())

    def show(self, request: Request) -> Response:
        return Response.json(self._need().get(request.params["ref"]))

    def export(self, request: Request) -> Response:
        return Response.chunks([self._need().export(request.params["ref"])], "application/gzip")
