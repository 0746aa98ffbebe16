"""What the launcher's privileged tests share: building the binary and a busybox rootfs,
driving the run protocol, decoding Docker log frames, and making sure nothing outlives a test.
"""
from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[2]
SOURCES = REPO / "launcher"
BUSYBOX = Path("/bin/busybox")
# Generous: a step takes milliseconds; this only keeps a broken launcher from hanging the run.
STEP_TIMEOUT = 10.0


def build_launcher(dest_dir: Path) -> Path:
    """Compile launcher/*.c exactly as the Makefile does, into dest_dir."""
    binary = dest_dir / "corral-launch"
    sources = sorted(str(path) for path in SOURCES.glob("*.c"))
    subprocess.run(["gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(binary), *sources],
                   check=True, capture_output=True)
    return binary


def build_rootfs(root: Path) -> Path:
    """A minimal image: busybox-static and a symlink per applet in /bin."""
    bindir = root / "bin"
    bindir.mkdir(parents=True)
    for name in ("proc", "sys", "dev", "tmp", "etc"):
        (root / name).mkdir()
    shutil.copy2(BUSYBOX, bindir / "busybox")
    applets = subprocess.run([str(BUSYBOX), "--list"], check=True, capture_output=True, text=True).stdout
    for applet in applets.split():
        if applet != "busybox":
            (bindir / applet).symlink_to("busybox")
    return root


def decode_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Split a log file into (stream, payload) Docker frames, failing on a torn frame."""
    frames = []
    while data:
        assert len(data) >= 8, f"torn frame header: {data!r}"
        stream, size = data[0], int.from_bytes(data[4:8], "big")
        assert data[1:4] == b"\0\0\0", f"bad frame header {data[:8]!r}"
        assert len(data) >= 8 + size, "torn frame payload"
        frames.append((stream, data[8:8 + size]))
        data = data[8 + size:]
    return frames


def stream_text(frames: list[tuple[int, bytes]], stream: int) -> str:
    return b"".join(payload for s, payload in frames if s == stream).decode()


def process_gone(pid: int) -> bool:
    """True once pid has no process (a zombie still counts as there)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@dataclass
class Shim:
    """One `corral-launch run`, driven like the daemon drives it."""

    process: subprocess.Popen
    workdir: Path
    pid: int | None = None
    _buffer: bytes = b""

    @property
    def log(self) -> Path:
        return self.workdir / "log"

    @property
    def exit_file(self) -> Path:
        return self.workdir / "exit"

    def read_line(self) -> str:
        fd = self.process.stdout.fileno()
        while b"\n" not in self._buffer:
            ready, _, _ = select.select([fd], [], [], STEP_TIMEOUT)
            assert ready, f"the launcher said nothing within {STEP_TIMEOUT}s"
            chunk = os.read(fd, 4096)
            if not chunk:
                return self._buffer.decode()
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()

    def send(self, text: str) -> None:
        self.process.stdin.write(text.encode())
        self.process.stdin.flush()

    def wait(self) -> int:
        return self.process.wait(timeout=STEP_TIMEOUT)

    def exit_code(self) -> int:
        """Wait for the shim and return the code it recorded for the container."""
        assert self.wait() == 0, f"shim failed: {self.diagnostics()}"
        return int(self.exit_file.read_text())

    def frames(self) -> list[tuple[int, bytes]]:
        return decode_frames(self.log.read_bytes()) if self.log.exists() else []

    def stdout(self) -> str:
        return stream_text(self.frames(), 1)

    def stderr(self) -> str:
        return stream_text(self.frames(), 2)

    def diagnostics(self) -> str:
        path = self.workdir / "shim.log"
        return path.read_text() if path.exists() else ""


@dataclass
class Launcher:
    """Starts shims and remembers them, so `cleanup` can kill whatever a failed test left."""

    binary: Path
    rootfs: Path
    tmp: Path
    shims: list[Shim] = field(default_factory=list)

    def spawn(self, *options: str, command: list[str], env: dict | None = None) -> Shim:
        workdir = self.tmp / f"shim{len(self.shims)}"
        workdir.mkdir()
        argv = [str(self.binary), "run", "--rootfs", str(self.rootfs), "--log", str(workdir / "log"),
                "--exit-file", str(workdir / "exit"), *options, "--", *command]
        with open(workdir / "shim.log", "ab") as diag:
            process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=diag,
                                       env=env if env is not None else {}, bufsize=0)
        shim = Shim(process=process, workdir=workdir)
        self.shims.append(shim)
        return shim

    def start(self, *options: str, command: list[str], before_go: Callable[[int], None] | None = None,
              env: dict | None = None) -> Shim:
        """Spawn, read `pid`, run before_go(pid), send `go`, and expect `started`."""
        shim = self.spawn(*options, command=command, env=env)
        first = shim.read_line()
        assert first.startswith("pid "), f"expected 'pid N', got {first!r}"
        shim.pid = int(first.split()[1])
        if before_go:
            before_go(shim.pid)
        shim.send("go\n")
        second = shim.read_line()
        assert second == "started", f"expected 'started', got {second!r}"
        return shim

    def run(self, *options: str, command: list[str]) -> Shim:
        """Start a container and wait for it to exit."""
        shim = self.start(*options, command=command)
        shim.wait()
        return shim

    def exec(self, pid: int, *options: str, command: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.binary), "exec", "--pid", str(pid), *options, "--", *command],
                              capture_output=True, text=True, timeout=STEP_TIMEOUT, env={})

    def cleanup(self) -> None:
        for shim in self.shims:
            if shim.pid and not process_gone(shim.pid):
                os.kill(shim.pid, signal.SIGKILL)
            if shim.process.poll() is None:
                shim.process.kill()
            shim.process.wait()
            for stream in (shim.process.stdin, shim.process.stdout):
                try:
                    stream.close()
                except OSError:
                    pass


def wait_until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + STEP_TIMEOUT
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)
