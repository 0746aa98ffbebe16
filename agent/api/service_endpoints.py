"""The v1 endpoints of services: create, list, inspect, tasks (`service ps`), logs, scale,
update, rollback, remove.

`ServiceEndpoints(services).register(router)` puts them on the server's Router. `services` is
the daemon's ServiceManager (agent/services/manager.py); with None every route answers with a
Conflict (409) saying services are off. Only light modules are imported here.
"""
from __future__ import annotations

from agent.api import frames
from agent.api.bodies import FollowQuery
from agent.api.routes import Request, Response, Router
from agent.errors import Conflict
from agent.services.model import Scale, ServiceChange, ServiceSpec


class ServiceEndpoints:
    """Handlers of /v1/services; `register` puts them on a Router."""

    def __init__(self, services) -> None:
        self._services = services

    def register(self, router: Router) -> None:
        router.add("GET", "/v1/services", self.list_services)
        router.add("POST", "/v1/services", self.create_service, body=ServiceSpec)
        router.add("GET", "/v1/services/{name}", self.inspect_service)
        router.add("DELETE", "/v1/services/{name}", self.remove_service)
        router.add("GET", "/v1/services/{name}/tasks", self.service_tasks)
        router.add("GET", "/v1/services/{name}/logs", self.service_logs, query=FollowQuery)
        router.add("POST", "/v1/services/{name}/scale", self.scale_service, body=Scale)
        router.add("POST", "/v1/services/{name}/update", self.update_service, body=ServiceChange)
        router.add("POST", "/v1/services/{name}/rollback", self.rollback_service)

    def _manager(self):
        if self._services is None:
            raise Conflict("services are not enabled in this daemon",
                           hint="the daemon's log says why the service manager did not start")
        return self._services

    def list_services(self, request: Request) -> Response:
        return Response.json(self._manager().list())

    def create_service(self, request: Request) -> Response:
        spec = request.decode(ServiceSpec)
        service = self._manager().create(spec)
        return Response.json(service.to_dict(), status=201)

    def inspect_service(self, request: Request) -> Response:
        return Response.json(self._manager().inspect(request.params["name"]))

    def remove_service(self, request: Request) -> Response:
        self._manager().remove(request.params["name"])
        return Response.empty()

    def service_tasks(self, request: Request) -> Response:
        return Response.json(self._manager().tasks(request.params["name"]))

    def service_logs(self, request: Request) -> Response:
        stream = self._manager().logs(request.params["name"], follow=request.args.follow)
        return Response.chunks(stream, frames.MEDIA_TYPE)

    def scale_service(self, request: Request) -> Response:
        body = request.decode(Scale)
        return Response.json(self._manager().scale(request.params["name"], body.replicas).to_dict())

    def update_service(self, request: Request) -> Response:
        change = request.decode(ServiceChange)
        return Response.json(self._manager().update(request.params["name"], change).to_dict())

    def rollback_service(self, request: Request) -> Response:
        return Response.json(self._manager().rollback(request.params["name"]).to_dict())
