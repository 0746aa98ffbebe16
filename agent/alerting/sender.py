"""One target's sender: a bounded inbox, the alerts in flight, and the thread that posts them.

`fire()`, `resolve()`, `notify()` and `resolve_container()` only put a message on the inbox
(never blocking: when it is full the message is dropped and counted), so enforcement never
waits for the network. The sender thread keeps:

- the active alerts, re-sent every `resend_interval` with `endsAt` a few intervals ahead, so
  Alertmanager keeps them while the agent lives and expires them if it dies (what Prometheus
  does);
- the finished ones (resolved, or one-shot events such as an OOM kill, sent with an `endsAt`
  of their own), sent until the target has taken them, then forgotten.

A failed post keeps everything pending and retries after a backoff that doubles up to
`backoff_max`; the first success resets it. While a target is down, finished alerts wait up to
`max_pending` (the oldest are dropped and counted beyond that).
"""
from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Protocol

from agent.alerting.payload import to_postable
from agent.errors import InvalidArgument
from agent.policy.actions import Alert

log = logging.getLogger("corral.alerting")


@dataclass(frozen=True)
class SenderOptions:
    """How a sender queues, re-sends and retries."""

    queue_size: int = 1000              # inbox capacity; beyond it fire()/resolve() drop
    resend_interval: float = 30.0       # active alerts are re-sent this often
    expiry_intervals: float = 4.0       # endsAt of an active alert: this many intervals ahead
    backoff_initial: float = 0.5        # first retry after a failed post
    backoff_max: float = 30.0           # retries never wait longer than this
    batch_size: int = 500               # alerts per POST
    max_pending: int = 10000            # finished alerts kept for a target that is down
    event_hold: float = 300.0           # how long a one-shot alert (kill, OOM) stays active

    def __post_init__(self) -> None:
        for name in ("queue_size", "batch_size", "max_pending"):
            if getattr(self, name) < 1:
                raise InvalidArgument(f"alerting {name} {getattr(self, name)!r}: must be at least 1")
        for name in ("resend_interval", "expiry_intervals", "backoff_initial", "backoff_max", "event_hold"):
            if not getattr(self, name) > 0:
                raise InvalidArgument(f"alerting {name} {getattr(self, name)!r}: must be above 0")


class Target(Protocol):
    """Where alerts go; `post` raises AlertDeliveryError (or anything) when they did not."""

    kind: str      # "alertmanager" | "webhook"

    @property
    def name(self) -> str: ...

    def post(self, alerts: list[dict]) -> None: ...


@dataclass(frozen=True)
class SenderStats:
    target: str
    kind: str
    sent_ok: int          # alerts a post delivered
    sent_error: int       # alerts in posts that failed (each retry counts again)
    dropped: int          # messages the full inbox refused, and finished alerts given up on
    queue_length: int
    active: int


@dataclass
class _Entry:
    alert: Alert
    starts_at: float
    ends_at: float | None = None     # None while active
    image: str | None = None         # looked up once, in the sender thread


_WAKE = ("wake", None, None)
# Keys resolved lately, and images of containers seen lately: a second resolve of the same alert
# (the container's removal, then the policy's own resolution) is not sent again, and an alert
# about a container removed meanwhile still names its image.
_REMEMBERED = 4096


