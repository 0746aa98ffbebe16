"""The API server's warm request threads (agent/api/workers.py): a finished thread takes the next
connection, at most IDLE_WORKERS wait, a connection finding none idle gets its own thread (so a
long stream never holds up another), idle threads end after their wait and at close."""
from __future__ import annotations

import threading

from agent.api.workers import Workers


def wait_for(predicate, timeout: float = 5.0) -> bool:
    done = threading.Event()
    for _ in range(int(timeout / 0.005)):
        if predicate():
            return True
        done.wait(0.005)
    return predicate()


def test_a_finished_thread_serves_the_next_connection():
    served: list[tuple[str, str]] = []
    workers = Workers(lambda request, address: served.append((request, threading.current_thread().name)),
                      name="t-worker")
    workers.submit("a", None)
    assert wait_for(lambda: workers.idle == 1)
    first_threads = threading.active_count()
    workers.submit("b", None)
    assert wait_for(lambda: len(served) == 2 and workers.idle == 1)
    assert threading.active_count() == first_threads           # no new thread for "b"
    assert [request for request, _ in served] == ["a", "b"]
    workers.close()
    assert wait_for(lambda: not any(t.name == "t-worker" for t in threading.enumerate()))


def test_a_busy_thread_does_not_hold_up_the_next_connection_and_idlers_are_capped():
    release = threading.Event()
    started: list[str] = []

    def serve(request, address):
        started.append(request)
        if request.startswith("long"):
            release.wait(5)

    workers = Workers(serve, idle_workers=2, name="t-cap")
    for name in ("long-1", "long-2", "long-3"):
        workers.submit(name, None)
    workers.submit("short", None)                   # none idle: a thread of its own, at once
    assert wait_for(lambda: "short" in started)
    release.set()
    assert wait_for(lambda: workers.idle == 2)      # four finished, two stay
    assert wait_for(lambda: sum(t.name == "t-cap" for t in threading.enumerate()) == 2)
    workers.close()
    assert wait_for(lambda: not any(t.name == "t-cap" for t in threading.enumerate()))


def test_an_idle_thread_ends_after_its_wait():
    workers = Workers(lambda request, address: None, idle_seconds=0.05, name="t-idle")
    workers.submit("a", None)
    assert wait_for(lambda: not any(t.name == "t-idle" for t in threading.enumerate()))
    assert workers.idle == 0
    workers.submit("b", None)                       # still served, on a new thread
    assert wait_for(lambda: not any(t.name == "t-idle" for t in threading.enumerate()))
