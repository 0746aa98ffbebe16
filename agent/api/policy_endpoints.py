"""The v1 endpoints of policies: list, explain, replay, prove, suggest, and unfreezing a container.

`PolicyEndpoints(queries).register(router)` puts them on the server's Router. `queries` is the
daemon's agent.policy.queries.PolicyQueries; with None (a daemon started without --policies)
every route answers with a Conflict (409) saying so. Only light modules are imported here.
"""
from __future__ import annotations

import time

from agent.api.bodies import ProveQuery, ReplayQuery, ReplayRequest, SuggestRequest
from agent.api.routes import Request, Response, Router
from agent.errors import Conflict, InvalidArgument


class PolicyEndpoints:
    """Handlers of /v1/policies and /v1/containers/{ref}/unfreeze; `register` adds them."""

    def __init__(self, service, prover=None) -> None:
        self._service = service
        self._prover = prover

    def register(self, router: Router) -> None:
        router.add("GET", "/v1/policies", self.list_policies)
        router.add("GET", "/v1/policies/explain/{ref}", self.explain)
        router.add("POST", "/v1/policies/replay", self.replay, query=ReplayQuery, body=ReplayRequest)
        router.add("GET", "/v1/policies/prove", self.prove, query=ProveQuery)
        router.add("POST", "/v1/policies/prove", self.prove_and_repair, query=ProveQuery)
        router.add("POST", "/v1/policies/suggest", self.suggest, body=SuggestRequest)
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

    def prove(self, request: Request) -> Response:
        """Each enforcing rule of the running containers, read back from the kernel."""
        return self._prove(request, repair=False)

    def prove_and_repair(self, request: Request) -> Response:
        """The same, putting back what the kernel lost (the daemon's periodic check does too)."""
        return self._prove(request, repair=True)

    def _prove(self, request: Request, *, repair: bool) -> Response:
        self._policies()
        query: ProveQuery = request.args or ProveQuery()
        proofs = self._prover.prove(query.container, repair=repair, canary=query.canary)
        return Response.json([p.to_dict() for p in proofs])

    def suggest(self, request: Request) -> Response:
        body = request.decode(SuggestRequest)
        fields = {"names": body.names, "images": body.images, "labels": body.labels, "services": body.services}
        selector = fields if any(v is not None for v in fields.values()) else None
        if body.container is not None and selector is not None:
            raise InvalidArgument("give a container or selector fields, not both", field="container")
        return Response.json(self._policies().suggest(
            container=body.container, selector=selector,
            since=time.time() - 3600.0 if body.since is None else body.since,
            holdout=body.holdout, mode=body.mode, name=body.name))

    def unfreeze(self, request: Request) -> Response:
        return Response.json(self._policies().unfreeze(request.params["ref"]))
