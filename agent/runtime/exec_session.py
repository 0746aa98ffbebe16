"""One interactive exec over a connection taken over from HTTP: the client's input to the
command's stdin (or its terminal), the command's output back, its exit code at the end.

The terminal of an exec is the daemon's (the launcher hands its master over). Corral's own
`exec -it` lives as long as the connection that started it; Docker's (`outlive_client`) goes
on when its client detaches or goes away, its output read and dropped. Output is Docker's multiplexed
frames, or a terminal's raw bytes when `raw`; `exit_frame` adds Corral's stream-3 frame with
the exit code (agent/api/frames.py) for clients that read the code from the stream.
"""
from __future__ import annotations

import errno
import fcntl
import logging
import os
import selectors
import socket
import struct
import termios
import threading
from collections.abc import Callable

from agent.runtime.attach import DetachWatch
from agent.runtime.service import ExecProcess

log = logging.getLogger(__name__)

FRAME = struct.Struct(">BxxxI")
READ_SIZE = 65536
EXIT_STREAM = 3


class ExecSession:
    """A started exec: `serve` relays it, `resize` sizes its terminal, `exit_code` is set once
    it has exited."""

    def __init__(self, exec_id: str, container_id: str, process: ExecProcess, *, stdin: bool) -> None:
        self.id = exec_id
        self.container_id = container_id
        self.process = process
        self.tty = process.tty
        self.stdin = stdin
        self.exit_code: int | None = None
        self._done = threading.Event()

    @property
    def running(self) -> bool:
        return not self._done.is_set()

    def resize(self, rows: int, cols: int) -> None:
        terminal = self.process.stdout if self.tty else None
        if terminal is None or terminal.closed:
            return
        fcntl.ioctl(terminal.fileno(), termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def serve(self, conn: socket.socket, read: Callable[[int], bytes] | None = None, *,
              raw: bool = False, exit_frame: bool = True, streams: frozenset[int] = frozenset({1, 2}),
              detach_keys: bytes = b"", outlive_client: bool = False) -> int | None:
        """Relay until the command has exited (its exit code) or the client went away (None).
        Output of a stream not in `streams` is read and dropped (Docker's AttachStdout/
        AttachStderr). With a terminal, `detach_keys` let the client go. When the client is
        gone the command's input and output are closed and it is reaped in the background, or
        with `outlive_client` it runs on, its output read and dropped (Docker's exec)."""
        if self.stdin:
            watch = DetachWatch(detach_keys if self.tty else b"")
            threading.Thread(target=self._pump_input, args=(read or conn.recv, watch, conn), name="exec-stdin",
                             daemon=True).start()
        output = self._output()
        handed_over = False
        try:
            for stream, data in output:
                if stream in streams:
                    conn.sendall(data if raw else FRAME.pack(stream, len(data)) + data)
            code = self._wait()
            if exit_frame:
                text = str(code).encode()
                conn.sendall(FRAME.pack(EXIT_STREAM, len(text)) + text)
            return code
        except OSError:
            if outlive_client:
                handed_over = True
                threading.Thread(target=self._finish, args=(output,), name="exec-outlive", daemon=True).start()
            else:
                self._close()
                threading.Thread(target=self._wait, name="exec-reap", daemon=True).start()
            return None
        finally:
            if not handed_over:
                self._close()
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def drain(self) -> int:
        """Run to the end with no client (Docker's detached exec start): the output is read
        and dropped, so the command never blocks on a full pipe; its exit code."""
        return self._finish(self._output())

    def _finish(self, output) -> int:
        try:
            for _ in output:
                pass
            return self._wait()
        finally:
            self._close()

    def _output(self):
        """(stream, bytes) of the command's output until it is all read."""
        selector = selectors.DefaultSelector()
        try:
            for stream, pipe in ((1, self.process.stdout), (2, self.process.stderr)):
                if pipe is not None:
                    selector.register(pipe, selectors.EVENT_READ, stream)
            while selector.get_map():
                for key, _ in selector.select():
                    try:
                        data = os.read(key.fd, READ_SIZE)
                    except OSError as exc:
                        if exc.errno != errno.EIO:    # EIO: nothing has the terminal open any more
                            raise
                        data = b""
                    if data:
                        yield key.data, data
                    else:
                        selector.unregister(key.fileobj)
        finally:
            selector.close()

    def _pump_input(self, read: Callable[[int], bytes], watch: DetachWatch, conn: socket.socket) -> None:
        target = self.process.stdout if self.tty else self.process.stdin
        try:
            while (data := read(READ_SIZE)) and target is not None:
                data = watch.feed(data)
                if data:
                    target.write(data)
                if watch.detached:
                    conn.shutdown(socket.SHUT_RDWR)  # the client is let go; the output side sees it
                    return
            if not self.tty and target is not None:
                target.close()                       # end of input: the command reads end-of-file
        except (OSError, ValueError):
            pass                                     # the command or the client went away

    def _wait(self) -> int:
        if self.exit_code is None:
            code = self.process.wait()
            self.exit_code = code
            self._done.set()
        return self.exit_code

    def _close(self) -> None:
        for pipe in (self.process.stdout, self.process.stderr, self.process.stdin):
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:
                    pass
