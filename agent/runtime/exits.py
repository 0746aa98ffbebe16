"""Noticing that a container's shim has exited, without a thread per container.

Each shim gets a pidfd (`os.pidfd_open`, Linux 5.3+); one thread polls them all. A pidfd works
for shims the daemon spawned and for those adopted after a daemon restart alike, so the same
path reports every exit. The shim writes the exit code to a file before it exits.
"""
from __future__ import annotations

import logging
import os
import select
import threading
from typing import Callable

log = logging.getLogger(__name__)


class ExitWatcher:
    """Calls `on_exit(key)` once the process watched under `key` has exited."""

    def __init__(self, on_exit: Callable[[str], None]) -> None:
        self._on_exit = on_exit
        self._poll = select.poll()
        self._by_fd: dict[int, tuple[str, int]] = {}
        self._lock = threading.Lock()
        wake_read, self._wake_write = os.pipe()
        self._wake_read = wake_read
        self._poll.register(wake_read, select.POLLIN)
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="exit-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def watch(self, key: str, pid: int) -> bool:
        """Start watching `pid`; False when it is already gone (the caller handles the exit)."""
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            return False
        with self._lock:
            self._by_fd[fd] = (key, pid)
            self._poll.register(fd, select.POLLIN)
        os.write(self._wake_write, b"x")
        return True

    def _run(self) -> None:
        while not self._stopped:
            for fd, _event in self._poll.poll():
                if fd == self._wake_read:
                    os.read(fd, 4096)
                    continue
                with self._lock:
                    key, pid = self._by_fd.pop(fd)
                    self._poll.unregister(fd)
                os.close(fd)
                _reap_if_child(pid)
                try:
                    self._on_exit(key)
                except Exception:  # one container's bookkeeping must not stop the others'
                    log.exception("handling the exit of %s failed", key)

    def stop(self) -> None:
        self._stopped = True
        os.write(self._wake_write, b"x")
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        with self._lock:
            for fd in self._by_fd:
                os.close(fd)
            self._by_fd.clear()
        os.close(self._wake_read)
        os.close(self._wake_write)


def _reap_if_child(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # adopted after a restart: init reaps it
