"""The v1 endpoints for the daemon itself, containers, images and events.

Each handler turns one HTTP request into one RuntimeService (or EventLog) call and its result
into JSON or a stream. Errors are not caught here: the server maps every CorralError to its
HTTP status. Streams validate their container before the first byte is sent, so a bad
reference is a clean 404 and not a broken stream.
"""
from __future__ import annotations

import contextlib
import json
import platform
import threading
from typing import Callable, Protocol

from agent import __version__
from agent.api import frames
from agent.api.bodies import (
    CreateQuery,
    EventsQuery,
    FiltersQuery,
    ImportRequest,
    KillQuery,
    ListQuery,
    LogsQuery,
    RemoveQuery,
    StopQuery,
    WaitQuery,
)
from agent.api.routes import JSON_LINES_TYPE, Request, Response, Router
from agent.errors import CorralError, NotFound
from agent.events import EventLog
from agent.log_time import parse_log_time, parse_tail
from agent.runtime import filters
from agent.runtime.logs import LogQuery
from agent.runtime.model import LIVE, ContainerSpec
from agent.runtime.service import RuntimeService
from agent.units import parse_signal

API_VERSION = "v1"


class HealthReader(Protocol):
    """What the endpoints read of the health checks (agent.health.monitor.HealthMonitor)."""

    def status(self, container_id: str) -> str | None: ...

    def describe(self, container_id: str) -> dict | None: ...
_READ_SIZE = 65536


