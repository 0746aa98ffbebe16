"""What `logs` shows of a container's log: its frames as written, or, with timestamps, tail,
since or until, its lines as docker shows them.

Docker's daemon keeps one record per line (its copier splits the output at newlines, and at
16 KiB for a longer line) and stamps each with the time it was read; `tail` counts those
records from the end of the whole log (stdout and stderr together), then `since`/`until`
(both inclusive) and the choice of streams filter what is left. The same order here, with a
line's time the time the shim read the frame that ended it (agent/runtime/log_file.py). A
record with no time (an older shim's log) is left out by `since`/`until`.

Without any of those options the frames go out as the shim wrote them, a terminal's partial
lines and all, as before.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from agent.log_time import format_log_time
from agent.runtime.log_file import LogFile, Record, encode_frame

LINE_MAX = 16 * 1024          # docker's copier emits a longer line in parts of this size
STDOUT, STDERR = 1, 2


@dataclass(frozen=True)
class LogQuery:
    """What to show of a log; times are UNIX nanoseconds."""

    follow: bool = False
    timestamps: bool = False
    details: bool = False            # docker's --details: the record's attributes, Corral has none
    since: int | None = None
    until: int | None = None
    tail: int | None = None          # the last N lines; None: all
    stdout: bool = True
    stderr: bool = True

    @property
    def by_line(self) -> bool:
        return (self.timestamps or self.details or self.tail is not None or self.since is not None
                or self.until is not None)

    def wants(self, record: Record) -> bool:
        if not (self.stdout if record.stream == STDOUT else self.stderr):
            return False
        if self.since is None and self.until is None:
            return True
        if record.time is None:
            return False
        return ((self.since is None or record.time >= self.since)
                and (self.until is None or record.time <= self.until))

    def shown(self, record: Record) -> bytes:
        """The record's bytes as docker prints them: `TIME ` then, with details, the (empty)
        attributes and a space, then the line."""
        data = record.data
        if self.details:
            data = b" " + data
        if self.timestamps:
            data = format_log_time(record.time).encode() + b" " + data
        return data


class LineSplitter:
    """Frames in, lines out, per stream; a line's time is that of the frame that ended it."""

    def __init__(self) -> None:
        self._pending: dict[int, tuple[bytes, int | None]] = {}

    def feed(self, record: Record) -> list[Record]:
        before, _ = self._pending.pop(record.stream, (b"", None))
        text = before + record.data
        lines = []
        start = 0
        while True:
            end = text.find(b"\n", start, start + LINE_MAX)
            if end >= 0:
                lines.append(Record(record.stream, text[start:end + 1], record.time))
                start = end + 1
            elif len(text) - start >= LINE_MAX:      # a longer line goes out in parts, as docker's
                lines.append(Record(record.stream, text[start:start + LINE_MAX], record.time))
                start += LINE_MAX
            else:
                break
        if start < len(text):
            self._pending[record.stream] = (text[start:], record.time)
        return lines

    def flush(self) -> list[Record]:
        """The unfinished lines, at the end of the output."""
        rest = [Record(stream, data, at) for stream, (data, at) in self._pending.items()]
        self._pending.clear()
        return rest


def read_log(log: LogFile, query: LogQuery, *, alive: Callable[[], bool],
             wait: Callable[[float], None], stopping: Callable[[], bool] = lambda: False) -> Iterator[Record]:
    """The records the query shows. With `follow`, keeps yielding until the container has
    exited and everything it wrote is read, the daemon stops, or `until` has passed. `wait`
    sleeps until a container changes state or the time runs out, so the end of a short
    container is seen at once, not at the next poll."""
    splitter = LineSplitter() if query.by_line else None
    backlog: deque[Record] | None = deque(maxlen=query.tail) if query.tail is not None else None
    if query.since is not None and backlog is None:
        log.seek_time(query.since, before=LINE_MAX + 8 if splitter else 0)
    while True:
        live = query.follow and alive()   # before reading: nothing written before the exit is missed
        ended = not live or stopping() or (query.until is not None and time.time_ns() > query.until)
        records: Iterable[Record] = log.records()
        if splitter is not None:
            records = _split(splitter, records, flush=ended)
        for record in records:
            if backlog is not None:
                backlog.append(record)
            elif query.until is not None and record.time is not None and record.time > query.until and live:
                return                      # docker stops following at the first record after until
            elif query.wants(record):
                yield record
        if backlog is not None:
            yield from (record for record in backlog if query.wants(record))
            backlog = None
        if ended:
            return
        wait(0.1)


def _split(splitter: LineSplitter, records: Iterable[Record], *, flush: bool) -> Iterator[Record]:
    for record in records:
        yield from splitter.feed(record)
    if flush:
        yield from splitter.flush()


def open_log(path: Path, *, wait_for_it: bool, alive: Callable[[], bool],
             wait: Callable[[float], None], stopping: Callable[[], bool] = lambda: False) -> LogFile | None:
    """The log, waiting (with `wait_for_it`) while the container lives for the launcher to
    make it; None when there is none."""
    while True:
        try:
            return LogFile.open(path)
        except FileNotFoundError:
            if not wait_for_it or not alive() or stopping():
                return None
            wait(0.1)


def encoded_log(path: Path, query: LogQuery, *, alive: Callable[[], bool],
                wait: Callable[[float], None]) -> Iterator[bytes]:
    """The log as Docker frames (Corral's API and the services' merged logs)."""
    log = open_log(path, wait_for_it=query.follow, alive=alive, wait=wait)
    if log is None:
        return
    with log:
        for record in read_log(log, query, alive=alive, wait=wait):
            yield encode_frame(record.stream, query.shown(record))
