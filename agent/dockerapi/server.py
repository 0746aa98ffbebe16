"""The compat API's socket: HTTP/1.1 on AF_UNIX, one thread per connection, like dockerd.

What differs from Corral's own server (agent/api/server.py, whose limits and socket handling
this reuses): routes answer bare and under `/v1.NN/`; every answer carries Docker's headers
(`Api-Version`, `Docker-Experimental`, `Ostype`, `Server`); request bodies may be chunked (image
import, archives); errors are `{"message"}`; and a handler may take the connection over after
`101 UPGRADED` (attach, exec start), as Docker's hijack does.
"""
from __future__ import annotations

import logging
import os
import socketserver
import threading
from pathlib import Path
from typing import Any

from agent import __version__
from agent.api import http_limits
from agent.api.http_limits import LimitedHandler
from agent.api.server import MAX_SOCKET_PATH, SOCKET_MODE, _clear_stale_socket
from agent.dockerapi import errors, version
from agent.dockerapi.router import Reply, Router
from agent.errors import CorralError, InvalidArgument, MethodNotAllowed, TooLarge

MAX_JSON_BODY = 4 * 1024 * 1024    # a create body with a seccomp profile in SecurityOpt fits
_log = logging.getLogger(__name__)


def docker_headers() -> dict[str, str]:
    """What dockerd puts on every answer; clients read the version and OS from /_ping's."""
    return {"Api-Version": version.API_VERSION, "Docker-Experimental": "false", "Ostype": "linux",
            "Server": f"Docker/{__version__}-corral (linux)"}


class _Handler(LimitedHandler):
    server_version = f"Docker/{__version__}-corral"

    def do_GET(self) -> None:
        self.server.docker_server.serve(self)   # type: ignore[attr-defined]

    do_POST = do_DELETE = do_PUT = do_HEAD = do_OPTIONS = do_GET


class _UnixServer(http_limits.LimitedServerMixIn, socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: Path, docker_server: DockerApiServer, request_timeout: float) -> None:
        self.docker_server = docker_server
        self.request_timeout = request_timeout
        super().__init__(str(path), _Handler, bind_and_activate=False)

    def handle_error(self, request, client_address) -> None:
        _log.exception("Docker API connection failed")


class ChunkedReader:
    """A chunked request body read as a plain stream (`read(n)`, b"" at its end)."""

    def __init__(self, rfile: Any) -> None:
        self._rfile = rfile
        self._left = 0
        self._done = False

    def read(self, size: int = -1) -> bytes:
        if self._done:
            return b""
        if self._left == 0:
            line = self._rfile.readline(1024)
            try:
                self._left = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise InvalidArgument(f"bad chunk size line {line[:40]!r} in the request body") from None
            if self._left == 0:
                while self._rfile.readline(1024).strip():
                    pass                                 # trailers up to the blank line
                self._done = True
                return b""
        want = self._left if size < 0 else min(size, self._left)
        data = self._rfile.read(want)
        if not data:
            raise InvalidArgument("the request body ended inside a chunk")
        self._left -= len(data)
        if self._left == 0:
            self._rfile.readline(16)                     # the CRLF after the chunk
        return data


class _LengthReader:
    def __init__(self, rfile: Any, length: int) -> None:
        self._rfile = rfile
        self._left = length

    def read(self, size: int = -1) -> bytes:
        want = self._left if size < 0 else min(size, self._left)
        if want <= 0:
            return b""
        data = self._rfile.read(want)
        self._left -= len(data)
        return data


