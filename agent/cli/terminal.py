"""The client's side of an attached container (`run -i/-t`, `attach`, `exec -i/-t`): this
terminal in raw mode, its keys to the container, the container's output to stdout/stderr,
its size following this window (SIGWINCH), the detach keys noticed here so the CLI knows it
detached, and the end of stdin passed on as a half-close.
"""
from __future__ import annotations

import _socket
import os
import select
import signal
import sys

from agent.api import frames

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

READ_SIZE = 65536


def terminal_size() -> tuple[int, int] | None:
    """(rows, columns) of the terminal on stdout (else stdin), or None without one."""
    for fd in (1, 0):
        try:
            size = os.get_terminal_size(fd)
        except OSError:
            continue
        if size.lines and size.columns:
            return size.lines, size.columns
    return None


class RawTerminal:
    """stdin in raw mode while in the block (when it is a terminal), restored after."""

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled and os.isatty(0)
        self._saved: list | None = None

    def __enter__(self) -> RawTerminal:
        if self._enabled:
            import termios
            import tty
            self._saved = termios.tcgetattr(0)
            tty.setraw(0, termios.TCSANOW)
        return self

    def __exit__(self, *exc_info) -> None:
        if self._saved is not None:
            import termios
            termios.tcsetattr(0, termios.TCSADRAIN, self._saved)


class WindowFollower:
    """While in the block, each SIGWINCH sends this terminal's new size with `resize`."""

    def __init__(self, resize: Callable[[int, int], None] | None) -> None:
        self._resize = resize
        self._previous: object = None
        self._following = False

    def __enter__(self) -> WindowFollower:
        if self._resize is not None and terminal_size() is not None:
            self._previous = signal.signal(signal.SIGWINCH, self._changed)
            self._following = True
        return self

    def __exit__(self, *exc_info) -> None:
        if self._following:
            signal.signal(signal.SIGWINCH, self._previous)  # type: ignore[arg-type]

    def _changed(self, _number, _frame) -> None:
        size = terminal_size()
        if size is not None and self._resize is not None:
            try:
                self._resize(*size)
            except Exception:  # noqa: BLE001 - a lost resize must not end the session
                pass


def relay(sock: _socket.socket, first: bytes, *, tty: bool, stdin: bool, detach_keys: bytes = b"",
          on_exit_frame: Callable[[int], None] | None = None, stdin_fd: int = 0) -> bool:
    """Copy between this process's stdio and an attached connection until the other end
    closes; True when the user typed the detach keys (the container goes on)."""
    from agent.runtime.attach import DetachWatch
    watch = DetachWatch(detach_keys if tty else b"")
    decoder = None if tty else frames.FrameDecoder()
    out = sys.stdout.buffer
    err = sys.stderr.buffer

    def show(data: bytes) -> None:
        if decoder is None:
            out.write(data)
            out.flush()
            return
        for number, payload in decoder.feed(data):
            if number == frames.EXIT and on_exit_frame is not None:
                on_exit_frame(frames.decode_exit(payload))
            elif number in (frames.STDOUT, frames.STDERR):
                target = err if number == frames.STDERR else out
                target.write(payload)
                target.flush()

    if first:
        show(first)
    reading = stdin
    try:
        while True:
            ready, _, _ = select.select([sock] + ([stdin_fd] if reading else []), [], [])
            if stdin_fd in ready:
                data = os.read(stdin_fd, READ_SIZE)
                if not data:
                    reading = False
                    sock.shutdown(_socket.SHUT_WR)   # end of input: the container's stdin ends
                else:
                    passed = watch.feed(data)
                    if passed:
                        sock.sendall(passed)
                    if watch.detached:
                        return True
            if sock in ready:
                data = sock.recv(READ_SIZE)
                if not data:
                    return False
                show(data)
    except (ConnectionResetError, BrokenPipeError):
        return False
    finally:
        sock.close()
