"""The fsyncs of durable state saves, in one thread that outlives each save.

`run` overlaps the fsyncs of its create's durable save (an ext4 journal commit, 1-3 ms under
load) with the launch and answers only once they are done (agent/runtime/state.py). A thread of
its own per save cost the request thread a `Thread.start` (~0.2-0.4 ms: it waits until the new
thread runs) on the launch's critical path. Here one thread takes the saves from a queue: handing
one over is a queue put. It starts at the first save and ends after IDLE_SECONDS without one (a
daemon that launches nothing holds no thread for it; the next save starts it again).

Saves queued together are synced together, in order: with ext4's ordered journal the first fsync
commits what the others wrote, so a burst of creates shares commits as it did with a thread each.
"""
from __future__ import annotations

import os
import queue
import threading

from agent.errors import KernelError

IDLE_SECONDS = 30.0


class PendingSync:
    """The fsyncs of one durable save: the file's data, then the directories naming it. It holds
    open descriptors, not paths (a --rm container may exit and go to the trash first) and closes
    them once synced."""

    def __init__(self, fds: tuple[int, ...]) -> None:
        self._fds = fds
        self._error: OSError | None = None
        self._done = threading.Event()

    def run(self) -> None:
        """In the syncer's thread."""
        try:
            for index, fd in enumerate(self._fds):
                if index == 0:
                    os.fdatasync(fd)     # the state file: its data (the entry is the directories')
                else:
                    os.fsync(fd)
        except OSError as exc:
            self._error = exc
        finally:
            for fd in self._fds:
                os.close(fd)
            self._done.set()

    def wait(self) -> None:
        """Until the save is durable; KernelError when it could not be made so."""
        self._done.wait()
        if self._error is not None:
            raise KernelError(f"saving container state durably: {self._error.strerror}")


class StateSyncer:
    """The one thread that runs PendingSyncs, in the order they were submitted."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[PendingSync] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self.thread: threading.Thread | None = None     # while it runs

    def submit(self, fds: tuple[int, ...]) -> PendingSync:
        """Sync `fds` (the file first, then its directories) in the syncer's thread."""
        pending = PendingSync(fds)
        with self._lock:
            self._queue.put(pending)
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="state-sync", daemon=True)
                self.thread.start()
        return pending

    def _run(self) -> None:
        while True:
            try:
                pending = self._queue.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with self._lock:          # a submit meanwhile finds the thread still running
                    if self._queue.empty():
                        self.thread = None
                        return
                continue
            pending.run()
