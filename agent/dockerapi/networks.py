"""Networks: Corral's bridge networks in Docker's shape, plus the `host` and `none` modes
docker lists as networks. Corral's default network (corral0) is docker's `bridge`.

Docker's network labels have no place in Corral's network records, so they are kept here, in
one JSON file next to the daemon's state (`<root>/dockerapi/network-labels.json`); Compose
reads its labels back from inspect.
"""
from __future__ import annotations

import json
import threading
from pathlib import Path

from agent.atomic_file import write_atomically
from agent.dockerapi import filters
from agent.dockerapi.app import Parts
from agent.dockerapi.router import Reply, Request, Router
from agent.dockerapi.views import DEFAULT_NETWORK_NAME, endpoint_id, network_id, timestamp
from agent.errors import Conflict, InvalidArgument, NotFound

_LIST_FILTERS = ("name", "id", "label", "driver", "type", "scope", "dangling")
_PSEUDO = {"host": "host", "none": "null"}


class NetworkRoutes:
    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self._labels_path = Path(parts.info().get("root", "/var/lib/corral")) / "dockerapi" / "network-labels.json"
        self._guard = threading.Lock()

    def register(self, router: Router) -> None:
        router.add("GET", "/networks", self.list)
        router.add("POST", "/networks/create", self.create)
        router.add("POST", "/networks/prune", self.prune)
        router.add("GET", "/networks/{id}", self.inspect)
        router.add("DELETE", "/networks/{id}", self.remove)
        router.add("POST", "/networks/{id}/connect", self.connect)
        router.add("POST", "/networks/{id}/disconnect", self.disconnect)

    # Labels kept beside Corral's records

    def _labels(self) -> dict[str, dict[str, str]]:
        try:
            return json.loads(self._labels_path.read_text())
        except (OSError, ValueError):
            return {}

    def _set_labels(self, name: str, labels: dict[str, str] | None) -> None:
        with self._guard:
            data = self._labels()
            if labels:
                data[name] = labels
            else:
                data.pop(name, None)
            self._labels_path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(self._labels_path, json.dumps(data).encode())

    # Views

    def _manager(self):
        if self.parts.networks is None:
            raise InvalidArgument("networking is not enabled in this daemon (started with --no-network)")
        return self.parts.networks

    def _all(self) -> list[dict]:
        views = [self._pseudo(name) for name in _PSEUDO]
        if self.parts.networks is not None:
            labels = self._labels()
            views += [self._view(n, labels.get(n.name, {})) for n in self.parts.networks.list_networks()]
        return views

    def _pseudo(self, name: str) -> dict:
        return {"Name": name, "Id": network_id(name), "Created": timestamp(None), "Scope": "local",
                "Driver": _PSEUDO[name], "EnableIPv6": False, "IPAM": {"Driver": "default", "Options": None, "Config": []},
                "Internal": False, "Attachable": False, "Ingress": False, "ConfigFrom": {"Network": ""},
                "ConfigOnly": False, "Containers": {}, "Options": {}, "Labels": {}}

    def _view(self, network, labels: dict[str, str]) -> dict:
        name = DEFAULT_NETWORK_NAME if network.name == self.parts.networks.default_network else network.name
        containers = {}
        for attachment in self.parts.networks.attachments(network.name):
            containers[attachment.container_id] = {
                "Name": attachment.container_name, "EndpointID": endpoint_id(attachment.container_id, name),
                "MacAddress": attachment.mac, "IPv4Address": f"{attachment.address}/{attachment.prefix}",
                "IPv6Address": ""}
        # As docker does: the default network names its bridge; a user network's Options are the
        # options it was created with (none here). Compose compares them with the file's
        # driver_opts and would recreate a network whose Options it did not set.
        options = {"com.docker.network.bridge.name": network.bridge} if name == DEFAULT_NETWORK_NAME else {}
        return {"Name": name, "Id": network_id(name), "Created": timestamp(network.created), "Scope": "local",
                "Driver": "bridge", "EnableIPv6": False,
                "IPAM": {"Driver": "default", "Options": None,
                         "Config": [{"Subnet": network.subnet, "Gateway": network.gateway}]},
                "Internal": network.internal, "Attachable": False, "Ingress": False, "ConfigFrom": {"Network": ""},
                "ConfigOnly": False, "Containers": containers, "Options": options, "Labels": labels}

    def _find(self, ref: str) -> dict:
        views = self._all()
        for view in views:
            if ref in (view["Name"], view["Id"]):
                return view
        matches = [view for view in views if view["Id"].startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        raise NotFound(f"network {ref} not found")

    def _corral_name(self, view: dict) -> str:
        return self.parts.networks.default_network if view["Name"] == DEFAULT_NETWORK_NAME else view["Name"]

    # Routes

    def list(self, request: Request) -> Reply:
        wanted = filters.parse(request.text("filters"), _LIST_FILTERS, "networks")
        found = []
        for view in self._all():
            builtin = view["Name"] in ("bridge", "host", "none")
            if not filters.any_match(wanted.get("name"), view["Name"], substring=True) \
                    or not filters.any_match(wanted.get("id"), view["Id"], prefix=True) \
                    or not filters.any_match(wanted.get("driver"), view["Driver"]) \
                    or not filters.labels_match(wanted.get("label", []), view["Labels"]) \
                    or not filters.any_match(wanted.get("type"), "builtin" if builtin else "custom"):
                continue
            dangling = filters.truthy(wanted.get("dangling"))
            if dangling is not None and dangling == bool(view["Containers"] or builtin):
                continue
            found.append(view)
        return Reply.json(found)

    def inspect(self, request: Request) -> Reply:
        return Reply.json(self._find(request.params["id"]))

    def create(self, request: Request) -> Reply:
        body = request.json()
        name = body.get("Name")
        if not isinstance(name, str) or not name:
            raise InvalidArgument("Name: a network name is required", field="Name")
        if name in ("bridge", "host", "none"):
            raise Conflict(f"network with name {name} already exists")
        driver = body.get("Driver") or "bridge"
        if driver != "bridge":
            raise InvalidArgument(f"Driver: Corral cannot honour {driver!r} (only bridge)", field="Driver")
        for key in ("EnableIPv6", "Ingress", "ConfigOnly", "Scope", "ConfigFrom", "Options"):
            value = body.get(key)
            if value and not (key == "Scope" and value == "local"):
                raise InvalidArgument(f"{key}: Corral cannot honour {value!r}", field=key)
        subnet = None
        configs = ((body.get("IPAM") or {}).get("Config")) or []
        if len(configs) > 1:
            raise InvalidArgument("IPAM.Config: Corral networks have one subnet", field="IPAM.Config")
        if configs:
            subnet = configs[0].get("Subnet")
            extra = {k: v for k, v in configs[0].items() if k != "Subnet" and v}
            if extra:
                raise InvalidArgument(f"IPAM.Config[0]: Corral cannot honour {sorted(extra)} (the gateway is the "
                                      "subnet's first address)", field="IPAM.Config")
        manager = self._manager()
        try:
            manager.get(name)
        except NotFound:
            pass
        else:
            raise Conflict(f"network with name {name} already exists")
        manager.create_network(name, subnet, internal=bool(body.get("Internal")))
        self._set_labels(name, body.get("Labels") or None)
        return Reply.json({"Id": network_id(name), "Warning": ""}, status=201)

    def remove(self, request: Request) -> Reply:
        view = self._find(request.params["id"])
        if view["Name"] in ("bridge", "host", "none"):
            raise Conflict(f"{view['Name']} is a pre-defined network and cannot be removed")
        if view["Containers"]:
            raise Conflict(f"error while removing network: network {view['Name']} id {view['Id']} has active endpoints")
        self._manager().remove_network(self._corral_name(view))
        self._set_labels(view["Name"], None)
        return Reply.empty()

    def _connections(self):
        from agent.runtime.connections import Connections
        self._manager()
        return Connections(self.parts.runtime)

    def _container(self, body: dict) -> str:
        ref = body.get("Container")
        if not isinstance(ref, str) or not ref.strip("/"):
            raise InvalidArgument("Container: a container id or name is required", field="Container")
        return ref.lstrip("/")

    def connect(self, request: Request) -> Reply:
        """Container, EndpointConfig.Aliases and EndpointConfig.IPAMConfig.IPv4Address."""
        view = self._find(request.params["id"])
        body = request.json() or {}
        if not isinstance(body, dict):
            raise InvalidArgument("the connect body must be a JSON object with Container and EndpointConfig")
        ref = self._container(body)
        from agent.dockerapi.create import endpoint_settings
        entry = endpoint_settings("EndpointConfig", view["Name"], body.get("EndpointConfig") or {},
                          self.parts.runtime.get(ref).name)
        self._connections().connect(ref, self._corral_name(view), entry.get("aliases", []), entry.get("ip"))
        return Reply.empty(status=200)

    def disconnect(self, request: Request) -> Reply:
        view = self._find(request.params["id"])
        body = request.json() or {}
        if not isinstance(body, dict):
            raise InvalidArgument("the disconnect body must be a JSON object with Container and Force")
        self._connections().disconnect(self._container(body), self._corral_name(view), force=bool(body.get("Force")))
        return Reply.empty(status=200)

    def prune(self, request: Request) -> Reply:
        wanted = filters.parse(request.text("filters"), ("label", "until"), "network prune")
        deleted = []
        for view in self._all():
            if view["Name"] in ("bridge", "host", "none") or view["Containers"]:
                continue
            if not filters.labels_match(wanted.get("label", []), view["Labels"]):
                continue
            self._manager().remove_network(self._corral_name(view))
            self._set_labels(view["Name"], None)
            deleted.append(view["Name"])
        return Reply.json({"NetworksDeleted": deleted or None})