class DockerApiServer:
    """Serves `router` on `socket_path`; `start()` and `stop()` like Corral's ApiServer."""

    def __init__(self, socket_path: Path, router: Router, *,
                 request_timeout: float = http_limits.REQUEST_TIMEOUT) -> None:
        self.socket_path = Path(socket_path)
        self.router = router
        self._request_timeout = request_timeout
        self._server: _UnixServer | None = None
        self._thread: threading.Thread | None = None
        self._inode: int | None = None

    def start(self) -> None:
        path = self.socket_path
        if len(os.fsencode(str(path))) > MAX_SOCKET_PATH:
            raise InvalidArgument(f"--docker-socket {str(path)!r} is longer than {MAX_SOCKET_PATH} bytes")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CorralError(f"cannot create the directory of --docker-socket {path.parent}: {exc.strerror}") from None
        _clear_stale_socket(path)
        server = _UnixServer(path, self, self._request_timeout)
        try:
            server.server_bind()
            os.chmod(path, SOCKET_MODE)
            self._inode = os.stat(path).st_ino
            server.server_activate()
        except OSError as exc:
            server.server_close()
            raise CorralError(f"cannot listen on --docker-socket {path}: {exc.strerror or exc}") from None
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="corral-docker-api", daemon=True)
        self._thread.start()
        _log.info("Docker Engine API listening on unix://%s", path)

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        try:
            if os.stat(self.socket_path).st_ino == self._inode:
                self.socket_path.unlink()
        except FileNotFoundError:
            pass

    # One request

    def serve(self, handler: LimitedHandler) -> None:
        head = handler.command == "HEAD"
        asked, target = version.split_path(handler.path)
        try:
            http_limits.check_request(handler)
            version.check(asked)
            route, request = self._resolve(handler.command, target)
            request.version = asked
            request.headers = handler.headers
            if route.raw_body:
                request.body_stream = _body_stream(handler)
                handler.request_read()           # an image import may take its time
            else:
                request.body = _read_body(handler)
                handler.request_read()
            reply = route.handler(request)
        except CorralError as exc:
            reply = Reply.json(errors.body_of(exc), status=exc.http_status)
            if isinstance(exc, MethodNotAllowed):
                reply.headers["Allow"] = ", ".join(exc.allowed)
            if exc.http_status in (413, 414, 431):
                handler.close_connection = True
        except Exception as exc:  # noqa: BLE001 - the client must get an answer; the log keeps the traceback
            _log.exception("Docker API %s %s failed", handler.command, handler.path)
            reply = Reply.json({"message": f"internal error: {exc}"}, status=500)
        handler.request_read()
        self._send(handler, reply, head=head)

    def _resolve(self, method: str, target: str):
        if method == "HEAD":
            try:
                return self.router.resolve("HEAD", target)
            except MethodNotAllowed:
                return self.router.resolve("GET", target)
        return self.router.resolve(method, target)

    def _send(self, handler: LimitedHandler, reply: Reply, *, head: bool) -> None:
        if reply.hijack is not None:
            self._hijack(handler, reply)
            return
        status = reply.status
        handler.send_response(status)
        for name, value in {**docker_headers(), **reply.headers}.items():
            handler.send_header(name, value)
        if status == 304:
            handler.end_headers()
            return
        handler.send_header("Content-Type", reply.content_type)
        if reply.stream is None:
            body = reply.body or b""
            if status != 204:
                handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            if body and not head:
                _write(handler, body)
            return
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()          # at once: `wait` clients need the headers before the exit
        stream = reply.stream
        try:
            if head:
                return
            for chunk in stream:
                if chunk:
                    handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            handler.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True
        except Exception:  # noqa: BLE001 - the status line is gone: all that is left is cutting the stream
            _log.exception("Docker API stream %s %s failed", handler.command, handler.path)
            handler.close_connection = True
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()

    @staticmethod
    def _hijack(handler: LimitedHandler, reply: Reply) -> None:
        """101 UPGRADED when the client asked to upgrade (the CLI, docker-py), else 200 with
        the raw stream after the headers, as dockerd answers old clients."""
        upgrade = handler.headers.get("Upgrade", "").lower() == "tcp"
        if upgrade:
            handler.send_response_only(101, "UPGRADED")
            handler.send_header("Connection", "Upgrade")
            handler.send_header("Upgrade", "tcp")
        else:
            handler.send_response_only(200)
        handler.send_header("Content-Type", reply.content_type)
        for name, value in {**docker_headers(), **reply.headers}.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.close_connection = True
        assert reply.hijack is not None
        try:
            reply.hijack(handler.connection, handler.rfile, handler.wfile)
        except (BrokenPipeError, ConnectionResetError):
            pass


def _write(handler: LimitedHandler, data: bytes) -> None:
    try:
        handler.wfile.write(data)
    except (BrokenPipeError, ConnectionResetError):
        handler.close_connection = True


def _body_stream(handler: LimitedHandler):
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        handler.close_connection = True        # a body the handler may leave half-read
        return ChunkedReader(handler.rfile)
    text = handler.headers.get("Content-Length") or "0"
    if not text.isdigit():
        raise InvalidArgument(f"Content-Length {text!r} is not a number")
    return _LengthReader(handler.rfile, int(text))


def _read_body(handler: LimitedHandler) -> bytes:
    reader = _body_stream(handler)
    body = reader.read(MAX_JSON_BODY + 1)
    while len(body) <= MAX_JSON_BODY and (more := reader.read(MAX_JSON_BODY + 1 - len(body))):
        body += more
    if len(body) > MAX_JSON_BODY:
        handler.close_connection = True
        raise TooLarge(f"request body larger than {MAX_JSON_BODY} bytes")
    return body
