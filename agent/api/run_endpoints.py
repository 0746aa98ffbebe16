"""`POST /v1/containers/run`: the foreground `corral run` in one request.

The body is the container's spec, as `POST /v1/containers`'s. The daemon creates and starts the
container before it answers, so a bad spec, a missing image or a failed start is an error
answer like create's (a container whose start failed is removed, as `?start=1` does). Then the
answer is a chunked stream of Docker frames of the container's output, from its first byte, and
one last stream-3 frame: the exit code in ASCII digits, as an exec's stream ends, or, when the
daemon failed after the head was sent, the error as a JSON object (agent/api/frames.py). With
`remove`, the container and its anonymous volumes are removed before that frame, so a client
that has read it finds the container gone. The `Corral-Container-Id` header names the
container, for the signals the client passes on (`POST /v1/containers/{ref}/kill`).

`remove` makes the container a --rm one (`auto_remove`, as docker's foreground `run --rm` sets
AutoRemove), held (Runtime.run's `hold`) until its log is read here: removed at its exit
whether or not the client still reads, and its record says so from its first save, so a daemon
killed after the exit finishes the removal at restart (agent/runtime/reconcile.py) and neither
its start, its exit nor its removal is saved on the way.

This is `create?start=1` + `logs?follow=1` + `wait?remove=1` of the same container without
their three round trips. A client that goes away early leaves the container as if it had
stopped following the log: running (removed at its exit with `remove`).
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import msgspec

from agent.api import frames
from agent.api.routes import Request, Response, Router
from agent.errors import CorralError, NotFound
from agent.runtime.logs import LogQuery
from agent.runtime.model import Container, ContainerSpec
from agent.runtime.service import RuntimeService
from agent.schema import Object

CONTAINER_ID_HEADER = "Corral-Container-Id"


class RunQuery(Object, frozen=True):
    # Once it has exited, remove it with its anonymous volumes (`rm -v`) before the status
    # frame: the foreground `run --rm`.
    remove: bool = False


class RunEndpoints:
    def __init__(self, runtime: RuntimeService) -> None:
        self._runtime = runtime

    def register(self, router: Router) -> None:
        router.add("POST", "/v1/containers/run", self.run_container, query=RunQuery, body=ContainerSpec)

    def run_container(self, request: Request) -> Response:
        spec = request.decode(ContainerSpec)
        remove = request.args.remove
        if remove and not spec.auto_remove:
            spec = msgspec.structs.replace(spec, auto_remove=True)    # checked again: not with --restart
        # Held: removed at its exit only once its log is read here (or the client went away).
        container = self._runtime.run(spec, hold=remove)
        return Response(status=200, content_type=frames.MEDIA_TYPE,
                        stream=run_frames(self._runtime, container, remove=remove),
                        headers={CONTAINER_ID_HEADER: container.id})


def run_frames(runtime: RuntimeService, container: Container, *, remove: bool) -> Iterator[bytes]:
    """The container's output as frames until it exits, then its status frame. An error after
    the head is the last frame, since the status line has gone out already. `container` is the
    runtime's record (what `run` returned), which keeps its exit once the container is gone."""
    container_id = container.id
    try:
        yield from runtime.logs(container_id, query=LogQuery(follow=True))
        try:
            container = runtime.wait(container_id)
        except NotFound:
            if not remove:
                raise
            # Removed by someone else's rm: `container` holds the exit it was removed with.
        if remove:
            with contextlib.suppress(NotFound):      # removed meanwhile: what was asked
                runtime.remove(container_id, volumes=True)
        if container.exit_code is None:
            raise CorralError(f"container {container_id[:12]} ended without an exit code",
                              hint="its log and the daemon's may say why")
        status = frames.encode_exit(container.exit_code)
    except CorralError as exc:
        status = frames.encode_error(exc.to_dict())
    except Exception as exc:  # noqa: BLE001 - a bug must still end the stream with a message
        logging.getLogger(__name__).exception("run of container %s failed after its start", container_id)
        status = frames.encode_error(CorralError(f"internal error: {type(exc).__name__}: {exc}",
                                                 hint="the daemon's log may say more").to_dict())
    finally:
        if remove:      # also when the client went away early: removed at its exit, as --rm says
            try:
                runtime.release(container_id)
            except Exception:  # noqa: BLE001 - the status frame (or the closing) goes on; the log keeps it
                logging.getLogger(__name__).exception("removing container %s after its run failed", container_id)
    yield status
