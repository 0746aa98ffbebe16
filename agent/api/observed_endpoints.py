"""`GET /v1/observed` and `GET /v1/observed/{ref}`: containers Corral did not start but observes.

`ObservedEndpoints(observed).register(router)` puts them on the server's Router. `observed` is
the daemon's agent.discovery.observed.ObservedContainers; None (a daemon started with
--no-observe) makes both routes answer a Conflict saying so. `corral ps --all-cgroups` lists
these below Corral's own containers, marked as observed.
"""
from __future__ import annotations

from agent.api.routes import Request, Response, Router
from agent.errors import Conflict


class ObservedEndpoints:
    """Handlers of /v1/observed."""

    def __init__(self, observed) -> None:
        self._observed = observed

    def register(self, router: Router) -> None:
        router.add("GET", "/v1/observed", self.list_observed)
        router.add("GET", "/v1/observed/{ref}", self.inspect_observed)

    def _registry(self):
        if self._observed is None:
            raise Conflict("observe mode is off in this daemon",
                           hint="start it without --no-observe (or `observe: true` in its config file)")
        return self._observed

    def list_observed(self, request: Request) -> Response:
        return Response.json([container.to_dict() for container in self._registry().list()])

    def inspect_observed(self, request: Request) -> Response:
        return Response.json(self._registry().get(request.params["ref"]).to_dict())
