"""The trash: where a removed container's files go to be deleted off the request path.

`remove` used to delete the container's state directory, upper and work directories before it
answered: ~22 % of an API launch cycle, all ext4 unlinks (bench/README.md "Launch: where the
time goes"). Now the runtime unmounts the container's root, then renames its whole directory
(`<root>/containers/<id>`, one rename on one filesystem) to `<root>/trash/<id>.<n>`, and a
thread of its own has `rm -rf` delete it (what piles up meanwhile in one process).

The rename is the commit point. Before it, the record is on disk (state `removing`, or the
record of an exited --rm container, whose exit is not saved, which the reconciler also finishes
as a removal at the next start); after it, nothing names the files but the trash, which the
deleter empties at every start. So a daemon killed mid-delete loses nothing (the container was
being removed) and leaks nothing (the next start deletes the rest).

Nothing is ever deleted through a mount point: the runtime unmounts before it renames, and an
entry found at start (a crash may have left anything) has whatever is mounted below it unmounted
first; an entry that stays mounted is left alone and logged, for a person.
"""
from __future__ import annotations

import errno
import itertools
import logging
import os
import queue
import subprocess
import threading
import time
from pathlib import Path

from agent.errors import KernelError
from agent.images.extract import remove_tree
from agent.images.overlay import unmount
from agent.mount_table import read_mount_table

log = logging.getLogger(__name__)

TRASH = "trash"
# The deleting process runs at a lower CPU priority than the daemon (2 cores, shared).
DELETER_NICE = 10


class Trash:
    """Moves directories into `<root>/trash/` and deletes them in the background."""

    def __init__(self, root: Path) -> None:
        self.dir = Path(root) / TRASH
        self._queue: queue.SimpleQueue[tuple[Path, bool] | None] = queue.SimpleQueue()
        self._pending = 0
        self._idle = threading.Condition()
        self._names = itertools.count()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the deleter; it first empties what an earlier run left (a crash mid-delete)."""
        if self._thread is not None:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        for entry in sorted(self.dir.iterdir()):
            self._enqueue(entry, checked=False)
        self._thread = threading.Thread(target=self._run, name="trash-deleter", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the deleter after the entry it is on; what is left waits for the next start."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout=10)
        self._thread = None

    def put(self, path: Path, name: str) -> bool:
        """Rename `path` (nothing mounted below it) into the trash and queue it; False when it
        does not exist. Without a running deleter (a runtime never started) it is deleted now."""
        if self._thread is None:
            existed = os.path.lexists(path)
            remove_tree(path)
            return existed
        target = self.dir / f"{name}.{time.time_ns()}.{next(self._names)}"
        try:
            os.rename(path, target)
        except FileNotFoundError:
            return False
        except OSError as exc:
            if exc.errno == errno.EXDEV:     # containers/ on a filesystem of its own: delete it now
                remove_tree(path)
                return True
            raise KernelError(f"moving {str(path)!r} to the trash {str(self.dir)!r}: {exc.strerror}") from None
        self._enqueue(target, checked=True)
        return True

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every queued entry is deleted (tests, shutdown); False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def _enqueue(self, entry: Path, *, checked: bool) -> None:
        with self._idle:
            self._pending += 1
        self._queue.put((entry, checked))

    def _run(self) -> None:
        stop = False
        while not stop:
            batch = [self._queue.get()]
            while not self._queue.empty():          # what piled up meanwhile goes in one rm
                batch.append(self._queue.get_nowait())
            stop = None in batch
            items = [item for item in batch if item is not None]
            try:
                self._delete([entry for entry, checked in items if checked or self._unmounted(entry)])
            except Exception:  # the deleter goes on; what is left is deleted at the next start
                log.exception("deleting %s from the trash failed", ", ".join(str(e) for e, _ in items))
            finally:
                with self._idle:
                    self._pending -= len(items)
                    self._idle.notify_all()

    @staticmethod
    def _unmounted(entry: Path) -> bool:
        """An entry found at start (a crash may have left anything): unmount what is below it."""
        if unmount_below(entry):
            return True
        log.error("%s stays mounted; left in the trash (see `findmnt -R %s`)", entry, entry)
        return False

    @staticmethod
    def _delete(entries: list[Path]) -> None:
        """`rm -rf --one-file-system` in a process of its own at nice 10: deleting in a thread
        of the daemon held the GIL between its thousands of syscalls, and a lowered priority
        then held it while the thread waited for a CPU (a bridge container's exit took ~20 ms
        longer). --one-file-system: never into a mount, whatever happened since."""
        if not entries:
            return
        try:
            result = subprocess.run(["nice", "-n", str(DELETER_NICE), "rm", "-rf", "--one-file-system", "--",
                                     *map(str, entries)], capture_output=True, check=False)
        except FileNotFoundError:       # no coreutils on this host: in the thread, then
            for entry in entries:
                remove_tree(entry)
            return
        if result.returncode != 0:       # e.g. a directory without write permission: remove_tree chmods
            for entry in entries:
                if os.path.lexists(entry):
                    remove_tree(entry)
            left = [str(entry) for entry in entries if os.path.lexists(entry)]
            if left:
                log.error("deleting %s from the trash: %s", ", ".join(left),
                          result.stderr.decode(errors="replace").strip()[-500:])


def unmount_below(path: Path) -> bool:
    """Unmount (lazily if busy) everything mounted at or below `path`, deepest first; True
    when nothing is left mounted there."""
    prefix = os.path.realpath(path)

    def mounted() -> list[str]:
        return sorted((m.mount_point for m in read_mount_table()
                       if m.mount_point == prefix or m.mount_point.startswith(prefix + "/")),
                      key=len, reverse=True)

    for _ in range(8):              # stacked mounts each need their own unmount
        points = mounted()
        if not points:
            return True
        for point in points:
            try:
                unmount(Path(point), lazy_if_busy=True)
            except KernelError as exc:
                log.warning("%s", exc.message)
    return not mounted()
