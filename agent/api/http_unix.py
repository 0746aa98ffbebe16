"""A small HTTP/1.1 client over an AF_UNIX socket: the transport under `ApiClient`.

Why not `http.client`: importing it loads `email.*`, `ssl` and their friends, about 40 ms of
the CLI's start-up, which is most of what `corral ps` spends before it sends a byte (issue 7
wants a CLI run within 0.15x of `podman run`). The other end is always our own server
(agent/api/server.py, `BaseHTTPRequestHandler` with HTTP/1.1), so this speaks only what that
server sends: a status line and headers, then a body framed by Content-Length, by chunked
transfer-encoding (the logs, exec and events streams), or by the end of the connection; or
`101` after which the connection is the caller's (attach). `request` sends one request per
connection, with `Connection: close` (or `Upgrade`): streams and uploads. A plain request and
answer may instead go over a kept connection (agent/api/keepalive.py): its `Response` then hands
the socket back through `release` once the body has been read to its end.

Failures are OSError (the socket) or ProtocolError (an answer that is not HTTP as expected);
the caller turns both into CorralErrors.
"""
from __future__ import annotations

# The C module under `socket`: `socket` builds its IntEnums (and imports selectors) at import,
# ~2.5 ms of every `corral` start; a `_socket.socket` has all this client calls (and is the base
# of `socket.socket`, so a connection handed on works wherever a socket does).
import _socket
from collections.abc import Callable, Iterator

_RECV_SIZE = 65536
_MAX_LINE = 65536      # a status, header or chunk-size line longer than this is not our server
_MAX_HEADERS = 100


class ProtocolError(Exception):
    """The peer's answer broke HTTP/1.1 framing: no status line, a bad chunk size, cut short."""


class ClosedBeforeAnswer(ProtocolError):
    """The connection ended before the first byte of an answer (a kept connection the server
    closed, or a server that died with the request)."""


