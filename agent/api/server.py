"""The daemon's REST API: HTTP/1.1 on a UNIX socket, one thread per connection.

`ApiServer` owns the socket (mode 0660, so root and the socket's group may talk to the daemon),
dispatches through a Router and maps errors: a CorralError becomes its `http_status` with the
JSON body `{"error", "message", "hint", "field"}`; anything else is a 500 whose message is logged
with its traceback. Streams (logs, exec, events) use chunked transfer-encoding.

Why the stdlib server and not a library one: handlers are plain blocking calls into the runtime
(an ASGI server would need them all async or in thread pools), the Docker API (issue 16) must
hijack the connection after a 101 (here `handler.connection` is the raw socket), and what load
asks for is small and lives in agent/api/http_limits.py: a deep listen backlog, a cap on
connections, a deadline for reading each request, size limits answered 413/414/431, HEAD and
OPTIONS, 405 with Allow, and JSON error bodies even for errors the stdlib parser raises.
"""
from __future__ import annotations

import logging
import os
import socket
import socketserver
import stat
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Callable, Iterable

from agent import __version__
from agent.api import http_limits
from agent.api.body_stream import BodyReader
from agent.api.endpoints import CoreEndpoints, HealthReader
from agent.api.http_limits import LimitedHandler
from agent.api.routes import MAX_BODY, Response, Router
from agent.errors import Conflict, CorralError, InvalidArgument, MethodNotAllowed, NotFound, RequestTimeout, TooLarge
from agent.events import EventLog
from agent.runtime.service import RuntimeService

SOCKET_MODE = 0o660
# How long stop() lets open streams (event followers notice the stop within half a second)
# finish cleanly, so clients see the end of a stream rather than a cut connection.
STREAM_GRACE_SECONDS = 2.0
# sun_path is 108 bytes including the terminating NUL.
MAX_SOCKET_PATH = 107


class _Handler(LimitedHandler):
    server_version = f"corral/{__version__}"

    def do_GET(self) -> None:
        self.server.api_server._serve(self)   # type: ignore[attr-defined]

    do_POST = do_DELETE = do_PUT = do_PATCH = do_HEAD = do_OPTIONS = do_GET


