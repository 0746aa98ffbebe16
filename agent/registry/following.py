"""A reader of a file that another thread is still writing: extraction while downloading.

`read` returns what is on disk and, at the end of what is there, waits for more until the writer
says `finish()` (then the end of the file is the end of the stream) or `abort()` (then the read
raises, and the reader's consumer gives up: the blob is extracted again from the finished file).
The writer calls `grew()` after each flushed write.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import BinaryIO


class Abandoned(Exception):
    """The file being followed was truncated or its download failed."""


class FollowedFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: BinaryIO | None = None
        self._condition = threading.Condition()
        self._size = 0
        self._finished = False
        self._aborted = False

    # -- the writer's side

    def grew(self, size: int) -> None:
        with self._condition:
            self._size = size
            self._condition.notify_all()

    def finish(self) -> None:
        with self._condition:
            self._finished = True
            self._condition.notify_all()

    def abort(self) -> None:
        with self._condition:
            self._aborted = True
            self._condition.notify_all()

    # -- the reader's side (a file object as tarfile and gzip want it)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size == 0:
            return b""
        while True:
            with self._condition:
                if self._aborted:
                    raise Abandoned(str(self.path))
                while self._size == self._position() and not self._finished and not self._aborted:
                    self._condition.wait()
                if self._aborted:
                    raise Abandoned(str(self.path))
                finished = self._finished
            if self._handle is None:
                self._handle = open(self.path, "rb")     # noqa: SIM115 - closed by close()
            data = self._handle.read(size if size >= 0 else -1)
            if data or finished:
                return data

    def _position(self) -> int:
        return self._handle.tell() if self._handle is not None else 0

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
