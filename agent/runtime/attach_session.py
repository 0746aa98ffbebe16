"""One attached client, Docker's way: what the container wrote before (from the log), then its
live output, and the client's input to its stdin, over one bidirectional connection.

`Attachment.serve(conn, read)` is the whole relay: any front end that has a connection taken
over from HTTP (the v1 API's attach, the Docker API's) hands it here. Output goes to the client
as Docker's 8-byte multiplexed frames, or as raw bytes when the container has a terminal. With
a terminal, the detach keys (ctrl-p ctrl-q unless given) end the attachment and leave the
container running; at the end of the client's input the container's stdin is closed when the
container asked for that (`stdin_once`, as `run -i` does).

The log is opened when the attach is accepted (made if the container has not started yet; the
launcher appends to it), not when the relay starts: Docker's clients attach before they start
a container, and a `--rm` container that runs and is removed before the relay looks still has
every byte it wrote read from the open file.
"""
from __future__ import annotations

import logging
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from agent.runtime.attach import DetachWatch, ShimConnection, ShimGone, connect_shim
from agent.runtime.model import CREATED, RUNNING

log = logging.getLogger(__name__)

FRAME = struct.Struct(">BxxxI")       # the log's and Docker's frame header
READ_SIZE = 65536
START_POLL = 0.5                      # seconds between looks at a client waiting for a start

DETACHED, EXITED, ENDED = "detached", "exited", "ended"


@dataclass(frozen=True)
class AttachOptions:
    """Docker's attach query: which streams, the log first or not, and the detach keys."""

    stream: bool = True                # follow the live output (and pass stdin)
    stdin: bool = False
    stdout: bool = True
    stderr: bool = True
    logs: bool = False                 # replay the log from its start first
    detach_keys: bytes = b"\x10\x11"   # ctrl-p ctrl-q; b"": never


class Attachment:
    """An accepted attach: the container was there and in a state one can attach to. `serve`
    relays one connection and says how it ended: DETACHED, EXITED (the container), ENDED
    (the client went away, or nothing was asked to follow)."""

    def __init__(self, *, state_dir: Path, log_path: Path, tty: bool, close_stdin_at_eof: bool,
                 options: AttachOptions, state: Callable[[], str | None],
                 wait_change: Callable[[float], None]) -> None:
        self.tty = tty
        self.options = options
        self._state_dir = state_dir
        self._close_stdin_at_eof = close_stdin_at_eof
        self._state = state
        self._wait_change = wait_change
        self._log = _open_log(log_path)
        # Without `logs`, what is written from now on: docker's attach to a created container
        # shows everything from its start.
        self._since = 0 if options.logs else self._log_size()

    def serve(self, conn: socket.socket, read: Callable[[int], bytes] | None = None) -> str:
        """Relay `conn` (its input read with `read`, default conn.recv: give the HTTP reader's
        read1 so bytes it buffered are not lost) until the container exits, the client detaches
        or goes away."""
        shim = None
        try:
            if not self._wait_for_start(conn):
                return ENDED
            if self._state() == RUNNING:
                try:
                    shim = connect_shim(self._state_dir)
                except ShimGone:
                    shim = None                  # it exited meanwhile: the log has everything
            end = shim.hello.log_offset if shim is not None else self._log_size()
            for stream, data in replay(self._log, self._since, end):
                self._send(conn, stream, data)
            if shim is None or not self.options.stream:
                return EXITED if shim is None else ENDED
            watch = DetachWatch(self.options.detach_keys if self.tty else b"")
            pump = None
            if self.options.stdin:
                pump = threading.Thread(target=self._pump_input, args=(shim, watch, read or conn.recv),
                                        name="attach-stdin", daemon=True)
                pump.start()
            for stream, data in shim.frames():
                self._send(conn, stream, data)
            if watch.detached:
                return DETACHED
            return EXITED if shim.exit_code is not None else ENDED
        except OSError:
            return ENDED                         # the client went away; the container goes on
        finally:
            if shim is not None:
                shim.close()
            self.close()
            _shutdown(conn)

    def close(self) -> None:
        """Let go of the log (`serve` does at its end; call it when `serve` is never called)."""
        if self._log is not None:
            self._log.close()
            self._log = None

    def _log_size(self) -> int:
        return os.fstat(self._log.fileno()).st_size if self._log is not None else 0

    def _wait_for_start(self, conn: socket.socket) -> bool:
        """Docker attaches before it starts: hold a created container's client until it runs
        (or has run and was removed: its log is open). False when the client hangs up."""
        poller = None
        while self._state() == CREATED:
            if poller is None:
                import select
                poller = select.poll()
                poller.register(conn.fileno(), select.POLLHUP | select.POLLERR)
            if poller.poll(0):
                return False
            self._wait_change(START_POLL)
        return True

    def _send(self, conn: socket.socket, stream: int, data: bytes) -> None:
        if (stream == 1 and not self.options.stdout) or (stream == 2 and not self.options.stderr) or not data:
            return
        conn.sendall(data if self.tty else FRAME.pack(stream, len(data)) + data)

    def _pump_input(self, shim: ShimConnection, watch: DetachWatch, read: Callable[[int], bytes]) -> None:
        try:
            while data := read(READ_SIZE):
                data = watch.feed(data)
                if data:
                    shim.send_stdin(data)
                if watch.detached:
                    shim.close()                 # ends the output loop; the container goes on
                    return
            if self._close_stdin_at_eof:
                shim.close_stdin()
        except (OSError, ShimGone):
            pass                                 # the client or the container went away
        except Exception:  # noqa: BLE001 - a thread's failure must reach the log, not vanish
            log.exception("attach: relaying stdin failed")


def replay(handle: IO[bytes] | None, start: int, end: int) -> Iterator[tuple[int, bytes]]:
    """(stream, bytes) of the log's frames from byte `start` to `end` (both at frame bounds)."""
    if handle is None or end <= start:
        return
    handle.seek(start)
    left = end - start
    while left >= FRAME.size:
        header = handle.read(FRAME.size)
        if len(header) < FRAME.size:
            return
        stream, length = FRAME.unpack(header)
        payload = handle.read(min(length, left - FRAME.size))
        left -= FRAME.size + len(payload)
        yield stream, payload


def _open_log(path: Path) -> IO[bytes] | None:
    """The log, made when the container has not written it yet; None when its state is gone."""
    try:
        return os.fdopen(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o640), "rb")
    except FileNotFoundError:
        return None


def _shutdown(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
