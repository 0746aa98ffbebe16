"""Attaching to containers and sizing their terminals, shaped like Docker's routes:

- `POST /v1/containers/{ref}/attach?stream=&stdin=&stdout=&stderr=&logs=&detachKeys=` answers
  `101 UPGRADED` (`Connection: Upgrade`, `Upgrade: tcp`) when asked to upgrade, else `200`,
  then the connection carries the container's output (Docker's multiplexed frames, or raw bytes
  for a container with a terminal) one way and the client's stdin the other; the client's
  half-close is the end of its input.
- `POST /v1/containers/{ref}/resize?h=&w=` sets the terminal's size.

The relay itself is agent/runtime/attach_session.py; this module only maps HTTP onto it.
"""
from __future__ import annotations

from typing import Annotated

import msgspec

from agent.api.routes import Request, Response, Router
from agent.runtime.attach import DEFAULT_DETACH_KEYS, parse_detach_keys
from agent.runtime.attach_session import AttachOptions
from agent.runtime.terminals import Terminals
from agent.schema import Object

# Docker's media types (API 1.42): a terminal's bytes as they are, or 8-byte-header frames.
RAW_STREAM = "application/vnd.docker.raw-stream"
MULTIPLEXED_STREAM = "application/vnd.docker.multiplexed-stream"

DetachKeys = Annotated[str, msgspec.Meta(
    max_length=64, pattern=r"^[^\x00]*$",
    description="keys that detach, like ctrl-p,ctrl-q (the default) or a,ctrl-b; empty: none")]
TerminalSide = Annotated[int, msgspec.Meta(ge=1, le=65535)]


class AttachQuery(Object, frozen=True):
    stream: bool = False       # follow the live output (and pass stdin), as Docker's
    stdin: bool = False
    stdout: bool = False
    stderr: bool = False
    logs: bool = False         # first what the log holds from the start
    detachKeys: DetachKeys = DEFAULT_DETACH_KEYS   # Docker's name


class ResizeQuery(Object, frozen=True):
    h: TerminalSide            # rows
    w: TerminalSide            # columns


class AttachEndpoints:
    def __init__(self, terminals: Terminals) -> None:
        self._terminals = terminals

    def register(self, router: Router) -> None:
        router.add("POST", "/v1/containers/{ref}/attach", self.attach, query=AttachQuery)
        router.add("POST", "/v1/containers/{ref}/resize", self.resize, query=ResizeQuery)

    def attach(self, request: Request) -> Response:
        query: AttachQuery = request.args
        options = AttachOptions(stream=query.stream, stdin=query.stdin, stdout=query.stdout,
                                stderr=query.stderr, logs=query.logs,
                                detach_keys=parse_detach_keys(query.detachKeys))
        attachment = self._terminals.attach(request.params["ref"], options)

        def relay(conn, read) -> None:
            attachment.serve(conn, read)

        return Response.hijack(relay, RAW_STREAM if attachment.tty else MULTIPLEXED_STREAM)

    def resize(self, request: Request) -> Response:
        self._terminals.resize(request.params["ref"], rows=request.args.h, cols=request.args.w)
        return Response.empty()
