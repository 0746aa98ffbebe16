"""The one connection an `ApiClient` keeps open between plain requests (HTTP keep-alive).

A docker-style launch is three calls (create, wait, remove); each on a new connection cost the
daemon an accept and a new request thread and the client a connect. Plain request/answer calls
(JSON in, JSON out) go over one kept connection instead; streams, uploads and upgraded
connections keep a connection of their own (agent/api/http_unix.py `request`).

The daemon closes a kept connection that idles (agent/api/http_limits.py KEEPALIVE_TIMEOUT) or
that it drains when connections run short, so before a kept connection is used again:
- one idle longer than REUSE_SECONDS (under the daemon's limit) is closed, not reused;
- a non-blocking peek sees whether the daemon has closed it (end of file), and then a new one
  is opened. No request was sent, so nothing is repeated.
What is left is a close racing the request. A request the daemon never read is sent once more
on a new connection: the send fails (EPIPE), or the first read is reset (ECONNRESET: the daemon
closed with the request unread in its socket), or, for GET, HEAD and OPTIONS, the connection
ends before the first byte of an answer. A POST or DELETE whose connection ends without an
answer after the daemon read it is not repeated (it may have been done): the caller sees the
error, as with a connection of its own.

One connection is kept, not a pool: a call from a second thread while the first one's is in use
opens its own, and whichever finishes second closes its connection. A child process after fork
never uses its parent's.
"""
from __future__ import annotations

import _socket
import _thread
import os
import time

from agent.api.http_unix import ClosedBeforeAnswer, Response, connect, head_of

# Under the daemon's KEEPALIVE_TIMEOUT (5 s), so a reused connection is rarely one it is closing.
REUSE_SECONDS = 3.0
_REPEATABLE = frozenset(("GET", "HEAD", "OPTIONS"))


class _NotRead(Exception):
    """The kept connection was closed before the daemon read the request."""


class KeptConnection:
    """The idle connection of one client to the daemon's socket `path`."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._lock = _thread.allocate_lock()
        self._idle: tuple[_socket.socket, float, int] | None = None    # socket, idle since, pid
        self.opened = 0          # connections opened: what tests and the bench look at

    def request(self, method: str, target: str, *, body: bytes | None, headers: dict[str, str],
                timeout: float | None) -> Response:
        """Send one request over the kept connection (or a new one) and read its status and
        headers; the connection is kept again once the caller has read the body to its end.
        Raises what `http_unix.request` raises."""
        head = head_of(method, target, headers, body, chunked=False, keep_alive=True)
        data = head + body if body else head
        sock = self._take()
        if sock is not None:
            try:
                return self._exchange(sock, method, data, timeout, reused=True)
            except _NotRead:
                pass         # the daemon closed it first: the request goes on a new connection
        sock = connect(self._path, timeout)
        self.opened += 1
        return self._exchange(sock, method, data, timeout, reused=False)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, None
        if idle is not None:
            idle[0].close()

    def __del__(self) -> None:
        self.close()

    def _exchange(self, sock: _socket.socket, method: str, data: bytes, timeout: float | None, *,
                  reused: bool) -> Response:
        try:
            sock.settimeout(timeout)
            sock.sendall(data)
            return Response(sock, method, release=self._keep)
        except (BrokenPipeError, ConnectionResetError):
            sock.close()
            if reused:
                raise _NotRead from None
            raise
        except ClosedBeforeAnswer:
            sock.close()
            if reused and method in _REPEATABLE:
                raise _NotRead from None
            raise
        except BaseException:
            sock.close()
            raise

    def _keep(self, sock: _socket.socket) -> None:
        """An answer read to its end: its connection is the idle one, unless one is kept already."""
        with self._lock:
            kept = self._idle is None
            if kept:
                self._idle = (sock, time.monotonic(), os.getpid())
        if not kept:
            sock.close()

    def _take(self) -> _socket.socket | None:
        """The idle connection if it may be used again, else None (and it is closed)."""
        with self._lock:
            idle, self._idle = self._idle, None
        if idle is None:
            return None
        sock, since, pid = idle
        # A forked child closes only its own descriptor: the parent's connection stays open.
        if pid == os.getpid() and time.monotonic() - since <= REUSE_SECONDS:
            try:
                # Non-blocking for the peek: a socket with a timeout would first poll for up to
                # that timeout (CPython waits before each recv), MSG_DONTWAIT notwithstanding.
                # _exchange sets the request's timeout again.
                sock.settimeout(0.0)
                sock.recv(1, _socket.MSG_PEEK)
            except BlockingIOError:
                return sock      # open, and nothing unasked-for waiting on it
            except OSError:
                pass
        sock.close()     # a parent's, too old, closed by the daemon, or bytes nobody asked for
        return None
