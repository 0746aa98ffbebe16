"""What keeps the API server standing under load and against slow or oversized clients.

- a listen backlog deep enough that a burst of clients all connect (the default of 5 refused
  some of 200), and a cap on open connections past which a client is told 503 at once;
- a deadline for reading each request (line, headers and body): a client that sends half a
  request and stalls is cut off when it passes, and it only ever holds its own thread;
- a body over the limit is 413 (then a lingering close), a target over MAX_TARGET bytes is 414, headers over MAX_HEADER_BYTES are 431, and the errors
  the stdlib parser itself raises (bad request line, 414, 431, 501) get the JSON error body;
- once the request is read the deadline is lifted, so a long stream (logs --follow) or a
  connection taken over by a handler (the Docker API's hijack) is the handler's to time;
- kept connections (HTTP/1.1 keep-alive: `ApiClient`, docker-py, the docker CLI): one idles at
  most KEEPALIVE_TIMEOUT for its next request, serves at most MAX_REQUESTS_PER_CONNECTION, and
  is closed first when the connection cap is reached (the idle one waiting longest makes room
  for the new client) and when the server stops. So idle clients never hold the cap, and no
  thread waits longer than KEEPALIVE_TIMEOUT for a request that may never come.
"""
from __future__ import annotations

import io
import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

from agent.errors import TooLarge

REQUEST_TIMEOUT = 10.0       # seconds to send one whole request
KEEPALIVE_TIMEOUT = 5.0      # seconds a kept connection idles for its next request (Apache's default)
MAX_REQUESTS_PER_CONNECTION = 1000    # then `Connection: close` (nginx's keepalive_requests)
BACKLOG = 1024               # the kernel caps it at net.core.somaxconn (4096 here)
MAX_CONNECTIONS = 512        # one thread each; more than this is 503 Service Unavailable
MAX_TARGET = 8192            # bytes of path and query
MAX_HEADER_BYTES = 32768     # all header names and values together
# After refusing a request whose body was not read (413), the rest is read and dropped for a
# moment before closing: closing with unread data resets the connection, and the client would
# see "connection reset" instead of the 413 (nginx calls this a lingering close).
LINGER_SECONDS = 2.0
LINGER_BYTES = 64 * 1024 * 1024

_log = logging.getLogger(__name__)


class _DeadlineReader(io.RawIOBase):
    """The connection's reading side, bounded by a deadline while one is set."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.deadline: float | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.deadline is None:
            self._sock.settimeout(None)
        else:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the request was not received in time")
            self._sock.settimeout(left)
        return self._sock.recv_into(buffer)


class LimitedHandler(BaseHTTPRequestHandler):
    """BaseHTTPRequestHandler with a per-request read deadline and JSON error bodies."""

    protocol_version = "HTTP/1.1"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        self._reader = _DeadlineReader(self.connection)
        self.rfile = io.BufferedReader(self._reader, 65536)
        self._served = 0          # requests answered on this connection

    def handle_one_request(self) -> None:
        timeout: float = self.server.request_timeout  # type: ignore[attr-defined]
        if self._served:
            # A kept connection: it may wait KEEPALIVE_TIMEOUT for its next request line, and the
            # server may end that wait (drain) when it runs short of connections or stops.
            if not self.server.wait_idle(self):     # type: ignore[attr-defined]
                self.close_connection = True
                return
            timeout = min(timeout, KEEPALIVE_TIMEOUT)
        self._reader.deadline = time.monotonic() + timeout
        try:
            super().handle_one_request()
        finally:
            self.server.end_idle(self)     # type: ignore[attr-defined]
        self._served += 1

    def parse_request(self) -> bool:
        """The request line is in: the connection is busy, and the rest of the request (headers,
        body) has the whole REQUEST_TIMEOUT."""
        if self._served:
            self.server.end_idle(self)     # type: ignore[attr-defined]
            self._reader.deadline = time.monotonic() + self.server.request_timeout  # type: ignore[attr-defined]
        parsed = super().parse_request()
        if parsed and self._served + 1 >= MAX_REQUESTS_PER_CONNECTION:
            self.close_connection = True
        return parsed

    def drain(self) -> None:
        """End the wait for a next request (the server needs the slot, or stops). SHUT_RD and
        not a close: a request already in the socket is still read and answered (this side
        reads what is queued before it sees the end), a client sending later gets EPIPE and
        sends it on a new connection (agent/api/keepalive.py)."""
        try:
            self.connection.shutdown(socket.SHUT_RD)
        except OSError:
            pass     # already closed

    def request_read(self) -> None:
        """The request is in: lift the deadline for the handler and its response."""
        self._reader.deadline = None
        self.connection.settimeout(None)

    def linger(self) -> None:
        """Close after an early answer without resetting the client: see LINGER_SECONDS."""
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + LINGER_SECONDS
            dropped = 0
            while dropped < LINGER_BYTES and (left := deadline - time.monotonic()) > 0:
                self.connection.settimeout(left)
                data = self.connection.recv(65536)
                if not data:
                    break
                dropped += len(data)
        except OSError:
            pass   # the client is gone or slow: the close below is all that is left to do

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib parser's own errors (400, 414, 431, 501, 505), with the API's JSON body."""
        self.close_connection = True
        text = message or self.responses.get(code, ("error",))[0]
        body = json.dumps({"error": "TooLarge" if code in (413, 414, 431) else "InvalidArgument",
                           "message": text, "hint": explain, "field": None}).encode() + b"\n"
        self.log_error("code %d, message %s", code, text)
        self.send_response(code, message)
        self.send_header("Connection", "close")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def address_string(self) -> str:
        return "unix"   # AF_UNIX peers have no address; the base class would index into ''

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("api: " + format, *args)


