"""How many bytes each volume holds, for `corral_volume_bytes` and `corral volume inspect`.

Walking a volume costs a stat per file, far too much for every scrape, so `sizes()` answers
from the last measurement and, when that is older than `interval` or the set of volumes
changed, starts one background walk (never two at once) whose figures the next scrape sees. Sizes are apparent sizes of
regular files, a hard-linked file counted once (what docker's `system df -v` reports).
"""
from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)
DEFAULT_INTERVAL = 60.0


def tree_bytes(path: str) -> int:
    """Apparent bytes of the regular files below `path`, without following symlinks."""
    total = 0
    seen: set[tuple[int, int]] = set()
    pending = [path]
    while pending:
        try:
            entries = list(os.scandir(pending.pop()))
        except OSError:
            continue                    # removed or unreadable meanwhile: not counted
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode):
                pending.append(entry.path)
            elif stat.S_ISREG(info.st_mode):
                if info.st_nlink > 1:
                    key = (info.st_dev, info.st_ino)
                    if key in seen:
                        continue
                    seen.add(key)
                total += info.st_size
    return total


class VolumeUsage:
    """Cached sizes of the volumes `volumes()` lists as (name, mountpoint) pairs."""

    def __init__(self, volumes: Callable[[], Iterable[tuple[str, str]]], interval: float = DEFAULT_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._volumes = volumes
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._sizes: dict[str, int] = {}
        self._measured_at: float | None = None
        self._walking = False

    def sizes(self) -> dict[str, int]:
        """The last figures; a walk starts in the background when they are older than the
        interval or a volume came or went since (listing them is cheap; walking them is not)."""
        names = {name for name, _path in self._volumes()}
        with self._lock:
            stale = self._measured_at is None or self._clock() - self._measured_at >= self._interval \
                or names != set(self._sizes)
            if stale and not self._walking:
                self._walking = True
                threading.Thread(target=self._walk, name="corral-volume-usage", daemon=True).start()
            return dict(self._sizes)

    def measure(self) -> dict[str, int]:
        """Measure now, in the caller's thread, and keep the figures."""
        sizes = {name: tree_bytes(path) for name, path in self._volumes()}
        with self._lock:
            self._sizes = sizes
            self._measured_at = self._clock()
        return dict(sizes)

    def _walk(self) -> None:
        try:
            self.measure()
        except Exception:  # noqa: BLE001 - a failed walk must not kill the scrape's figures
            log.exception("measuring volume sizes failed")
        finally:
            with self._lock:
                self._walking = False
