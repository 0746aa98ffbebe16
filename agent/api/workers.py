"""Request threads kept between connections, so a connection does not wait for a thread.

The API server serves each connection on a thread of its own (a log follower or an attach holds
one for as long as it lasts). Starting a thread for every connection cost ~0.5 ms of the accept
loop per request here (clone, the interpreter's thread set-up, and `Thread.start` waiting until
the new thread has run), three times per `run` through `ApiClient`, which closes each connection
(bench/README.md, "What is left"). A thread that finished its connection waits up to
IDLE_SECONDS for the next one; at most IDLE_WORKERS wait, the others end; a connection finding
none idle gets a new thread, as before, so nothing queues behind a long stream.
"""
from __future__ import annotations

import queue
import threading
from typing import Any, Callable

IDLE_WORKERS = 4
IDLE_SECONDS = 30.0

Job = tuple[Any, Any]          # (request, client_address)


class Workers:
    """Runs `serve(request, address)` for each submitted connection on a warm or new thread."""

    def __init__(self, serve: Callable[[Any, Any], None], *, idle_workers: int = IDLE_WORKERS,
                 idle_seconds: float = IDLE_SECONDS, name: str = "corral-api-request") -> None:
        self._serve = serve
        self._idle_workers = idle_workers
        self._idle_seconds = idle_seconds
        self._name = name
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0              # threads waiting on _jobs; a job is put only for one of them
        self._closed = False

    @property
    def idle(self) -> int:
        with self._lock:
            return self._idle

    def submit(self, request: Any, address: Any) -> None:
        with self._lock:
            if self._idle and not self._closed:
                self._idle -= 1
                self._jobs.put((request, address))
                return
        threading.Thread(target=self._run, args=((request, address),), name=self._name, daemon=True).start()

    def close(self) -> None:
        """Ends the waiting threads (the busy ones end after their connection)."""
        with self._lock:
            self._closed = True
            for _ in range(self._idle):
                self._jobs.put(None)
            self._idle = 0

    def _run(self, job: Job | None) -> None:
        while job is not None:
            self._serve(*job)
            job = self._next()

    def _next(self) -> Job | None:
        with self._lock:
            if self._closed or self._idle >= self._idle_workers:
                return None
            self._idle += 1
        try:
            return self._jobs.get(timeout=self._idle_seconds)
        except queue.Empty:
            with self._lock:
                # A job put between the timeout and this lock was counted against our idling.
                try:
                    return self._jobs.get_nowait()
                except queue.Empty:
                    self._idle -= 1
                    return None
