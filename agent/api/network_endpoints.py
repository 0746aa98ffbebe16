"""The v1 endpoints of networks: list, create, inspect, remove, connect, disconnect.

`NetworkEndpoints(networks, connections).register(router)` puts them on the server's Router,
like CoreEndpoints does. `networks` is the daemon's NetworkManager (anything with its methods),
`connections` the runtime's agent.runtime.connections.Connections; with None (a daemon built
without networking) every route answers with a Conflict (409) saying so.
Only light modules are imported here: the CLI and the API server never load pyroute2.
"""
from __future__ import annotations

from agent.api.bodies import FiltersQuery, NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest
from agent.api.routes import Request, Response, Router
from agent.errors import Conflict


class NetworkEndpoints:
    """Handlers of /v1/networks; `register` puts them on a Router."""

    def __init__(self, networks, connections=None) -> None:
        self._networks = networks
        self._connections = connections

    def register(self, router: Router) -> None:
        router.add("GET", "/v1/networks", self.list_networks, query=FiltersQuery)
        router.add("POST", "/v1/networks", self.create_network, body=NetworkCreateRequest)
        router.add("GET", "/v1/networks/{name}", self.inspect_network)
        router.add("DELETE", "/v1/networks/{name}", self.remove_network)
        router.add("POST", "/v1/networks/{name}/connect", self.connect, body=NetworkConnectRequest)
        router.add("POST", "/v1/networks/{name}/disconnect", self.disconnect, body=NetworkDisconnectRequest)

    def _manager(self):
        if self._networks is None:
            raise Conflict("networking is not enabled in this daemon",
                              hint="the daemon's log says why the network manager did not start")
        return self._networks

    def list_networks(self, request: Request) -> Response:
        from agent.runtime import filters
        wanted = filters.parse(request.args.filters, filters.NETWORK_KEYS, "networks")
        listed = [network.to_dict() for network in self._manager().list_networks()]
        return Response.json(filters.networks(listed, wanted, builtin=getattr(self._manager(), "default_network", "")))

    def create_network(self, request: Request) -> Response:
        body = request.decode(NetworkCreateRequest)
        network = self._manager().create_network(body.name, body.subnet, internal=body.internal)
        return Response.json(network.to_dict(), status=201)

    def inspect_network(self, request: Request) -> Response:
        return Response.json(self._manager().inspect(request.params["name"]))

    def remove_network(self, request: Request) -> Response:
        self._manager().remove_network(request.params["name"])
        return Response.empty()

    def _joiner(self):
        self._manager()
        if self._connections is None:
            raise Conflict("this daemon cannot connect containers to networks")
        return self._connections

    def connect(self, request: Request) -> Response:
        body = request.decode(NetworkConnectRequest)
        container = self._joiner().connect(body.container, request.params["name"], body.aliases, body.ip)
        return Response.json(container.to_dict())

    def disconnect(self, request: Request) -> Response:
        body = request.decode(NetworkDisconnectRequest)
        container = self._joiner().disconnect(body.container, request.params["name"], force=body.force)
        return Response.json(container.to_dict())
