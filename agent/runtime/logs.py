"""Reading a container's log file: Docker stream frames written by the launcher."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

CHUNK = 65536


def follow_log(path: Path, *, follow: bool, running: Callable[[], bool],
               wait: Callable[[float], None]) -> Iterator[bytes]:
    """Yield the log's bytes; with `follow`, keep yielding until the container has exited and
    everything it wrote has been read. `wait` sleeps until a container changes state or the
    time runs out, so the end of a short container is seen at once, not at the next poll."""
    offset = 0
    while True:
        alive = running()  # read before the file, so nothing written before exit is missed
        try:
            with open(path, "rb") as handle:
                handle.seek(offset)
                while chunk := handle.read(CHUNK):
                    offset += len(chunk)
                    yield chunk
        except FileNotFoundError:
            pass
        if not follow or not alive:
            return
        wait(0.1)
