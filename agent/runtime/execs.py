"""`corral exec`: a command run in a live container through `corral-launch exec`."""
from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import IO

from agent.errors import KernelError
from agent.runtime.launch import STEP_TIMEOUT, exit_status, identity_args
from agent.runtime.service import ExecProcess


class LauncherExec(ExecProcess):
    def wait(self) -> int:
        _, status = os.waitpid(self.pid, 0)
        return exit_status(status)


def start_exec(launcher: Path, pid: int, command: list[str], env: list[str], workdir: str,
               procs_files: list[str], seccomp: Path | None = None, caps: int | None = None,
               user: str | None = None, group_add: list[str] | None = None,
               ulimits: list[str] | None = None, *, tty: bool = False, stdin: bool = False,
               console_size: tuple[int, int] | None = None) -> LauncherExec:
    argv = [str(launcher), "exec", "--pid", str(pid), "--workdir", workdir]
    if tty:
        argv.append("--tty")
        if console_size:
            argv += ["--tty-size", f"{console_size[0]},{console_size[1]}"]
    if caps is not None:
        argv += ["--caps", hex(caps)]
    if user:
        argv += ["--user", user]
    argv += identity_args(group_add or [], ulimits or [])
    for item in env:
        argv += ["--env", item]
    for item in procs_files:
        argv += ["--cgroup-procs", item]
    if seccomp is not None:
        argv += ["--seccomp", str(seccomp)]
    argv += ["--", *command]
    # With a terminal, fd 1 is a socket the launcher sends the terminal's master over.
    if tty:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        out_read, out_write = ours.detach(), theirs.detach()
    else:
        out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    in_read, in_write = os.pipe() if stdin and not tty else (os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC), -1)
    try:
        child = os.posix_spawn(argv[0], argv, {}, file_actions=[
            (os.POSIX_SPAWN_DUP2, in_read, 0),
            (os.POSIX_SPAWN_DUP2, out_write, 1),
            (os.POSIX_SPAWN_DUP2, err_write, 2)])
    except OSError as exc:
        for fd in (out_read, err_read, in_write):
            if fd >= 0:
                os.close(fd)
        raise KernelError(f"cannot start the launcher {launcher}: {exc.strerror}") from exc
    finally:
        for fd in (out_write, err_write, in_read):
            os.close(fd)
    stdout = _terminal_of(out_read) if tty else os.fdopen(out_read, "rb", buffering=0)
    return LauncherExec(pid=child, stdout=stdout, stderr=os.fdopen(err_read, "rb", buffering=0),
                        stdin=os.fdopen(in_write, "wb", buffering=0) if in_write >= 0 else None, tty=tty)


def _terminal_of(fd: int) -> IO[bytes] | None:
    """The master the launcher sends on its fd 1; None when it failed first (its stderr says
    why and its exit code is 125-127)."""
    with socket.socket(fileno=fd) as sock:
        sock.settimeout(STEP_TIMEOUT)
        try:
            _, fds, _, _ = socket.recv_fds(sock, 1, 1)
        except OSError:
            return None
    for extra in fds[1:]:
        os.close(extra)
    return os.fdopen(fds[0], "r+b", buffering=0) if fds else None
