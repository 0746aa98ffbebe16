"""Starting processes through the C launcher (`corral-launch`), never by forking the daemon.

`os.posix_spawn` uses a vfork-style clone, so its cost does not grow with the daemon's memory
(forking a 137 MiB Python process costs 7-10 ms here; spawning the launcher about 2 ms). The
protocol with the launcher is described in docs/ARCHITECTURE.md.
"""
from __future__ import annotations

import os
import select
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from agent.errors import KernelError, LaunchError

# How long the launcher may take to report each step before the daemon gives up on it.
STEP_TIMEOUT = 15.0
# In the container's directory: the launcher's own messages (its stderr), made at each start
# before the launcher is spawned; reconcile reads its presence as "a start was attempted".
SHIM_LOG = "shim.log"


def find_launcher() -> Path:
    """The launcher next to the running Python (set-up builds it into the venv), else on PATH."""
    candidates = [os.environ.get("CORRAL_LAUNCHER"), str(Path(sys.executable).parent / "corral-launch"),
                  shutil.which("corral-launch")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    raise KernelError("the launcher corral-launch is not installed",
                      hint="run `make setup` (it builds launcher/corral-launch.c into the venv)")


@dataclass(frozen=True)
class LaunchRequest:
    """Everything the launcher needs for `corral-launch run`."""

    rootfs: Path
    command: list[str]
    hostname: str
    network: str                       # none | host | new | join:PATH (a namespace made ahead)
    env: list[str]
    workdir: str
    binds: list[str] = field(default_factory=list)   # SRC:DST[:ro]
    log: Path | None = None
    exit_file: Path | None = None
    seccomp: Path | None = None
    caps: int | None = None                          # capability mask; None: Docker's default set
    user: str | None = None                          # USER[:GROUP], resolved in the image's /etc
    read_only: bool = False
    privileged: bool = False
    tmpfs: list[str] = field(default_factory=list)   # DST:FLAGS:DATA
    # Users and environment (agent/runtime/environment.py).
    group_add: list[str] = field(default_factory=list)
    ulimits: list[str] = field(default_factory=list)  # NAME=SOFT:HARD
    init: bool = False
    userns: str | None = None                        # UID:GID:SIZE: a user namespace (launcher/userns.h)
    # Terminals and stdin (launcher/tty.h): the shim owns them and listens on attach_socket.
    tty: bool = False
    open_stdin: bool = False
    attach_socket: Path | None = None
    tty_size: tuple[int, int] | None = None          # rows, columns
    # The init's cgroup.procs files (launcher/place.h): the launcher places it between its clone
    # and the `pid` line, on cgroup2 by cloning it there (CLONE_INTO_CGROUP).
    cgroup_procs: list[str] = field(default_factory=list)
    # The cgroups are the last run's (a start again): written, never cloned into (place.h says
    # why: a cgroup once killed through cgroup.kill kills what is cloned into it).
    cgroup_reused: bool = False

    def argv(self, launcher: Path) -> list[str]:
        argv = [str(launcher), "run", "--rootfs", str(self.rootfs), "--hostname", self.hostname,
                "--net", self.network, "--workdir", self.workdir]
        for item in self.env:
            argv += ["--env", item]
        for item in self.binds:
            argv += ["--bind", item]
        if self.log:
            argv += ["--log", str(self.log)]
        if self.exit_file:
            argv += ["--exit-file", str(self.exit_file)]
        if self.seccomp:
            argv += ["--seccomp", str(self.seccomp)]
        if self.caps is not None:
            argv += ["--caps", hex(self.caps)]
        if self.user:
            argv += ["--user", self.user]
        if self.read_only:
            argv.append("--read-only")
        if self.privileged:
            argv.append("--privileged")
        for item in self.tmpfs:
            argv += ["--tmpfs", item]
        argv += identity_args(self.group_add, self.ulimits)
        if self.init:
            argv.append("--init")
        if self.userns:
            argv += ["--userns", self.userns]
        for item in self.cgroup_procs:
            argv += ["--cgroup-procs", item]
        if self.cgroup_reused:
            argv.append("--cgroup-write")
        argv += self._console_argv()
        return argv + ["--", *self.command]

    def _console_argv(self) -> list[str]:
        argv = ["--tty"] if self.tty else []
        if self.open_stdin:
            argv.append("--stdin")
        if self.attach_socket:
            argv += ["--attach-socket", str(self.attach_socket)]
        if self.tty_size:
            argv += ["--tty-size", f"{self.tty_size[0]},{self.tty_size[1]}"]
        return argv


def identity_args(group_add: list[str], ulimits: list[str]) -> list[str]:
    """`--group-add` and `--ulimit`, which `run` and `exec` share."""
    argv = []
    for group in group_add:
        argv += ["--group-add", group]
    for limit in ulimits:
        argv += ["--ulimit", limit]
    return argv


@dataclass(frozen=True)
class Launched:
    shim_pid: int
    pid: int


class _Line:
    """Reads protocol lines from the launcher's status pipe with a timeout."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = b""

    def read(self, what: str) -> str:
        while b"\n" not in self.buffer:
            ready, _, _ = select.select([self.fd], [], [], STEP_TIMEOUT)
            if not ready:
                raise LaunchError(f"the launcher did not report {what} within {STEP_TIMEOUT:.0f}s")
            chunk = os.read(self.fd, 4096)
            if not chunk:
                raise LaunchError(f"the launcher exited before reporting {what}")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode(errors="replace")


def launch(launcher: Path, request: LaunchRequest, shim_log: Path,
           before_go: Callable[[int], None]) -> Launched:
    """Spawn the shim (which places the init in `request.cgroup_procs` before it reports the
    pid), let `before_go(pid)` announce it, then let it exec.

    On any failure the shim and its child are gone when this raises.
    """
    control_read, control_write = os.pipe()
    status_read, status_write = os.pipe()
    log_fd = os.open(shim_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
    try:
        shim = os.posix_spawn(
            str(launcher), request.argv(launcher), {},
            file_actions=[(os.POSIX_SPAWN_DUP2, control_read, 0),
                          (os.POSIX_SPAWN_DUP2, status_write, 1),
                          (os.POSIX_SPAWN_DUP2, log_fd, 2)],
            setsid=True)
    except OSError as exc:
        for fd in (control_read, control_write, status_read, status_write, log_fd):
            os.close(fd)
        raise KernelError(f"cannot start the launcher {launcher}: {exc.strerror}") from exc
    for fd in (control_read, status_write, log_fd):
        os.close(fd)
    lines = _Line(status_read)
    try:
        first = lines.read("the container's pid")
        if first.startswith("error "):
            raise LaunchError(first[len("error "):])
        if not first.startswith("pid "):
            raise LaunchError(f"the launcher said {first!r} instead of the container's pid")
        pid = int(first.split()[1])
        before_go(pid)
        os.write(control_write, b"go\n")
        second = lines.read("the start of the command")
        if second.startswith("error "):
            raise LaunchError(second[len("error "):])
        if second != "started":
            raise LaunchError(f"the launcher said {second!r} instead of 'started'")
        return Launched(shim_pid=shim, pid=pid)
    except BaseException:
        try:
            os.write(control_write, b"abort\n")
        except OSError:
            pass
        _reap(shim)
        raise
    finally:
        os.close(control_write)
        os.close(status_read)


def _reap(pid: int) -> None:
    """Wait for a failed shim (it kills its child on abort), killing it if it lingers."""
    for _ in range(200):
        done, _status = os.waitpid(pid, os.WNOHANG)
        if done:
            return
        select.select([], [], [], 0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)


def exit_status(status: int) -> int:
    """A wait status as a shell exit code: 128+signal for a killed process."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)
