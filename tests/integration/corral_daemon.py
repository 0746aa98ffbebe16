"""A real Corral daemon for integration tests: its own root, socket and metrics port.

Containers are driven through the real CLI, as a user would. Everything the daemon created is
checked for and removed at the end, even when a test fails.
"""
from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from agent.api.client import ApiClient

VENV_BIN = Path(sys.executable).parent
CORRAL = str(VENV_BIN / "corral")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class CorralDaemon:
    def __init__(self, root: Path, *extra: str) -> None:
        self.root = root
        self.socket = root / "corral.sock"
        self.metrics_port = free_port()
        self.extra = list(extra)
        self.process: subprocess.Popen | None = None
        self.log = root / "daemon.log"

    @property
    def docker_socket(self) -> Path:
        """Docker's Engine API (agent/dockerapi): docker.sock beside the API socket."""
        return self.root / "docker.sock"

    @property
    def env(self) -> dict:
        return {**os.environ, "CORRAL_HOST": f"unix://{self.socket}"}

    def start(self, timeout: float = 60.0) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        # --config none: a host's /etc/corral/corral.yaml must not change what tests run.
        args = [CORRAL, "daemon", "--config", "none", "--root", str(self.root), "--socket", str(self.socket),
                "--metrics-addr", f"127.0.0.1:{self.metrics_port}", *self.extra]
        self.process = subprocess.Popen(args, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.process.returncode}:\n{self.log.read_text()}")
            if self.socket.exists() and self.cli("version", check=False).returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"daemon did not come up in {timeout}s:\n{self.log.read_text()}")

    def stop(self) -> int:
        if self.process is None:
            return 0
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self.process = None
        return code

    def kill(self) -> None:
        """SIGKILL the daemon, as a crash would; `start()` brings it back on the same root."""
        assert self.process is not None, "the daemon is not running"
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.process = None

    def client(self, timeout: float = 30) -> ApiClient:
        return ApiClient(f"unix://{self.socket}", timeout=timeout)

    def cli(self, *args: str, check: bool = True, timeout: float = 60, input: bytes | None = None
            ) -> subprocess.CompletedProcess:
        result = subprocess.run([CORRAL, *args], env=self.env, capture_output=True, timeout=timeout,
                                input=input)
        if check and result.returncode != 0:
            raise AssertionError(f"corral {' '.join(args)} exited {result.returncode}:\n"
                                 f"stdout: {result.stdout.decode(errors='replace')}\n"
                                 f"stderr: {result.stderr.decode(errors='replace')}")
        return result

    def cli_command(self) -> list[str]:
        return [CORRAL]

    def out(self, *args: str) -> str:
        return self.cli(*args).stdout.decode().strip()

    def inspect(self, ref: str) -> dict:
        """`corral inspect REF`'s one document."""
        return json.loads(self.out("inspect", ref))[0]

    def remove_all(self) -> None:
        ids = self.cli("ps", "-a", "-q", check=False).stdout.decode().split()
        if ids:
            self.cli("rm", "-f", *ids, check=False)


def until(predicate, what: str, timeout: float = 60.0, interval: float = 0.05):
    """`predicate()`'s first true value; fails naming `what` if none comes in `timeout` seconds
    (a bound for what never happens, not a speed check)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"never happened in {timeout:.0f}s: {what}")


def rootfs_tarball(path: Path, applets: tuple[str, ...] = (), files: dict[str, str] | None = None) -> Path:
    """A rootfs tarball as `docker export` writes it: the host's busybox-static, `applets`
    linked to it in /bin, `files` (path -> text); gzipped when `path` ends in .gz."""
    import tarfile
    root = path.parent / (path.name + ".rootfs")
    (root / "bin").mkdir(parents=True)
    shutil.copy2("/bin/busybox", root / "bin" / "busybox")
    for applet in applets:
        os.symlink("busybox", root / "bin" / applet)
    for name, text in (files or {}).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    with tarfile.open(path, "w:gz" if path.name.endswith(".gz") else "w") as archive:
        for entry in sorted(root.rglob("*")):
            archive.add(entry, arcname=str(entry.relative_to(root)), recursive=False)
    return path


@contextlib.contextmanager
def running_daemon(*extra: str):
    """A started daemon with its own root under /var/tmp; every container it made, the daemon
    and the root are removed afterwards, even when the test fails. CORRAL_TEST_DAEMON_ARGS adds
    daemon flags, e.g. "--syscall-latency" or "--no-probes"."""
    if os.geteuid() != 0:
        import pytest
        pytest.skip("needs root: runs a real daemon")
    root = Path(tempfile.mkdtemp(prefix="corral-it-", dir="/var/tmp"))
    instance = CorralDaemon(root, *extra, *os.environ.get("CORRAL_TEST_DAEMON_ARGS", "").split())
    instance.start()
    try:
        yield instance
    finally:
        try:
            instance.remove_all()
        finally:
            instance.stop()
            shutil.rmtree(root, ignore_errors=True)


def leftovers(container_id: str) -> list[str]:
    """Everything a container may leave on the host: cgroup dirs, mounts, state dirs."""
    found = [path for path in glob.glob(f"/sys/fs/cgroup/*/corral/{container_id}")]
    with open("/proc/self/mountinfo") as handle:
        found += [line.split()[4] for line in handle if container_id in line]
    return found
