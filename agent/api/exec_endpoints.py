"""Running commands in containers: `POST /v1/containers/{ref}/exec` and the size of an
interactive one's terminal, `POST /v1/execs/{id}/resize?h=&w=`.

Without `stdin` or `tty` the answer is a chunked stream of Docker frames of the output, then
one stream-3 frame with the exit code. With either, the connection is taken over as Docker's
attach is (`101 UPGRADED` when the client asked to upgrade, else `200` until it closes): the
client's bytes go to the command's stdin (its half-close is the end of it), the output comes
back as the same frames (a terminal's bytes all on stream 1), the exit-code frame last. The
`Corral-Exec-Id` header names the exec for resizing.
"""
from __future__ import annotations

import errno
import os
import selectors
from collections.abc import Iterator

from agent.api import frames
from agent.api.attach_endpoints import ResizeQuery
from agent.api.bodies import ExecRequest
from agent.api.routes import Request, Response, Router
from agent.runtime.service import ExecProcess
from agent.runtime.terminals import Terminals

EXEC_ID_HEADER = "Corral-Exec-Id"
_READ_SIZE = 65536


class ExecEndpoints:
    def __init__(self, terminals: Terminals) -> None:
        self._terminals = terminals

    def register(self, router: Router) -> None:
        router.add("POST", "/v1/containers/{ref}/exec", self.exec_in_container, body=ExecRequest)
        router.add("POST", "/v1/execs/{id}/resize", self.resize, query=ResizeQuery)

    def exec_in_container(self, request: Request) -> Response:
        body = request.decode(ExecRequest)
        size = tuple(body.console_size) if body.console_size else None
        session = self._terminals.exec(request.params["ref"], body.command, env=body.env, workdir=body.workdir,
                                       tty=body.tty, stdin=body.stdin, console_size=size)  # type: ignore[arg-type]
        if not (body.tty or body.stdin):
            return Response.chunks(exec_frames(session.process), frames.MEDIA_TYPE)

        def relay(conn, read) -> None:
            session.serve(conn, read, raw=False, exit_frame=True)

        return Response.hijack(relay, frames.MEDIA_TYPE, headers={EXEC_ID_HEADER: session.id})

    def resize(self, request: Request) -> Response:
        self._terminals.resize_exec(request.params["id"], rows=request.args.h, cols=request.args.w)
        return Response.empty()


def exec_frames(process: ExecProcess) -> Iterator[bytes]:
    """The process's stdout and stderr as frames while they come, then its exit code.

    The pipes are closed when the client goes away, so a command still writing gets EPIPE
    instead of blocking on a full pipe forever.
    """
    selector = selectors.DefaultSelector()
    try:
        for stream, pipe in ((frames.STDOUT, process.stdout), (frames.STDERR, process.stderr)):
            if pipe is not None:
                selector.register(pipe, selectors.EVENT_READ, stream)
        while selector.get_map():
            for key, _ in selector.select():
                try:
                    data = os.read(key.fd, _READ_SIZE)
                except OSError as exc:
                    if exc.errno != errno.EIO:     # a terminal's EIO: nothing has it open any more
                        raise
                    data = b""
                if data:
                    yield frames.encode(key.data, data)
                else:
                    selector.unregister(key.fileobj)
        yield frames.encode_exit(process.wait())
    finally:
        selector.close()
        for pipe in (process.stdout, process.stderr, process.stdin):
            if pipe is not None:
                pipe.close()
