"""The structured event log: container lifecycle, OOM kills, probe and policy events.

Events are appended as JSON lines to a file under the daemon's root (so `corral events --since`
survives restarts) and handed to live subscribers (`corral events --follow`). A bounded ring
keeps the recent ones in memory so a query does not read the whole file.
"""
from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

log = logging.getLogger("corral.events")


@dataclass(frozen=True)
class Event:
    """One thing that happened: `type` is container|image|oom|probe|policy, `action` the verb."""

    type: str
    action: str
    id: str = ""                 # container or object id
    name: str = ""               # container or object name
    time: float = field(default_factory=time.time)
    attributes: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Event:
        known = {"type", "action", "id", "name", "time", "attributes"}
        return cls(**{k: v for k, v in data.items() if k in known})


class EventLog:
    """Append-only event log with live subscribers; safe to use from several threads."""

    def __init__(self, path: Path, *, memory: int = 4096) -> None:
        self._path = Path(path)
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._recent: deque[Event] = deque(maxlen=memory)
        self._subscribers: list[queue.Queue] = []
        self._listeners: list[Callable[[Event], None]] = []
        self._load_tail(memory)

    def _load_tail(self, count: int) -> None:
        try:
            with open(self._path, "rb") as handle:
                lines = deque(handle, maxlen=count)
        except FileNotFoundError:
            return
        for line in lines:
            try:
                self._recent.append(Event.from_dict(json.loads(line)))
            except (ValueError, TypeError):
                continue  # a torn last line after a crash is not worth failing start-up for

    def emit(self, event: Event) -> None:
        line = json.dumps(event.to_dict(), separators=(",", ":")) + "\n"
        with self._lock:
            with open(self._path, "a", encoding="utf-8") as handle:
                handle.write(line)
            self._recent.append(event)
            subscribers = list(self._subscribers)
            listeners = list(self._listeners)
        for subscriber in subscribers:
            try:
                subscriber.put_nowait(event)
            except queue.Full:
                pass  # a slow follower loses events rather than slowing the daemon
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # noqa: BLE001 - a broken listener must not fail the emitter
                log.exception("event listener %r failed on %s/%s", listener, event.type, event.action)

    def subscribe(self, listener: Callable[[Event], None]) -> Callable[[], None]:
        """Call `listener(event)` for every event from now on, in the emitting thread (so it
        must be quick and must not emit); returns the function that unsubscribes it."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)
        return unsubscribe

    def since(self, timestamp: float = 0.0) -> list[Event]:
        with self._lock:
            return [event for event in self._recent if event.time >= timestamp]

    def follow(self, timestamp: float | None = None, *, stop: threading.Event | None = None,
               poll: float = 0.5) -> Iterator[Event]:
        """Yield past events since `timestamp` (if given), then live ones until `stop` is set."""
        subscriber: queue.Queue = queue.Queue(maxsize=10000)
        with self._lock:
            self._subscribers.append(subscriber)
            past = [e for e in self._recent if timestamp is not None and e.time >= timestamp]
        try:
            yield from past
            while stop is None or not stop.is_set():
                try:
                    yield subscriber.get(timeout=poll)
                except queue.Empty:
                    continue
        finally:
            with self._lock:
                self._subscribers.remove(subscriber)

    def close(self) -> None:
        with self._lock:
            self._subscribers.clear()
            self._listeners.clear()


