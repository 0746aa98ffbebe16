"""The container verbs: create, list, inspect, start, stop, kill, restart, wait, rm, prune.

Each handler is one call into Corral's runtime. Where Docker answers differently from
Corral's API it is translated here: a start of a started container and a stop of a stopped one
are 304; a missing image on create is "No such image" (the CLI then pulls); `wait` sends its
headers at once and its body at the event, for every `condition`.
"""
from __future__ import annotations

import contextlib
import json
import time
from typing import Iterator

from agent.dockerapi import filters
from agent.dockerapi.app import Parts
from agent.dockerapi.create import spec_of
from agent.dockerapi.errors import NotModified, no_such_container, no_such_image
from agent.dockerapi.links import links_as_hosts
from agent.dockerapi.router import Reply, Request, Router
from agent.dockerapi.views import container_inspect, container_summary
from agent.errors import Conflict, CorralError, InvalidArgument, LaunchError, NotFound
from agent.runtime.filters import CONTAINER_KEYS
from agent.runtime.filters import containers as container_filters
from agent.runtime.model import CREATED, EXITED, PAUSED, RUNNING, Container
from agent.units import parse_signal

_WAIT_CONDITIONS = ("not-running", "next-exit", "removed")


class ContainerRoutes:
    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self.runtime = parts.runtime

    def register(self, router: Router) -> None:
        router.add("GET", "/containers/json", self.list)
        router.add("POST", "/containers/create", self.create)
        router.add("POST", "/containers/prune", self.prune)
        router.add("GET", "/containers/{id}/json", self.inspect)
        router.add("POST", "/containers/{id}/start", self.start)
        router.add("POST", "/containers/{id}/stop", self.stop)
        router.add("POST", "/containers/{id}/kill", self.kill)
        router.add("POST", "/containers/{id}/wait", self.wait)
        router.add("DELETE", "/containers/{id}", self.remove)

    def get(self, ref: str) -> Container:
        return no_such_container(ref, lambda: self.runtime.get(ref))

    # Create, list, inspect

    def create(self, request: Request) -> Reply:
        body = request.json()
        name = request.text("name")
        host = body.get("HostConfig") if isinstance(body, dict) else None
        if isinstance(host, dict) and host.get("Links"):
            linked = links_as_hosts(host.pop("Links"), host.get("NetworkMode"), self.get)
            host["ExtraHosts"] = [*(host.get("ExtraHosts") or []), *linked]
        spec = spec_of(body, name)
        if request.text("platform") not in ("", "linux", f"linux/{_arch()}"):
            raise InvalidArgument(f"platform {request.text('platform')!r}: Corral runs linux/{_arch()} only")
        no_such_image(spec.image, lambda: self.parts.images.get(spec.image))
        try:
            container = self.runtime.create(spec)
        except Conflict as exc:
            if name and "name" in exc.message:
                raise Conflict(f'Conflict. The container name "/{name.lstrip("/")}" is already in use. '
                               f"You have to remove (or rename) that container to be able to reuse that name.") from None
            raise
        return Reply.json({"Id": container.id, "Warnings": []}, status=201)

    def list(self, request: Request) -> Reply:
        wanted = filters.parse(request.text("filters"), CONTAINER_KEYS, "containers")
        show_all = request.flag("all") or "status" in wanted or "exited" in wanted
        containers = sorted(self.runtime.list(all=True), key=lambda c: c.created_at, reverse=True)
        health = self.parts.health
        containers = container_filters(containers, wanted, health.status if health is not None else None)
        if not show_all:
            containers = [c for c in containers if c.state in (RUNNING, PAUSED)]
        limit = request.integer("limit", -1) or -1
        if limit > 0:
            containers = containers[:limit]
        return Reply.json([container_summary(c, self.parts) for c in containers])

    def inspect(self, request: Request) -> Reply:
        return Reply.json(container_inspect(self.get(request.params["id"]), self.parts))

    # Life cycle

    def start(self, request: Request) -> Reply:
        container = self.get(request.params["id"])
        if container.state in (RUNNING, PAUSED):
            raise NotModified("container already started")
        try:
            self.runtime.start(container.id)      # an exited container starts again, as docker's does
        except CorralError as exc:
            if container.spec.auto_remove:
                # As dockerd: a --rm container whose start failed is removed, and `docker run
                # --rm` waits for that removal before it reports the error.
                with contextlib.suppress(CorralError):
                    self.runtime.remove(container.id, force=True, volumes=True)
            if isinstance(exc, LaunchError):
                raise LaunchError(runc_words(exc.message), hint=exc.hint) from None
            raise
        return Reply.empty()

    def stop(self, request: Request) -> Reply:
        container = self.get(request.params["id"])
        if container.state not in (RUNNING, PAUSED):
            raise NotModified("container already stopped")
        timeout = request.integer("t", None)
        if timeout is None:
            timeout = request.integer("timeout", None)
        signal = request.text("signal")
        self.runtime.stop(container.id, timeout=float(timeout) if timeout is not None and timeout >= 0 else None,
                          signal=parse_signal(signal, field="query parameter signal") if signal else None)
        return Reply.empty()

    def kill(self, request: Request) -> Reply:
        container = self.get(request.params["id"])
        number = parse_signal(request.text("signal", "SIGKILL"), field="query parameter signal")
        if container.state not in (RUNNING, PAUSED):
            raise Conflict(f"Cannot kill container: {request.params['id']}: container {container.id} is not running")
        self.runtime.kill(container.id, signal=number)
        return Reply.empty()

    def wait(self, request: Request) -> Reply:
        condition = request.text("condition") or "not-running"
        if condition not in _WAIT_CONDITIONS:
            raise InvalidArgument(f"invalid condition: {condition!r} (expected one of {', '.join(_WAIT_CONDITIONS)})")
        container = self.get(request.params["id"])
        return Reply.chunks(self._waited(container, condition))

    def _waited(self, container: Container, condition: str) -> Iterator[bytes]:
        """The exit code when the condition is met; the headers are sent before the first chunk.
        The exit code is also taken from the `die` event, since a `--rm` container may be gone
        before a poll sees it exited."""
        yield b""
        runtime = self.runtime
        stopping = self.parts.stopping
        died: list[dict] = []

        def on_event(event) -> None:
            if event.type == "container" and event.action == "die" and event.id == container.id:
                died.append(dict(event.attributes))
        unsubscribe = self.parts.events.subscribe(on_event)
        try:
            if condition == "next-exit" and container.state == EXITED:
                while not stopping.is_set() and not died:      # the next exit needs a start first
                    try:
                        if runtime.get(container.id).state == RUNNING:
                            break
                    except NotFound:
                        break
                    time.sleep(0.1)
            last = container
            while not stopping.is_set():
                try:
                    last = runtime.wait(container.id, timeout=0.5)
                except NotFound:
                    break                                  # removed
                ended = last.state not in (RUNNING, CREATED, PAUSED) or \
                    (condition == "not-running" and last.state == CREATED)
                if ended and condition != "removed":
                    break
                if ended:
                    time.sleep(0.1)                        # exited; removal comes next
        finally:
            unsubscribe()
        code = last.exit_code
        if died and "exitCode" in died[-1]:
            code = int(died[-1]["exitCode"])
        result: dict = {"StatusCode": code if code is not None else 0}
        if last.error:
            result["Error"] = {"Message": last.error}
        yield json.dumps(result).encode() + b"\n"

    def remove(self, request: Request) -> Reply:
        container = self.get(request.params["id"])
        if request.flag("link"):
            raise InvalidArgument("link: Corral has no container links to remove")
        if container.state in (RUNNING, PAUSED) and not request.flag("force"):
            raise Conflict(f"You cannot remove a running container {container.id}. "
                           "Stop the container before attempting removal or force remove")
        # v: its anonymous volumes go too (named ones stay, as with docker).
        self.runtime.remove(container.id, force=request.flag("force"), volumes=request.flag("v"))
        return Reply.empty()

    def prune(self, request: Request) -> Reply:
        wanted = filters.parse(request.text("filters"), ("label", "until"), "container prune")
        deleted = []
        for container in self.runtime.list(all=True):
            if container.state not in (EXITED, CREATED):
                continue
            if not filters.labels_match(wanted.get("label", []), container.spec.labels):
                continue
            until = wanted.get("until")
            if until and container.created_at >= _seconds(until[-1]):
                continue
            try:
                self.runtime.remove(container.id)
            except NotFound:
                continue
            deleted.append(container.id)
        return Reply.json({"ContainersDeleted": deleted or None, "SpaceReclaimed": 0})


def _seconds(text: str) -> float:
    from agent.dockerapi.system import _timestamp
    value = _timestamp(text, "filters.until")
    return value if value is not None else time.time()


def _arch() -> str:
    from agent.dockerapi.system import _go_arch
    return _go_arch()


# strerror's words as runc writes them (Go's lower case): the docker CLI picks `run`'s exit
# code from them, 127 for a command not found and 126 for one it may not run.
_RUNC_WORDS = {"No such file or directory": "no such file or directory", "Permission denied": "permission denied",
               "Is a directory": "is a directory"}


def runc_words(message: str) -> str:
    for words, runc in _RUNC_WORDS.items():
        message = message.replace(words, runc)
    return message
