"""One run of a health check: the command started in the container through the launcher's
exec (agent/runtime/execs.py), its output read (the first MAX_OUTPUT bytes kept), and killed
when it outlives its timeout."""
from __future__ import annotations

import os
import selectors
import signal
import threading
import time
from typing import Callable

from agent.health.model import MAX_OUTPUT
from agent.health.state import NO_EXIT_CODE, CheckResult
from agent.runtime.service import ExecProcess

_READ = 65536


def run_check(start: Callable[[], ExecProcess], timeout: float, *, clock: Callable[[], float] = time.time,
              proc_root: str = "/proc") -> CheckResult:
    """Start the check with `start()` and wait for it at most `timeout` seconds."""
    began = clock()
    try:
        process = start()
    except Exception as error:  # noqa: BLE001 - a check that cannot start is a failed check, with why
        return CheckResult(began, clock(), NO_EXIT_CODE, f"cannot run the health check: {error}")
    deadline = time.monotonic() + timeout
    output = bytearray()
    selector = selectors.DefaultSelector()
    try:
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                selector.register(pipe, selectors.EVENT_READ)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                _kill_command(process, proc_root)
                return CheckResult(began, clock(), NO_EXIT_CODE,
                                   f"Health check exceeded timeout ({timeout:g}s)")
            for key, _ in selector.select(remaining):
                data = os.read(key.fd, _READ)
                if not data:
                    selector.unregister(key.fileobj)
                elif len(output) < MAX_OUTPUT:
                    output += data[:MAX_OUTPUT - len(output)]
        code = process.wait()
    finally:
        selector.close()
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()
    return CheckResult(began, clock(), code, output.decode(errors="replace"))


def _kill_command(process: ExecProcess, proc_root: str, grace: float = 2.0) -> None:
    """SIGKILL the command and everything it started, parents first so none forks again, and
    let the launcher reap its child and exit (killed, it would leave a zombie to the
    container's pid 1, which reaps nothing unless it is `--init`). The launcher itself is
    killed only when it has not exited after `grace` seconds."""
    for pid in _descendants(process.pid, proc_root):
        _sigkill(pid)
    timer = threading.Timer(grace, _sigkill, (process.pid,))
    timer.start()
    try:
        process.wait()
    finally:
        timer.cancel()


def _sigkill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _descendants(pid: int, proc_root: str) -> list[int]:
    found: list[int] = []
    pending = [pid]
    while pending and len(found) < 4096:
        parent = pending.pop(0)
        try:
            tasks = os.listdir(f"{proc_root}/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"{proc_root}/{parent}/task/{task}/children") as handle:
                    children = [int(child) for child in handle.read().split()]
            except OSError:
                continue
            found += children
            pending += children
    return found
