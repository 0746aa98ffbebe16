"""Attach (the 101 hijack) and resize, over Corral's own terminal seam.

`POST /containers/{id}/attach` hands the taken-over connection to the same relay the v1 API's
attach uses (agent/runtime/attach_session.py, through agent/runtime/terminals.py): the
container's output as Docker's multiplexed frames, or raw bytes when it has a terminal; the
client's bytes to its stdin, its half-close as the end of that input when the container was
created with StdinOnce (`docker run -i`); `detachKeys` (ctrl-p,ctrl-q unless given) with a
terminal. The docker CLI attaches before it starts a container: the relay holds the client
until the container runs, and the log is opened at once, so a `--rm` container that is gone
before the relay looks still has its output sent.
"""
from __future__ import annotations

from typing import IO, Any

from agent.dockerapi.app import Parts
from agent.dockerapi.errors import no_such_container
from agent.dockerapi.router import Reply, Request, Router
from agent.dockerapi.streams import MULTIPLEXED, RAW
from agent.errors import InvalidArgument
from agent.runtime.attach import DEFAULT_DETACH_KEYS, parse_detach_keys
from agent.runtime.attach_session import AttachOptions

MAX_SIDE = 65535           # a terminal's rows and columns are 16-bit


class AttachRoutes:
    def __init__(self, parts: Parts) -> None:
        self.parts = parts

    def register(self, router: Router) -> None:
        router.add("POST", "/containers/{id}/attach", self.attach)
        router.add("POST", "/containers/{id}/resize", self.resize)

    def attach(self, request: Request) -> Reply:
        ref = request.params["id"]
        no_such_container(ref, lambda: self.parts.runtime.get(ref))      # docker's 404 wording first
        options = AttachOptions(stream=request.flag("stream"), stdin=request.flag("stdin"),
                                stdout=request.flag("stdout"), stderr=request.flag("stderr"),
                                logs=request.flag("logs"),
                                detach_keys=parse_detach_keys(request.text("detachKeys") or DEFAULT_DETACH_KEYS))
        attachment = self.parts.terminals.attach(ref, options)

        def hijacked(connection: Any, rfile: IO[bytes], wfile: IO[bytes]) -> None:
            wfile.flush()
            attachment.serve(connection, rfile.read1)           # type: ignore[attr-defined]

        return Reply(content_type=RAW if attachment.tty else MULTIPLEXED, hijack=hijacked)

    def resize(self, request: Request) -> Reply:
        ref = request.params["id"]
        no_such_container(ref, lambda: self.parts.runtime.get(ref))
        rows, cols = terminal_size(request)
        self.parts.terminals.resize(ref, rows=rows, cols=cols)
        return Reply.empty(200)


def terminal_size(request: Request) -> tuple[int, int]:
    """`h` and `w` of a resize: rows and columns."""
    sides = []
    for name in ("h", "w"):
        value = request.integer(name)
        if value is None or not 0 <= value <= MAX_SIDE:
            raise InvalidArgument(f"query parameter {name}: expected a number of {'rows' if name == 'h' else 'columns'} "
                                  f"from 0 to {MAX_SIDE}, got {request.text(name)!r}", field=name)
        sides.append(value)
    return sides[0], sides[1]


def console_size(value: Any, name: str) -> tuple[int, int] | None:
    """Docker's ConsoleSize [rows, columns]; None for [0, 0] or nothing."""
    if value is None or value == [] or value == [0, 0]:
        return None
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(side, int) and not isinstance(side, bool) and 0 <= side <= MAX_SIDE
                       for side in value)):
        raise InvalidArgument(f"{name}: expected [rows, columns], got {value!r}", field=name)
    if 0 in value:
        return None
    return value[0], value[1]
