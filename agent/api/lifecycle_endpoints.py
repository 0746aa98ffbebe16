"""Life-cycle routes: pause, unpause, rename, restart, update, top, the prunes and `system df`.

Paths and answers follow docker's Engine API (`/containers/{id}/top` gives Titles and Processes,
the prunes give `ContainersDeleted`, `SpaceReclaimed`...), under /v1 like every route here.
Filters are docker's: a JSON object of lists, `filters={"label":["tier=web"],"until":["10m"]}`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import msgspec

from agent.api.bodies import Seconds, SignalName
from agent.api.routes import Request, Response, Router
from agent.errors import NotFound
from agent.runtime.lifecycle import changes_of
from agent.runtime.model import ContainerName, Cpus, Memory, PidsLimit, RestartPolicy
from agent.schema import Object
from agent.units import parse_signal

PRUNE_KEYS = ("until", "label", "label!")

if TYPE_CHECKING:
    from agent.runtime.lifecycle import Lifecycle
    from agent.runtime.prune import Pruning

Filters = Annotated[str, msgspec.Meta(max_length=4096, pattern=r"^[^\x00]*$",
                                      description='docker\'s filters: JSON like {"label":["a=b"],"until":["10m"]}')]
PsArgs = Annotated[str, msgspec.Meta(max_length=256, pattern=r"^[A-Za-z0-9 ,=+:_%-]*$",
                                     description="arguments of ps, like -ef or -o pid,comm (default -ef)")]


class UpdateRequest(Object, frozen=True):
    """`POST /v1/containers/{ref}/update`: what to change; a missing field stays as it is."""

    memory: Memory | None = None
    cpus: Cpus | None = None
    pids_limit: PidsLimit | None = None
    restart_policy: RestartPolicy | None = None


class RenameQuery(Object, frozen=True):
    name: ContainerName


class RestartQuery(Object, frozen=True):
    timeout: Seconds | None = None     # default: the container's --stop-timeout, else 10
    signal: SignalName | None = None   # default: the container's --stop-signal, else TERM


class TopQuery(Object, frozen=True):
    ps_args: PsArgs = ""


class ContainerPruneQuery(Object, frozen=True):
    filters: Filters = ""


def parse_filters(text: str) -> dict[str, list[str]]:
    """docker's filters parameter, as every listing reads it (agent/runtime/filters.py)."""
    from agent.runtime import filters
    return filters.parse(text, PRUNE_KEYS, "prune")


class LifecycleEndpoints:
    def __init__(self, lifecycle: Lifecycle | None, pruning: Pruning | None) -> None:
        self._lifecycle = lifecycle
        self._pruning = pruning

    def register(self, router: Router) -> None:
        add = router.add
        add("POST", "/v1/containers/{ref}/pause", self.pause)
        add("POST", "/v1/containers/{ref}/unpause", self.unpause)
        add("POST", "/v1/containers/{ref}/rename", self.rename, query=RenameQuery)
        add("POST", "/v1/containers/{ref}/restart", self.restart, query=RestartQuery)
        add("POST", "/v1/containers/{ref}/update", self.update, body=UpdateRequest)
        add("GET", "/v1/containers/{ref}/top", self.top, query=TopQuery)
        add("POST", "/v1/containers/prune", self.prune_containers, query=ContainerPruneQuery)
        add("POST", "/v1/networks/prune", self.prune_networks, query=ContainerPruneQuery)
        add("GET", "/v1/system/df", self.disk_usage)

    def _verbs(self) -> Lifecycle:
        if self._lifecycle is None:
            raise NotFound("life-cycle verbs are not served by this daemon")
        return self._lifecycle

    def _prunes(self) -> Pruning:
        if self._pruning is None:
            raise NotFound("prunes are not served by this daemon")
        return self._pruning

    def pause(self, request: Request) -> Response:
        return Response.json(self._verbs().pause(request.params["ref"]).to_dict())

    def unpause(self, request: Request) -> Response:
        return Response.json(self._verbs().unpause(request.params["ref"]).to_dict())

    def rename(self, request: Request) -> Response:
        return Response.json(self._verbs().rename(request.params["ref"], request.args.name).to_dict())

    def restart(self, request: Request) -> Response:
        signal = request.args.signal
        number = None if signal is None else parse_signal(signal, field="query parameter signal")
        return Response.json(self._verbs().restart(request.params["ref"], timeout=request.args.timeout,
                                                   signal=number).to_dict())

    def update(self, request: Request) -> Response:
        changes = changes_of(request.decode(UpdateRequest))
        return Response.json(self._verbs().update(request.params["ref"], changes).to_dict())

    def top(self, request: Request) -> Response:
        return Response.json(self._verbs().top(request.params["ref"], request.args.ps_args))

    def prune_containers(self, request: Request) -> Response:
        return Response.json(self._prunes().prune_containers(parse_filters(request.args.filters)))

    def prune_networks(self, request: Request) -> Response:
        return Response.json(self._prunes().prune_networks(parse_filters(request.args.filters)))

    def disk_usage(self, request: Request) -> Response:
        return Response.json(self._prunes().disk_usage())
