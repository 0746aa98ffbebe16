"""A request body read as a stream, for the routes that take one of any size (a tar upload to
`PUT /v1/containers/{ref}/archive`): framed by Content-Length or chunked transfer-encoding,
read as the handler asks for it, never held whole in memory."""
from __future__ import annotations

from typing import Any

from agent.errors import InvalidArgument

_MAX_LINE = 1024


class BodyReader:
    """`read(n)` over the body of one request; b"" at its end."""

    def __init__(self, rfile: Any, headers: Any) -> None:
        """`rfile` is the connection's buffered reader, `headers` the request's (email.message.Message)."""
        self._rfile = rfile
        self._chunked = "chunked" in (headers.get("Transfer-Encoding") or "").lower()
        text = headers.get("Content-Length") or "0"
        if not self._chunked and (not text.isdigit() or len(text) > 20):
            raise InvalidArgument(f"Content-Length {text!r} is not a number", field="Content-Length")
        self._left = 0 if self._chunked else int(text)     # bytes left in the body or the chunk
        self._done = not self._chunked and self._left == 0

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            parts = []
            while data := self.read(1 << 20):
                parts.append(data)
            return b"".join(parts)
        if self._done or size == 0:
            return b""
        if self._chunked and self._left == 0:
            self._left = self._chunk_size()
            if self._left == 0:
                self._done = True
                return b""
        data = self._rfile.read(min(size, self._left))
        if not data:
            raise InvalidArgument("the request body ended early", field="")
        self._left -= len(data)
        if self._left == 0:
            if self._chunked:
                self._rfile.readline(_MAX_LINE)          # the CRLF after a chunk
            else:
                self._done = True
        return data

    def _chunk_size(self) -> int:
        line = self._rfile.readline(_MAX_LINE)
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise InvalidArgument(f"bad chunk size line {line[:40]!r} in the request body", field="") from None
        if size == 0:
            while self._rfile.readline(_MAX_LINE) not in (b"\r\n", b"\n", b""):
                pass                                     # trailers, up to the blank line
        return size
