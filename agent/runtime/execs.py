"""`corral exec`: a command run in a live container through `corral-launch exec`."""
from __future__ import annotations

import os
from pathlib import Path

from agent.errors import KernelError
from agent.runtime.launch import exit_status, identity_args
from agent.runtime.service import ExecProcess


class LauncherExec(ExecProcess):
    def wait(self) -> int:
        _, status = os.waitpid(self.pid, 0)
        return exit_status(status)


def start_exec(launcher: Path, pid: int, command: list[str], env: list[str], workdir: str,
               procs_files: list[str], seccomp: Path | None = None, caps: int | None = None,
               user: str | None = None, group_add: list[str] | None = None,
               ulimits: list[str] | None = None) -> LauncherExec:
    argv = [str(launcher), "exec", "--pid", str(pid), "--workdir", workdir]
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
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    try:
        child = os.posix_spawn(argv[0], argv, {}, file_actions=[
            (os.POSIX_SPAWN_DUP2, devnull, 0),
            (os.POSIX_SPAWN_DUP2, out_write, 1),
            (os.POSIX_SPAWN_DUP2, err_write, 2)])
    except OSError as exc:
        for fd in (out_read, err_read):
            os.close(fd)
        raise KernelError(f"cannot start the launcher {launcher}: {exc.strerror}") from exc
    finally:
        for fd in (out_write, err_write, devnull):
            os.close(fd)
    return LauncherExec(pid=child, stdout=os.fdopen(out_read, "rb", buffering=0),
                        stderr=os.fdopen(err_read, "rb", buffering=0))
