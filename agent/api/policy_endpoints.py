"""The v1 endpoints of policies: list, explain, replay, and unfreezing a container.

`PolicyEndpoints(queries).register(router)` puts them on the server's Router. `queries` is the
daemon's agent.policy.queries.PolicyQueries; with None (a daemon started without --policies)
every route answers with a Conflict (409) saying so. Only light modules are imported here.
"""
from __future__ import annotations

import time

from agent.api.bodies import ReplayQuery, ReplayRequest
from agent.api.routes import Request, Response, Router
from agent.errors import Conflict


class PolicyEndpoints:
    """Handlers of /v1/policies and /v1/containers/{ref}/unfreeze; `register` adds them."""

    def __init__(self, service) -> None:
        self._service = service

    def register(self, router: Router) -> None:
        router.add("GET", "/v1/policies", self.list_policies)
        router.add("GET", "/v1/policies/explain/{ref}", self.explain)
        router.add("POST", "/v1/policies/replay", self.replay, query=ReplayQuery, body=ReplayRequest)
        router.add("POST", "/v1/containers/{ref}/unfreeze", self.unfreeze)

    def _policies(self):
        if self._service is None:
            raise Conflict("policies are not enabled in this daemon",
                              hint="start it with `corral daemon --policies DIR`")
        return self._service

    def list_policies(self, request: Request) -> Response:
        return Response.json(self._policies().list_policies())

    def explain(self, request: Request) -> Response:
        return Response.json(self._policies().explain(request.params["ref"]))

    def replay(self, request: Request) -> Response:
        body = request.decode(ReplayRequest)
        since = request.number("since")
        if since is None:
            since = time.time() - 3600.0
        return Response.json(self._policies().replay(body.text, body.file, since))

    def unfreeze(self, request: Request) -> Response:
        return Response.json(self._policies().unfreeze(request.params["ref"]))