def check_request(handler: BaseHTTPRequestHandler) -> None:
    """414 for a long target, 431 for large headers (the stdlib checks only each line)."""
    if len(handler.path) > MAX_TARGET:
        raise TooLarge(f"the request target is {len(handler.path)} bytes; the limit is {MAX_TARGET}",
                       status=414)
    size = sum(len(name) + len(value) for name, value in handler.headers.items())
    if size > MAX_HEADER_BYTES:
        raise TooLarge(f"the request headers are {size} bytes; the limit is {MAX_HEADER_BYTES}",
                       status=431)


_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
         b"Content-Length: %d\r\n\r\n%s")


_LINGERERS = threading.BoundedSemaphore(16)


class LimitedServerMixIn:
    """For a socketserver with ThreadingMixIn: the backlog and the connection cap."""

    request_queue_size = BACKLOG
    max_connections = MAX_CONNECTIONS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._open = 0
        self._open_lock = threading.Lock()
        self._idle: dict[LimitedHandler, None] = {}    # kept connections waiting, longest first
        self._closing = False
        super().__init__(*args, **kwargs)

    def wait_idle(self, handler: LimitedHandler) -> bool:
        """A kept connection is about to wait for its next request; False: close it instead."""
        with self._open_lock:
            if self._closing:
                return False
            self._idle[handler] = None
            return True

    def end_idle(self, handler: LimitedHandler) -> None:
        with self._open_lock:
            self._idle.pop(handler, None)

    def process_request(self, request: Any, client_address: Any) -> None:
        drained = None
        with self._open_lock:
            busy = self._open >= self.max_connections
            if busy and self._idle:
                # The cap is reached but a kept connection is only idling: it makes room. Its
                # thread ends as soon as it sees the end of its input, so the count is over the
                # cap by one for that moment only.
                drained = next(iter(self._idle))
                del self._idle[drained]
                busy = False
            if not busy:
                self._open += 1
        if drained is not None:
            drained.drain()
        if busy:
            self._refuse(request)
            return
        super().process_request(request, client_address)  # type: ignore[misc]

    def server_close(self) -> None:
        """Also end the kept connections' waits: a stopped server answers no more requests."""
        with self._open_lock:
            self._closing = True
            idle, self._idle = list(self._idle), {}
        for handler in idle:
            handler.drain()
        super().server_close()  # type: ignore[misc]

    def _refuse(self, request: socket.socket) -> None:
        """503 to a client past the cap. Its request is read and dropped for a moment so the close
        does not reset the connection (LINGER_SECONDS), by at most _LINGERERS threads at once;
        past that it is closed at once."""
        body = json.dumps({"error": "CorralError", "field": None, "hint": "try again",
                           "message": f"the daemon has {self.max_connections} connections open"}).encode()

        def answer() -> None:
            try:
                request.settimeout(LINGER_SECONDS)
                request.sendall(_BUSY % (len(body), body))
                request.shutdown(socket.SHUT_WR)
                while request.recv(65536):
                    pass
            except OSError:
                pass
            finally:
                request.close()
                _LINGERERS.release()

        if _LINGERERS.acquire(blocking=False):
            threading.Thread(target=answer, name="corral-api-busy", daemon=True).start()
        else:
            request.close()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)  # type: ignore[misc]
        finally:
            with self._open_lock:
                self._open -= 1