class _UnixHTTPServer(http_limits.LimitedServerMixIn, socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True   # a client following logs must not hold the daemon's exit

    def __init__(self, path: Path, api_server: ApiServer, request_timeout: float) -> None:
        self.api_server = api_server
        self.request_timeout = request_timeout
        super().__init__(str(path), _Handler, bind_and_activate=False)

    def handle_error(self, request, client_address) -> None:
        # The base class prints to stderr; the daemon's log is where errors belong.
        logging.getLogger(__name__).exception("API connection failed")


class ApiServer:
    """Serves the v1 routes (and any registered later) for `runtime` and `events`.

    Other parts of the daemon add routes either through `extra_routes` (callables given the
    Router) or with `server.router.add(...)` before `start()`.
    """

    def __init__(self, socket_path: Path, runtime: RuntimeService, events: EventLog,
                 info: Callable[[], dict], *,
                 extra_routes: Iterable[Callable[[Router], None]] = (),
                 request_timeout: float = http_limits.REQUEST_TIMEOUT, health: HealthReader | None = None) -> None:
        self._socket_path = Path(socket_path)
        self._request_timeout = request_timeout
        self._stopping = threading.Event()
        self._log = logging.getLogger(__name__)
        self.router = Router()
        CoreEndpoints(runtime, events, info, self._stopping, health).register(self.router)
        for register in extra_routes:
            register(self.router)
        self._server: _UnixHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._inode: int | None = None
        self._streams = 0
        self._streams_done = threading.Condition()

    @property
    def socket_path(self) -> Path:
        return self._socket_path

    @property
    def url(self) -> str:
        return f"unix://{self._socket_path}"

    def start(self) -> None:
        path = self._socket_path
        if len(os.fsencode(str(path))) > MAX_SOCKET_PATH:
            raise InvalidArgument(f"socket path {str(path)!r} is longer than {MAX_SOCKET_PATH} bytes",
                                  hint="UNIX sockets need a shorter path; use /run/corral/corral.sock")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CorralError(f"cannot create the socket directory {path.parent}: {exc.strerror}") from None
        _clear_stale_socket(path)
        server = _UnixHTTPServer(path, self, self._request_timeout)
        try:
            server.server_bind()
            os.chmod(path, SOCKET_MODE)   # before listen(), so nobody connects through wider modes
            self._inode = os.stat(path).st_ino
            server.server_activate()
        except OSError as exc:
            server.server_close()
            raise CorralError(f"cannot listen on {path}: {exc.strerror or exc}",
                              hint="the daemon needs root to use /run/corral") from None
        self._stopping.clear()
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="corral-api", daemon=True)
        self._thread.start()
        self._log.info("API listening on %s", self.url)

    def stop(self) -> None:
        """Stop accepting, end event followers, close the socket and remove its file."""
        self._stopping.set()
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._streams_done:
            self._streams_done.wait_for(lambda: self._streams == 0, timeout=STREAM_GRACE_SECONDS)
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        try:
            # Only our own socket: a daemon started since may already own the path.
            if os.stat(self._socket_path).st_ino == self._inode:
                self._socket_path.unlink()
        except FileNotFoundError:
            pass

    def __enter__(self) -> ApiServer:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # One request

    def _serve(self, handler: LimitedHandler) -> None:
        head = handler.command == "HEAD"
        headers: dict[str, str] = {}
        try:
            http_limits.check_request(handler)
            streaming = self.router.streams_body(handler.command, handler.path)
            body = b"" if streaming else _read_body(handler)
            handler.request_read()      # the rest of the connection's time is the handler's
            if handler.command == "OPTIONS":
                response, headers = self._options(handler.path)
            else:
                route, request = self.router.resolve("GET" if head else handler.command, handler.path, body)
                if streaming:
                    handler.close_connection = True     # a handler may stop reading half-way
                    request.stream = BodyReader(handler.rfile, handler.headers)
                response = route.handler(request)
        except CorralError as exc:
            response = Response.json(exc.to_dict(), status=exc.http_status)
            if isinstance(exc, MethodNotAllowed):
                headers["Allow"] = ", ".join(exc.allowed)
            if exc.http_status in (413, 414, 431):
                handler.close_connection = True   # the rest of what it sent is not read
        except Exception as exc:  # noqa: BLE001 - the API must answer, and the log keeps the traceback
            self._log.exception("API %s %s failed", handler.command, handler.path)
            response = Response.json({"error": "CorralError", "message": f"internal error: {exc}",
                                      "hint": "the daemon's log has the traceback", "field": None},
                                     status=500)
        self._send(handler, response, headers, head=head)
        if response.status == 413:
            handler.linger()

    def _options(self, target: str) -> tuple[Response, dict[str, str]]:
        path = target.split("?", 1)[0]
        if path == "*":
            allowed: tuple[str, ...] = ("DELETE", "GET", "HEAD", "OPTIONS", "POST")
        else:
            allowed = self.router.allowed(path)
        if not allowed:
            raise NotFound(f"no API route {path}")
        return Response.empty(), {"Allow": ", ".join(allowed)}

    def _send(self, handler: BaseHTTPRequestHandler, response: Response,
              headers: dict[str, str] | None = None, *, head: bool = False) -> None:
        if response.takeover is not None and not head:
            self._take_over(handler, response)
            return
        handler.send_response(response.status)
        handler.send_header("Content-Type", response.content_type)
        for name, value in {**response.headers, **(headers or {})}.items():
            handler.send_header(name, value)
        if handler.close_connection:
            handler.send_header("Connection", "close")
        if head and response.stream is not None:
            # HEAD of a stream: the headers it would have, and the stream is never started.
            handler.end_headers()
            close = getattr(response.stream, "close", None)
            if close is not None:
                close()
            return
        if response.stream is None:
            body = response.body or b""
            if response.status != 204:
                handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            if body and not head:
                try:
                    handler.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    handler.close_connection = True   # the client went away
            return
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        stream = response.stream
        with self._streams_done:
            self._streams += 1
        try:
            for chunk in stream:
                if chunk:
                    handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            handler.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True   # the client went away; nothing to tell it
        except Exception:  # noqa: BLE001 - headers are sent: all we can do is cut the stream
            self._log.exception("API stream %s %s failed", handler.command, handler.path)
            handler.close_connection = True
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
            with self._streams_done:
                self._streams -= 1
                self._streams_done.notify_all()

    def _take_over(self, handler: BaseHTTPRequestHandler, response: Response) -> None:
        """Docker's hijack: `101 UPGRADED` (or `200` for a client that did not ask to
        upgrade), then the connection is the takeover's until it returns."""
        upgrade = "upgrade" in handler.headers.get("Connection", "").lower()
        handler.close_connection = True
        if upgrade:
            handler.send_response(101, "UPGRADED")
            handler.send_header("Content-Type", response.content_type)
            handler.send_header("Connection", "Upgrade")
            handler.send_header("Upgrade", "tcp")
        else:
            handler.send_response(200)
            handler.send_header("Content-Type", response.content_type)
            handler.send_header("Connection", "close")
        for name, value in response.headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        with self._streams_done:
            self._streams += 1
        try:
            handler.wfile.flush()
            response.takeover(handler.connection, handler.rfile.read1)  # type: ignore[misc]
        except (BrokenPipeError, ConnectionResetError):
            pass   # the client went away
        except Exception:  # noqa: BLE001 - the head is sent: all we can do is cut the connection
            self._log.exception("API connection %s %s failed", handler.command, handler.path)
        finally:
            with self._streams_done:
                self._streams -= 1
                self._streams_done.notify_all()


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        handler.close_connection = True
        raise InvalidArgument("chunked request bodies are not supported; send Content-Length")
    text = handler.headers.get("Content-Length") or "0"
    if not text.isdigit() or len(text) > 20:
        handler.close_connection = True
        raise InvalidArgument(f"Content-Length {text!r} is not a number", field="Content-Length")
    length = int(text)
    if length > MAX_BODY:
        handler.close_connection = True
        raise TooLarge(f"request body of {length} bytes is larger than the limit of {MAX_BODY} bytes")
    try:
        body = handler.rfile.read(length) if length > 0 else b""
    except TimeoutError:
        handler.close_connection = True
        raise RequestTimeout(f"the request body did not arrive within {handler.server.request_timeout:g} s "  # type: ignore[attr-defined]
                             f"of the request's start") from None
    if len(body) < length:
        handler.close_connection = True
        raise InvalidArgument(f"request body ended after {len(body)} of its {length} bytes")
    return body


def _clear_stale_socket(path: Path) -> None:
    """Remove a socket file left by a daemon that died; refuse if a daemon still answers."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise CorralError(f"{path} exists and is not a socket",
                          hint="remove it, or start the daemon with another socket path")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2.0)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        path.unlink(missing_ok=True)
        return
    except TimeoutError:
        pass   # something holds it and is too busy to accept: still a live daemon
    except OSError as exc:
        raise CorralError(f"cannot check the existing socket {path}: {exc.strerror}") from None
    finally:
        probe.close()
    raise Conflict(f"another Corral daemon is already listening on {path}",
                   hint="stop it first (`corral version` shows it answering), or use another socket path")
