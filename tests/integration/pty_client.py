"""The `corral` CLI driven in a pseudo-terminal, as a person at a terminal drives it: it is the
session leader with the pty as its controlling terminal (so it gets SIGWINCH and Ctrl-C), and
the test reads what the terminal shows and types into it."""
from __future__ import annotations

import fcntl
import os
import select
import struct
import subprocess
import termios
import time

TIMEOUT = 20.0


class PtyClient:
    """`corral ARGS` (or `program ARGS` with `env`, like the docker CLI) in a terminal."""

    def __init__(self, daemon, *args: str, rows: int = 24, cols: int = 80, program: list[str] | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.master, slave = os.openpty()
        self.resize(rows, cols)
        self.process = subprocess.Popen(
            [*(program or daemon.cli_command()), *args], stdin=slave, stdout=slave, stderr=slave,
            env=env or daemon.env,
            start_new_session=True, preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
        os.close(slave)
        self.seen = b""

    def resize(self, rows: int, cols: int) -> None:
        """Set the window's size, as a terminal emulator does; the CLI gets SIGWINCH."""
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def expect(self, needle: bytes, timeout: float = TIMEOUT) -> bytes:
        """Read until `needle` has been shown since the last expect; what was shown up to it."""
        deadline = time.monotonic() + timeout
        while needle not in self.seen:
            left = deadline - time.monotonic()
            assert left > 0, f"{needle!r} never showed; the terminal shows {self.seen[-800:]!r}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:                   # EIO: the CLI is gone and so is the slave
                    chunk = b""
                assert chunk, f"the CLI ended before {needle!r} showed; it showed {self.seen[-800:]!r}"
                self.seen += chunk
        shown, _, self.seen = self.seen.partition(needle)
        return shown + needle

    def expect_size(self, rows: int, cols: int, timeout: float = TIMEOUT) -> bytes:
        """Type `stty size` into the shell until it shows `rows cols`. A resize travels apart
        from the typed input (its own API request, as with Docker), so a command typed right
        after the window changed may still see the old size; a person sees the redraw first."""
        deadline = time.monotonic() + timeout
        while True:
            self.send(b"stty size\r")
            try:
                return self.expect(b"%d %d" % (rows, cols), timeout=min(1.0, deadline - time.monotonic()))
            except AssertionError:
                if time.monotonic() >= deadline:
                    raise

    def wait(self, timeout: float = TIMEOUT) -> int:
        """The CLI's exit code (what it still shows is read, so it never blocks writing)."""
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            assert time.monotonic() < deadline, f"the CLI did not exit; it shows {self.seen[-800:]!r}"
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    self.seen += os.read(self.master, 65536)
                except OSError:
                    pass
        return self.process.returncode

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        os.close(self.master)
