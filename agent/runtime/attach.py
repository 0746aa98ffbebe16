"""A connection to a container's terminal or stdin/stdout, through its shim.

The shim (launcher/tty.c) owns the container's terminal and stdin and listens on
`<state dir>/attach.sock`; `connect_shim` gives a `ShimConnection` to it: the output as it
comes, stdin, end of stdin and window sizes. That is the seam every attaching front end uses
(the v1 API's attach, the Docker API's): docs/ARCHITECTURE.md, "Terminals and attach".

The frames on the socket are the log's 8-byte headers `[type, 0, 0, 0, length BE32]`; the
types are those of launcher/tty.h.
"""
from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from agent.errors import Conflict, InvalidArgument

SOCKET_NAME = "attach.sock"
# Frame types (launcher/tty.h enum attach_frame).
STDIN, STDOUT, STDERR, EXIT, STDIN_EOF, RESIZE, HELLO = range(7)
HEADER = struct.Struct(">BxxxI")
FRAME_MAX = 65536          # ATTACH_FRAME_MAX: the largest payload the shim accepts
CONNECT_TIMEOUT = 5.0
DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"


class ShimGone(Conflict):
    """The container's shim does not answer: the container is not running (any more)."""


@dataclass(frozen=True)
class Hello:
    log_offset: int        # bytes of the log written before this connection's first output
    tty: bool


class ShimConnection:
    """One connection to a container's shim. Output frames come from `frames()`; stdin goes
    with `send_stdin`; `close_stdin` ends it (the container reads end-of-file; without a
    terminal only); `resize` sets the terminal's size. Safe to send from one thread while
    another reads."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buffer = bytearray()
        self.exit_code: int | None = None
        kind, payload = self._next() or (None, b"")
        if kind != HELLO or len(payload) != 9:
            sock.close()
            raise ShimGone("the container's shim did not greet the daemon")
        self.hello = Hello(int.from_bytes(payload[:8], "big"), bool(payload[8] & 1))

    @property
    def tty(self) -> bool:
        return self.hello.tty

    def frames(self) -> Iterator[tuple[int, bytes]]:
        """(stream, bytes) of the output (1 stdout, 2 stderr; a terminal's is all 1) until the
        container exits (`exit_code` is then set) or the connection closes."""
        while (frame := self._next()) is not None:
            kind, payload = frame
            if kind == EXIT:
                self.exit_code = int(payload or b"0")
                return
            if kind in (STDOUT, STDERR):
                yield kind, payload

    def send_stdin(self, data: bytes) -> None:
        for start in range(0, len(data), FRAME_MAX):
            self._send(STDIN, data[start:start + FRAME_MAX])

    def close_stdin(self) -> None:
        self._send(STDIN_EOF, b"")

    def resize(self, rows: int, cols: int) -> None:
        self._send(RESIZE, struct.pack(">HH", rows, cols))

    def close(self) -> None:
        """Detach: the container goes on."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def _send(self, kind: int, payload: bytes) -> None:
        try:
            self.sock.sendall(HEADER.pack(kind, len(payload)) + payload)
        except OSError as exc:
            raise ShimGone(f"the container's shim went away: {exc.strerror or exc}") from None

    def _next(self) -> tuple[int, bytes] | None:
        while True:
            if len(self._buffer) >= HEADER.size:
                kind, length = HEADER.unpack_from(self._buffer)
                if len(self._buffer) >= HEADER.size + length:
                    payload = bytes(self._buffer[HEADER.size:HEADER.size + length])
                    del self._buffer[:HEADER.size + length]
                    return kind, payload
            try:
                data = self.sock.recv(FRAME_MAX + HEADER.size)
            except OSError:
                data = b""
            if not data:
                return None
            self._buffer += data


def connect_shim(state_dir: Path, timeout: float = CONNECT_TIMEOUT) -> ShimConnection:
    """A connection to the shim of the container whose state is in `state_dir`; ShimGone when
    nothing listens (the container is not running).

    Connected through a descriptor of the directory: state paths are longer than the 107
    bytes a socket address holds."""
    try:
        directory = os.open(state_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise ShimGone(f"container state {state_dir} is gone: {exc.strerror}") from None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(f"/proc/self/fd/{directory}/{SOCKET_NAME}")
        connection = ShimConnection(sock)
        sock.settimeout(None)
        return connection
    except OSError as exc:
        sock.close()
        raise ShimGone(f"the container's shim does not answer: {exc.strerror or exc}",
                       hint="the container is not running, or was started without an attach socket") from None
    finally:
        os.close(directory)


def resize_terminal(state_dir: Path, rows: int, cols: int) -> None:
    """Set the size of a container's terminal (the container gets SIGWINCH)."""
    connection = connect_shim(state_dir)
    try:
        connection.resize(rows, cols)
    finally:
        connection.close()


_CONTROL = {**{chr(c): c - 0x60 for c in range(ord("a"), ord("z") + 1)},
            "@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}


def parse_detach_keys(text: str, field: str = "detachKeys") -> bytes:
    """Docker's detach keys, like `ctrl-p,ctrl-q` or `a,ctrl-b`: the bytes of the sequence.
    An empty text means no detaching."""
    if text == "":
        return b""
    keys = bytearray()
    for item in text.split(","):
        lowered = item.lower()
        if len(item) == 1 and item.isascii():
            keys.append(ord(item))
        elif lowered.startswith("ctrl-") and len(lowered) == 6 and lowered[5] in _CONTROL:
            keys.append(_CONTROL[lowered[5]])
        else:
            raise InvalidArgument(f"{field} {text!r}: {item!r} is not a key; expected a letter or ctrl-<letter>, "
                                  "like ctrl-p,ctrl-q", field=field)
    return bytes(keys)


class DetachWatch:
    """Docker's escape proxy: input passes through, except the detach sequence, which ends
    the attachment. A partial match is held back until the next byte shows what it was."""

    def __init__(self, keys: bytes) -> None:
        self._keys = keys
        self._held = 0       # bytes of the sequence matched so far
        self.detached = False

    def feed(self, data: bytes) -> bytes:
        """What to pass on of `data`; sets `detached` when the sequence completes."""
        if not self._keys:
            return data
        out = bytearray()
        for byte in data:
            if byte == self._keys[self._held]:
                self._held += 1
                if self._held == len(self._keys):
                    self.detached = True
                    return bytes(out)
                continue
            out += self._keys[:self._held]
            self._held = 0
            if byte == self._keys[0]:
                self._held = 1
            else:
                out.append(byte)
        return bytes(out)