class Response:
    """The status and headers of one answer; the body is read with `read1` or `read`.

    `headers` maps lower-case names to values. The connection closes when the body has been
    read to its end or `close()` is called; with `release`, a body read to its end instead hands
    the socket to `release` when the server keeps the connection open (no `Connection: close`,
    a body framed by its length or chunks, nothing read past it).
    """

    def __init__(self, sock: _socket.socket, method: str,
                 release: Callable[[_socket.socket], None] | None = None) -> None:
        self._sock: _socket.socket | None = sock
        self._buffer = bytearray()
        self._received = False
        self._release = release
        self.status, self.reason = self._status_line()
        while self.status == 100:    # "100 Continue" precedes the real answer
            self._headers()
            self.status, self.reason = self._status_line()
        self.headers = self._headers()
        self._chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        self._chunk_left = 0          # bytes of the current chunk not yet returned
        self._length: int | None = None
        if self.status == 101:                    # upgraded: the connection is the caller's now
            self._done = True
            return
        if "close" in self.headers.get("connection", "").lower():
            self._release = None
        if self.status in (204, 304) or 100 <= self.status < 200 or method == "HEAD":
            self._length = 0
        elif not self._chunked and "content-length" in self.headers:
            try:
                self._length = int(self.headers["content-length"])
            except ValueError:
                raise ProtocolError(f"Content-Length {self.headers['content-length']!r} is not a number") from None
            if self._length < 0:
                raise ProtocolError(f"Content-Length {self._length} is negative")
        elif not self._chunked:
            self._release = None                  # framed by the end of the connection
        self._done = False
        if self._length == 0:
            self._end()

    # The body

    def read1(self, size: int = _RECV_SIZE) -> bytes:
        """Up to `size` bytes of the body as soon as some arrive; b"" at its end."""
        if self._done:
            return b""
        if self._chunked:
            return self._read_chunked(size)
        if self._length is None:                 # framed by the end of the connection
            data = self._take(size) or self._recv()
            if not data:
                self.close()
            return data
        data = self._take(min(size, self._length)) or self._recv_at_most(min(size, self._length))
        if not data:
            raise ProtocolError(f"the answer ended {self._length} bytes short of its Content-Length")
        self._length -= len(data)
        if self._length == 0:
            self._end()
        return data

    def read(self) -> bytes:
        """The rest of the body."""
        parts = []
        while data := self.read1(_RECV_SIZE):
            parts.append(data)
        return b"".join(parts)

    def take_connection(self) -> tuple[_socket.socket, bytes]:
        """After `101 Switching Protocols`: the socket and the bytes already read past the head."""
        sock, self._sock = self._sock, None
        if sock is None:
            raise ProtocolError("the connection is closed")
        self._done = True
        data = bytes(self._buffer)
        self._buffer.clear()
        return sock, data

    def close(self) -> None:
        self._done = True
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def _end(self) -> None:
        """The body has been read to its end: the connection goes back to `release` or closes."""
        release, self._release = self._release, None
        if release is None or self._buffer or self._sock is None:
            self.close()
            return
        self._done = True
        sock, self._sock = self._sock, None
        release(sock)

    def _read_chunked(self, size: int) -> bytes:
        if self._chunk_left == 0:
            line = self._line()
            try:
                self._chunk_left = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise ProtocolError(f"bad chunk size line {bytes(line[:40])!r}") from None
            if self._chunk_left == 0:
                while self._line():              # trailers, up to the blank line
                    pass
                self._end()
                return b""
        want = min(size, self._chunk_left)
        data = self._take(want) or self._recv_at_most(want)
        if not data:
            raise ProtocolError("the stream ended inside a chunk")
        self._chunk_left -= len(data)
        if self._chunk_left == 0 and self._line():
            raise ProtocolError("a chunk is not followed by CRLF")
        return data

    # Bytes off the socket

    def _recv(self) -> bytes:
        if self._sock is None:
            return b""
        return self._sock.recv(_RECV_SIZE)

    def _recv_at_most(self, size: int) -> bytes:
        data = self._recv()
        if len(data) > size:
            self._buffer += data[size:]
            data = data[:size]
        return data

    def _take(self, size: int) -> bytes:
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def _line(self) -> bytes:
        """One line without its CRLF (or bare LF)."""
        while (end := self._buffer.find(b"\n")) < 0:
            if len(self._buffer) > _MAX_LINE:
                raise ProtocolError(f"a line of the answer is longer than {_MAX_LINE} bytes")
            data = self._recv()
            if not data:
                if not self._received:
                    raise ClosedBeforeAnswer("the connection closed before the answer began")
                raise ProtocolError("the connection closed before the answer was complete")
            self._received = True
            self._buffer += data
        line = bytes(self._buffer[:end]).rstrip(b"\r")
        del self._buffer[:end + 1]
        return line

    def _status_line(self) -> tuple[int, str]:
        line = self._line()
        parts = line.decode("iso-8859-1").split(None, 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise ProtocolError(f"not an HTTP status line: {line[:80]!r}")
        return int(parts[1]), parts[2] if len(parts) > 2 else ""

    def _headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        while line := self._line():
            if len(headers) >= _MAX_HEADERS:
                raise ProtocolError(f"the answer has more than {_MAX_HEADERS} headers")
            name, colon, value = line.decode("iso-8859-1").partition(":")
            if not colon:
                raise ProtocolError(f"not a header line: {line[:80]!r}")
            headers[name.strip().lower()] = value.strip()
        return headers


def request(path: str, method: str, target: str, *, body: bytes | None = None,
            headers: dict[str, str] | None = None, timeout: float | None = None,
            chunks: Iterator[bytes] | None = None) -> Response:
    """Send one request to the server on the UNIX socket `path` and read its status and headers.

    `target` is the path and query, already percent-encoded. `chunks`, instead of `body`, is
    sent with chunked transfer-encoding as it comes (an upload of unknown size); if the server
    answers before taking it all (an error), its answer is read all the same. Raises OSError
    (FileNotFoundError, ConnectionRefusedError, PermissionError when connecting) or ProtocolError.
    """
    head = head_of(method, target, headers, body, chunked=chunks is not None, keep_alive=False)
    sock = connect(path, timeout)
    try:
        sock.sendall(head + body if body else head)
        if chunks is not None:
            try:
                for chunk in chunks:
                    if chunk:
                        sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sock.sendall(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass        # the server stopped reading: its answer says why
        return Response(sock, method)
    except BaseException:
        sock.close()
        raise


def head_of(method: str, target: str, headers: dict[str, str] | None, body: bytes | None, *,
            chunked: bool, keep_alive: bool) -> bytes:
    """The request line and headers; `Connection: close` unless kept alive or set by the caller."""
    lines = [f"{method} {target} HTTP/1.1"]
    if not keep_alive and "Connection" not in (headers or {}):
        lines.append("Connection: close")
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    elif body is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body or b'')}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def connect(path: str, timeout: float | None) -> _socket.socket:
    """A new connection to the server on the UNIX socket `path`."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(path)
    except BaseException:
        sock.close()
        raise
    return sock
