"""A small pool of prepared network namespaces (prepared.py), refilled off the start's path.

`take` hands out a ready item or None (the pool is empty or off: the start makes its namespace
as before); `refill`, called once that start is done, wakes the refill thread, which makes items
until the pool holds `size` again: making a namespace and a veth takes the kernel's rtnl lock and
~5 ms of a CPU, which the start it would compete with does not wait for that way.
Nothing ever comes back: an item is one container's. `close` (the daemon's stop) lets go of
every item; the kernel deletes them. Size 0 turns the pool off: no thread, `take` is None.
"""
from __future__ import annotations

import collections
import logging
import os
import threading
from typing import Callable, Generic, Protocol, TypeVar

log = logging.getLogger(__name__)


class Item(Protocol):
    def close(self) -> None: ...


T = TypeVar("T", bound=Item)


class NamespacePool(Generic[T]):
    """Up to `size` items from `make`, made by one thread of its own (started by `start` or the
    first `take`). A failed `make` is logged and retried at the next `refill`, not in a loop."""

    def __init__(self, size: int, make: Callable[[], T], before_fill: Callable[[], None] | None = None) -> None:
        if size < 0:
            raise ValueError(f"netns pool size {size}: expected 0 (off) or more")
        self.size = size
        self._make = make
        self._before_fill = before_fill       # once, in the thread, before the first item
        self._items: collections.deque[T] = collections.deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.made = 0           # items made since start (the tests' view of the refill)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def start(self, delay: float = 0.0) -> None:
        """Begin filling, after `delay` seconds unless a start needs it sooner (the daemon calls
        this once reconcile removed a previous run's items, with a delay: its own start to
        ready comes first)."""
        with self._lock:
            if self.size == 0 or self._closed or self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, args=(delay,), name="netns-pool", daemon=True)
            self._thread.start()

    def take(self) -> T | None:
        """A ready item, or None; the first take starts the pool (a manager without reconcile)."""
        if self.size == 0:
            return None
        with self._lock:
            item = self._items.popleft() if self._items else None
        self.start()
        return item

    def refill(self) -> None:
        """Make up for what was taken (after the start that took it: see the module docstring)."""
        if self.size:
            self._wake.set()

    def close(self, timeout: float = 5.0) -> None:
        with self._lock:
            self._closed = True
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join(timeout)
        with self._lock:
            items, self._items = list(self._items), collections.deque()
        for item in items:
            item.close()

    def _run(self, delay: float) -> None:
        try:
            # Behind the starts it serves: the kernel's part of a refill yields to them.
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except OSError:
            pass
        self._wake.wait(delay)          # a refill or close ends it early
        self._wake.set()
        if self._before_fill is not None:
            try:
                self._before_fill()
            except Exception:  # what it leaves, the kernel removes with the namespaces
                log.exception("removing the previous run's pool veths failed")
        while True:
            self._wake.wait()
            self._wake.clear()
            while True:
                with self._lock:
                    if self._closed:
                        return
                    if len(self._items) >= self.size:
                        break
                try:
                    item = self._make()
                except Exception as exc:  # the start falls back to a namespace of its own
                    log.warning("cannot prepare a network namespace for the pool: %s; starts make their own "
                                "until the next try", exc)
                    break
                with self._lock:
                    if not self._closed:
                        self._items.append(item)
                        self.made += 1
                        continue
                item.close()
                return