class CoreEndpoints:
    """Handlers of the routes every daemon serves; `register` puts them on a Router."""

    def __init__(self, runtime: RuntimeService, events: EventLog, info: Callable[[], dict],
                 stopping: threading.Event, health: HealthReader | None = None) -> None:
        self._runtime = runtime
        self._health = health       # agent.health.monitor.HealthMonitor: ps's status, inspect's State.Health
        self._events = events
        self._info = info
        self._stopping = stopping   # set when the server stops, so followers end

    def register(self, router: Router) -> None:
        add = router.add
        add("GET", "/v1/version", self.version)
        add("GET", "/v1/info", self.info)
        add("GET", "/v1/containers", self.list_containers, query=ListQuery)
        add("POST", "/v1/containers", self.create_container, query=CreateQuery, body=ContainerSpec)
        add("GET", "/v1/containers/{ref}", self.inspect_container)
        add("DELETE", "/v1/containers/{ref}", self.remove_container, query=RemoveQuery)
        add("POST", "/v1/containers/{ref}/start", self.start_container)
        add("POST", "/v1/containers/{ref}/stop", self.stop_container, query=StopQuery)
        add("POST", "/v1/containers/{ref}/kill", self.kill_container, query=KillQuery)
        add("POST", "/v1/containers/{ref}/wait", self.wait_container, query=WaitQuery)
        add("GET", "/v1/containers/{ref}/logs", self.container_logs, query=LogsQuery)
        # POST /v1/containers/{ref}/exec: agent/api/exec_endpoints.py (interactive execs need Terminals)
        add("GET", "/v1/images", self.list_images, query=FiltersQuery)
        add("POST", "/v1/images/import", self.import_image, body=ImportRequest)
        add("DELETE", "/v1/images/{ref}", self.remove_image)
        add("GET", "/v1/events", self.list_events, query=EventsQuery)

    # The daemon

    def version(self, request: Request) -> Response:
        return Response.json({"version": __version__, "api_version": API_VERSION,
                              "python": platform.python_version(), "os": platform.system().lower(),
                              "arch": platform.machine(), "kernel": platform.release()})

    def info(self, request: Request) -> Response:
        return Response.json(self._info())

    # Containers

    def list_containers(self, request: Request) -> Response:
        wanted = filters.parse(request.args.filters, filters.CONTAINER_KEYS, "containers")
        # As in docker, a status filter looks at every container, not only the running ones.
        containers = self._runtime.list(all=request.args.all or "status" in wanted)
        health_of = self._health.status if self._health is not None else None
        listed = [container.to_dict() for container in filters.containers(containers, wanted, health_of)]
        for item in listed:
            item["health"] = health_of(item["id"]) if health_of is not None else None
        return Response.json(listed)

    def create_container(self, request: Request) -> Response:
        spec = request.decode(ContainerSpec)
        container = self._runtime.run(spec) if request.flag("start") else self._runtime.create(spec)
        return Response.json(container.to_dict(), status=201)

    def inspect_container(self, request: Request) -> Response:
        described = self._runtime.inspect(request.params["ref"])
        if self._health is not None:
            health = self._health.describe(described["Id"])
            if health is not None:
                described["State"]["Health"] = health
        return Response.json(described)

    def remove_container(self, request: Request) -> Response:
        self._runtime.remove(request.params["ref"], force=request.flag("force"), volumes=request.flag("volumes"))
        return Response.empty()

    def start_container(self, request: Request) -> Response:
        return Response.json(self._runtime.start(request.params["ref"]).to_dict())

    def stop_container(self, request: Request) -> Response:
        signal = request.args.signal
        number = None if signal is None else parse_signal(signal, field="query parameter signal")
        container = self._runtime.stop(request.params["ref"], timeout=request.args.timeout, signal=number)
        return Response.json(container.to_dict())

    def kill_container(self, request: Request) -> Response:
        number = parse_signal(request.args.signal, field="query parameter signal")
        return Response.json(self._runtime.kill(request.params["ref"], signal=number).to_dict())

    def wait_container(self, request: Request) -> Response:
        container = self._runtime.wait(request.params["ref"], condition=request.args.condition)
        if request.args.remove and container.state not in LIVE:
            with contextlib.suppress(NotFound):      # removed by someone else: what was asked
                self._runtime.remove(container.id, volumes=True)
        return Response.json({"exit_code": container.exit_code, "oom_killed": container.oom_killed})

    def container_logs(self, request: Request) -> Response:
        ref = request.params["ref"]
        args = request.args
        query = LogQuery(
            follow=args.follow, timestamps=args.timestamps, tail=parse_tail(args.tail),
            since=None if args.since is None else parse_log_time(args.since, field="query parameter since"),
            until=None if args.until is None else parse_log_time(args.until, field="query parameter until"),
            stdout=args.stdout, stderr=args.stderr)
        self._runtime.get(ref)  # a NotFound now, while an error response can still be sent
        return Response.chunks(self._runtime.logs(ref, query=query), frames.MEDIA_TYPE)

    # Images

    def list_images(self, request: Request) -> Response:
        wanted = filters.parse(request.args.filters, filters.IMAGE_KEYS, "images")
        return Response.json([image.to_dict() for image in filters.images(self._runtime.list_images(), wanted)])

    def import_image(self, request: Request) -> Response:
        body = request.decode(ImportRequest)
        image = self._runtime.import_image(body.path, body.reference)
        return Response.json(image.to_dict(), status=201)

    def remove_image(self, request: Request) -> Response:
        self._runtime.remove_image(request.params["ref"])
        return Response.empty()

    # Events

    def list_events(self, request: Request) -> Response:
        since = request.args.since
        wanted = filters.parse(request.args.filters, filters.EVENT_KEYS, "events")
        if request.args.follow:
            events = self._events.follow(since, stop=self._stopping)
        else:
            events = iter(self._events.since(since or 0.0))
        lines = (json.dumps(event.to_dict()).encode() + b"\n" for event in events
                 if filters.event_matches(event, wanted, self._labels_of))
        return Response.chunks(lines, JSON_LINES_TYPE)

    def _labels_of(self, ref: str) -> dict:
        """A container's labels, for events' label filter; {} once it is gone."""
        try:
            return dict(self._runtime.get(ref).spec.labels)
        except CorralError:
            return {}