class AlertSender:
    """An AlertSink for one target; `start()` it, `stop()` it."""

    def __init__(self, target: Target, options: SenderOptions | None = None, *,
                 host: str | None = None, image_of: Callable[[str], str] | None = None,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.target = target
        self.options = options or SenderOptions()
        self.host = host or socket.gethostname()
        self._image_of = image_of
        self._clock = clock
        self._monotonic = monotonic
        self._inbox: queue.Queue = queue.Queue(maxsize=self.options.queue_size)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._counts_lock = threading.Lock()
        self._sent_ok = self._sent_error = self._dropped = 0
        # Owned by the sender thread alone.
        self._active: dict[str, _Entry] = {}
        self._dirty: set[str] = set()               # active keys to send at the next attempt
        self._finished: dict[str, _Entry] = {}      # resolved / one-shot, until delivered
        self._resolved: OrderedDict[str, None] = OrderedDict()
        self._images: OrderedDict[str, str] = OrderedDict()
        self._next_attempt = 0.0
        self._next_resend = 0.0
        self._backoff = 0.0
        self._failing = False

    # --- the AlertSink side: called from enforcement, never blocks --------------------------

    def fire(self, alert: Alert) -> None:
        self._put(("fire", alert, None))

    def resolve(self, alert: Alert) -> None:
        self._put(("resolve", alert, None))

    def notify(self, alert: Alert, hold: float | None = None) -> None:
        """A one-shot alert (a kill, an OOM kill): active for `hold` seconds, never re-sent."""
        self._put(("event", alert, hold if hold is not None else self.options.event_hold))

    def resolve_container(self, container_id: str, at: float | None = None) -> None:
        """The container is gone: every alert still active for it is over."""
        self._put(("container", container_id, at if at is not None else self._clock()))

    def _put(self, message: tuple) -> None:
        try:
            self._inbox.put_nowait(message)
        except queue.Full:
            with self._counts_lock:
                self._dropped += 1

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=f"alerts-{self.target.kind}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop after one last attempt to deliver what is pending. Active alerts are not
        resolved: Alertmanager expires them at their endsAt, as it does Prometheus' alerts."""
        if self._thread is None:
            return
        self._stopping.set()
        try:
            self._inbox.put_nowait(_WAKE)
        except queue.Full:
            pass                                # the thread is busy with the queue and sees the flag
        self._thread.join(timeout if timeout is not None else getattr(self.target, "timeout", 5.0) + 2.0)
        self._thread = None

    def stats(self) -> SenderStats:
        with self._counts_lock:
            ok, error, dropped = self._sent_ok, self._sent_error, self._dropped
        return SenderStats(target=self.target.name, kind=self.target.kind, sent_ok=ok, sent_error=error,
                           dropped=dropped, queue_length=self._inbox.qsize(), active=len(self._active))

    # --- the sender thread ---------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                message = self._inbox.get(timeout=self._wait())
            except queue.Empty:
                message = None
            while message is not None:
                self._apply(message)
                try:
                    message = self._inbox.get_nowait()
                except queue.Empty:
                    message = None
            if self._stopping.is_set():
                break
            self._send_if_due()
        if self._dirty or self._finished:
            self._attempt()                      # last chance for resolutions before shutdown

    def _wait(self) -> float:
        """Seconds until something is due; at most 1 s, so a stop is never missed for long."""
        now = self._monotonic()
        due = []
        if self._dirty or self._finished:
            due.append(self._next_attempt - now)
        if self._active:
            due.append(self._next_resend - now)
        return min([1.0] + [max(0.0, d) for d in due])

    def _apply(self, message: tuple) -> None:
        verb, subject, extra = message
        if verb == "fire":
            self._fire(subject)
        elif verb == "resolve":
            self._resolve(subject.key, subject.time, subject)
        elif verb == "event":
            self._finished.pop(subject.key, None)
            self._finish(subject.key, _Entry(subject, starts_at=subject.time, ends_at=subject.time + extra))
        elif verb == "container":
            for key in [k for k, e in self._active.items() if e.alert.container_id == subject]:
                self._resolve(key, extra, None)

    def _fire(self, alert: Alert) -> None:
        self._finished.pop(alert.key, None)
        self._resolved.pop(alert.key, None)
        entry = self._active.get(alert.key)
        if entry is None:
            if not self._active:
                self._next_resend = self._monotonic() + self.options.resend_interval
            self._active[alert.key] = _Entry(alert, starts_at=alert.time)
        else:
            entry.alert = alert                  # same labels; the newer value and summary
        self._dirty.add(alert.key)

    def _resolve(self, key: str, at: float, alert: Alert | None) -> None:
        entry = self._active.pop(key, None)
        self._dirty.discard(key)
        if entry is None:
            if alert is None or key in self._resolved:
                return
            # Fired before a restart, or its fire was dropped: resolving is still right.
            entry = _Entry(alert, starts_at=alert.time)
        entry.ends_at = max(at, entry.starts_at)
        self._finish(key, entry)
        self._resolved[key] = None
        while len(self._resolved) > _REMEMBERED:
            self._resolved.popitem(last=False)

    def _finish(self, key: str, entry: _Entry) -> None:
        self._finished[key] = entry
        while len(self._finished) > self.options.max_pending:
            del self._finished[next(iter(self._finished))]
            with self._counts_lock:
                self._dropped += 1

    def _send_if_due(self) -> None:
        now = self._monotonic()
        if self._active and now >= self._next_resend:
            self._dirty.update(self._active)
            self._next_resend = now + self.options.resend_interval
        if (self._dirty or self._finished) and now >= self._next_attempt:
            self._attempt()

    def _attempt(self) -> None:
        now = self._clock()
        ends_active = now + self.options.resend_interval * self.options.expiry_intervals
        entries = [self._active[key] for key in self._dirty] + list(self._finished.values())
        payloads = [self._payload(entry, ends_active) for entry in entries]
        size = self.options.batch_size
        for start in range(0, len(payloads), size):
            chunk = payloads[start:start + size]
            try:
                self.target.post(chunk)
            except Exception as exc:  # noqa: BLE001 - whatever failed, the alerts are retried
                with self._counts_lock:
                    self._sent_error += len(chunk)
                self._failed(exc)
                return
            with self._counts_lock:
                self._sent_ok += len(chunk)
        self._dirty.clear()
        self._finished.clear()
        if self._failing:
            log.info("alerts: %s %s is reachable again", self.target.kind, self.target.name)
        self._failing = False
        self._backoff = 0.0
        self._next_attempt = 0.0

    def _failed(self, exc: Exception) -> None:
        options = self.options
        self._backoff = min(options.backoff_max, self._backoff * 2 if self._backoff else options.backoff_initial)
        self._next_attempt = self._monotonic() + self._backoff
        if not self._failing:
            log.warning("alerts: %s %s: %s; retrying with backoff", self.target.kind, self.target.name, exc)
        else:
            log.debug("alerts: %s %s still failing: %s", self.target.kind, self.target.name, exc)
        self._failing = True

    def _payload(self, entry: _Entry, ends_active: float) -> dict:
        if entry.image is None:
            entry.image = self._lookup_image(entry.alert.container_id)
        ends = entry.ends_at if entry.ends_at is not None else ends_active
        return to_postable(entry.alert, host=self.host, image=entry.image,
                           starts_at=entry.starts_at, ends_at=ends)

    def _lookup_image(self, container_id: str) -> str:
        if self._image_of is None or not container_id:
            return ""
        if container_id in self._images:
            return self._images[container_id]
        try:
            image = self._image_of(container_id) or ""
        except Exception:  # noqa: BLE001 - a container removed meanwhile has no image to show
            return ""
        self._images[container_id] = image
        while len(self._images) > _REMEMBERED:
            self._images.popitem(last=False)
        return image
