"""Detaching exited containers from their networks off the exit path.

When a container's init exits, its network namespace dies and the kernel deletes the veth
pair itself (cleanup_net, a workqueue), holding the rtnl lock across RCU grace periods. A
`link del` of the host end meanwhile blocks on that lock until the pair is gone: 15-30 ms per
exit on this machine (bench/README.md, Bridge), which the exit path paid before telling the
waiters. So the exit path queues the detach here and answers at once; one thread deletes the
veth (waiting for the kernel as before), then frees the address, the endpoint record, the
published ports and the peers' hosts lines: the address is given again only once the old veth
is gone (it carries the same MAC, and an ARP answer from the dying namespace would move the
bridge's forwarding entry to the dead port).

Whoever needs what a pending detach still holds waits for it (`wait`): the same container's
next start, an attach asking for a fixed address or host ports, a network's removal. A daemon
killed with detaches queued leaves records of containers that are not running, which the next
start's reconcile frees (docs/networking.md).
"""
from __future__ import annotations

import logging
import queue
import threading
from typing import Callable

log = logging.getLogger(__name__)

# How long a waiter waits for one container's detach before going on without it; the kernel's
# clean-up takes tens of milliseconds, so this is only a guard against a wedged netlink call.
WAIT_LIMIT = 30.0


class Teardown:
    """Runs `detach(container_id)` for each submitted container, in order, on one thread."""

    def __init__(self, detach: Callable[[str], None]) -> None:
        self._detach = detach
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._pending: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, container_id: str) -> None:
        with self._lock:
            if container_id in self._pending:
                return
            inline = self._closed           # the daemon is stopping: done here and now
            if not inline:
                self._pending[container_id] = threading.Event()
                if self._thread is None:    # started on first use: a daemon without exits has none
                    self._thread = threading.Thread(target=self._run, name="network-teardown", daemon=True)
                    self._thread.start()
                self._queue.put(container_id)
        if inline:
            self._detach(container_id)

    def pending(self, container_id: str) -> bool:
        with self._lock:
            return container_id in self._pending

    def wait(self, container_id: str | None = None) -> None:
        """Until the detach of `container_id` (None: every one queued now) is done."""
        if threading.current_thread() is self._thread:
            return                          # the detach itself, refreshing hosts files
        with self._lock:
            if container_id is None:
                events = list(self._pending.values())
            else:
                found = self._pending.get(container_id)
                events = [found] if found is not None else []
        for event in events:
            if not event.wait(WAIT_LIMIT):
                log.warning("a network detach queued at a container's exit is still running after %.0fs",
                            WAIT_LIMIT)

    def close(self, timeout: float = 5.0) -> None:
        """Finish what is queued (the rest is reconcile's at the next start)."""
        with self._lock:
            thread, self._closed = self._thread, True
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)

    def _run(self) -> None:
        while (container_id := self._queue.get()) is not None:
            try:
                self._detach(container_id)
            except Exception:  # one container's clean-up must not stop the others'; reconcile retries
                log.exception("detaching exited container %s from its networks failed", container_id[:12])
            finally:
                with self._lock:
                    event = self._pending.pop(container_id)
                event.set()
