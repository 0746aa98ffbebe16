"""A container's log file read frame by frame, each frame with the time the shim read it.

The launcher (launcher/logfile.h) writes Docker stream frames to `container.log` and, just
before each frame, a 16-byte record to `container.log.idx`: the frame's offset in the log and
its time in UNIX nanoseconds, both little-endian uint64. The log itself is unchanged, so a log
written by an older shim (no index, or an index that ends early) reads as before, its frames
with no time (None).

What a crash may leave, and how it reads:
- a record whose frame was never written (the shim died between the two writes): it points
  at the log's end; a restart's shim writes its next frame there with a newer record, and the
  last record for an offset wins;
- a torn last record (the machine died): the partial tail is ignored;
- zeroed records (a filesystem that zero-fills after a crash): offset 0 / time 0, ignored.
"""
from __future__ import annotations

import os
import struct
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator

from agent.errors import CorralError

INDEX_SUFFIX = ".idx"
RECORD = struct.Struct("<QQ")       # offset, UNIX ns: launcher/logfile.h LOG_INDEX_RECORD
HEADER = struct.Struct(">BxxxI")    # Docker's frame header: stream, 0, 0, 0, length BE32
CHUNK = 65536


@dataclass(frozen=True)
class Record:
    """One frame (or, once split, one line) of a container's output."""

    stream: int          # 1 stdout, 2 stderr
    data: bytes
    time: int | None     # UNIX nanoseconds the shim read it; None when the log has no time for it


def encode_frame(stream: int, data: bytes) -> bytes:
    return HEADER.pack(stream, len(data)) + data


def index_path(log: Path) -> Path:
    return log.with_name(log.name + INDEX_SUFFIX)


class TimeIndex:
    """The records of a log's index, read forward as the log's frames are."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[bytes] | None = None
        self._rest = b""
        self._records: deque[tuple[int, int]] = deque()
        self._open()

    def _open(self) -> None:
        try:
            self._handle = open(self.path, "rb")  # noqa: SIM115 - closed by close()
        except FileNotFoundError:
            self._handle = None

    def _read_more(self) -> bool:
        """Take in up to CHUNK more bytes of records; False when there are none (yet). A torn
        tail waits in `_rest` for the rest of its record, which after a crash never comes."""
        if self._handle is None:
            self._open()
            if self._handle is None:
                return False
        data = self._handle.read(CHUNK)
        if not data:
            return False
        data = self._rest + data
        whole = len(data) - len(data) % RECORD.size
        self._records.extend(RECORD.iter_unpack(data[:whole]))
        self._rest = data[whole:]
        return True

    def time_of(self, offset: int) -> int | None:
        """The time of the frame at `offset`. Frames are asked for in the log's order, once
        read: their records were written before them, so they are in the file by then."""
        records = self._records
        while True:
            while records and records[0][0] < offset:
                records.popleft()                   # frames already read, or zeroed records
            if (records and records[-1][0] > offset) or not self._read_more():
                break
        found = None
        while records and records[0][0] == offset:
            found = records.popleft()[1]            # the last record for an offset wins
        return found or None

    def first_offset_from(self, since: int, *, before: int = 0) -> int | None:
        """Where a reader of `--since` may start instead of at the log's start: a frame at least
        `before` bytes ahead of the first frame timed at or after `since` (the line that frame
        ends may have begun earlier). 0 without an index (an older shim's log: read it all);
        None when every indexed frame is older (start at the log's end)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return 0
        whole = len(data) - len(data) % RECORD.size
        behind: deque[int] = deque()
        start = 0
        for offset, ns in RECORD.iter_unpack(data[:whole]):
            while behind and behind[0] <= offset - before:
                start = behind.popleft()
            if ns >= since:
                return start if before else offset
            behind.append(offset)
        return None

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class LogFile:
    """An open log and its index, read forward: `records()` yields the frames written since
    the last call. The log stays open, so a `--rm` container's last words are read after its
    state directory is gone."""

    def __init__(self, handle: IO[bytes], index: TimeIndex) -> None:
        self._handle = handle
        self.index = index
        self._offset = handle.tell()       # of the first byte in _buffer
        self._buffer = bytearray()

    @classmethod
    def open(cls, path: Path) -> LogFile:
        """FileNotFoundError when there is no log (yet)."""
        handle = open(path, "rb")  # noqa: SIM115 - closed by close()
        return cls(handle, TimeIndex(index_path(path)))   # the shim makes the index before the log

    def seek_time(self, since: int, *, before: int = 0) -> None:
        """Start at the first frame timed at or after `since`, or a frame `before` bytes ahead
        of it (earlier ones would be filtered out anyway); a log without index is read from its
        start."""
        offset = self.index.first_offset_from(since, before=before)
        size = os.fstat(self._handle.fileno()).st_size
        self._handle.seek(size if offset is None else min(offset, size))
        self._offset = self._handle.tell()
        self._buffer.clear()

    def records(self) -> Iterator[Record]:
        while chunk := self._handle.read(CHUNK):
            self._buffer += chunk
            for offset, stream, data in self._frames():
                yield Record(stream, data, self.index.time_of(offset))

    def _frames(self) -> list[tuple[int, int, bytes]]:
        frames = []
        buffer = self._buffer
        start = 0
        while len(buffer) - start >= HEADER.size:
            stream, length = HEADER.unpack_from(buffer, start)
            if stream not in (1, 2) or any(buffer[start + 1:start + 4]):
                raise CorralError(f"container log: corrupt frame header at offset {self._offset + start}: "
                                  f"{bytes(buffer[start:start + HEADER.size]).hex()}")
            end = start + HEADER.size + length
            if len(buffer) < end:
                break
            frames.append((self._offset + start, stream, bytes(buffer[start + HEADER.size:end])))
            start = end
        del buffer[:start]
        self._offset += start
        return frames

    def close(self) -> None:
        self._handle.close()
        self.index.close()

    def __enter__(self) -> LogFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
