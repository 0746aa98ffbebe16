"""Reading, parsing and writing cgroup files, shared by the v2 and hybrid drivers.

Parsers take text and are pure. Readers come in two kinds: `read_*` raise `OSError` (the
caller decides what a failure means), `optional_*` answer None so one unreadable file leaves
only its own figure empty in a stats reading. Writes and directory changes turn `OSError` into
`KernelError` naming the file and the value, here and nowhere else.

Stats readings are on the scrape path (tens of files per container, every few seconds), so
they read bytes with raw os calls, keep cgroupfs files open between readings (`kept_files.OpenFiles`) and
pick the few figures they need out of the bytes (`keyed_value`) instead of parsing every line.
"""
from __future__ import annotations

import errno
import os
import time

from agent.cgroups.driver import Pressure
from agent.cgroups.kept_files import OpenFiles, pread_all
from agent.errors import InvalidArgument, KernelError

# v1 reports "no limit" as PAGE_COUNTER_MAX pages in bytes (9223372036854771712 with 4 KiB
# pages); anything this large cannot be a limit somebody set.
V1_UNLIMITED_FLOOR = 1 << 62


# --- parsers -------------------------------------------------------------------------------

def parse_int(text: str) -> int:
    return int(text.strip())


def parse_max(text: str) -> int | None:
    """A v2 limit: "max" is None (unlimited), anything else an int."""
    value = text.strip()
    return None if value == "max" else int(value)


def parse_v1_limit(text: str) -> int | None:
    """A v1 limit: -1, "max" (pids) or PAGE_COUNTER_MAX are None (unlimited)."""
    value = text.strip()
    if value == "max":
        return None
    number = int(value)
    return None if number < 0 or number >= V1_UNLIMITED_FLOOR else number


def parse_keyed(text: str) -> dict[str, int]:
    """A flat keyed file ("key value" per line: memory.stat, cpu.stat, memory.events, ...).

    Lines whose value is not an integer are skipped: newer kernels add keys, and one odd
    line must not hide the others.
    """
    result: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                result[parts[0]] = int(parts[1])
            except ValueError:
                continue
    return result


def parse_cpu_max(text: str) -> tuple[int | None, int]:
    """v2 cpu.max "QUOTA PERIOD" or "max PERIOD" -> (quota or None, period)."""
    parts = text.split()
    if len(parts) != 2:
        raise ValueError(f"cpu.max: expected 'QUOTA PERIOD', got {text.strip()!r}")
    return parse_max(parts[0]), int(parts[1])


def parse_pressure(text: str) -> Pressure:
    """A PSI file ("some avg10=.. avg60=.. avg300=.. total=N" and "full ...", N in µs).

    A missing "full" line (cpu.pressure before 5.13) reads as 0 stalled seconds.
    """
    totals = {"some": 0, "full": 0}
    found = False
    for line in text.splitlines():
        parts = line.split()
        if not parts or parts[0] not in totals:
            continue
        for item in parts[1:]:
            key, _, value = item.partition("=")
            if key == "total":
                totals[parts[0]] = int(value)
                found = True
    if not found:
        raise ValueError(f"PSI: no total= in {text.strip()!r}")
    return Pressure(some_seconds=totals["some"] / 1e6, full_seconds=totals["full"] / 1e6)


def parse_pids(text: str) -> list[int]:
    """cgroup.procs: one pid per line."""
    return [int(line) for line in text.split()]


# --- readers ---------------------------------------------------------------------------------

def read_bytes(path: str) -> bytes:
    """The file's bytes through os.open/os.pread/os.close: half the cost of a buffered open()
    for the small files cgroups are made of."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return pread_all(fd)
    finally:
        os.close(fd)


def read_text(path: str) -> str:
    return read_bytes(path).decode("ascii")


def optional_bytes(read, path: str) -> bytes | None:
    """read(path), or None when the file is missing or unreadable (or path is "": no hierarchy)."""
    if not path:
        return None
    try:
        return read(path)
    except OSError:
        return None


def as_int(data: bytes | None) -> int | None:
    """A one-number file's value; None when unread or malformed."""
    if data is None:
        return None
    try:
        return int(data)
    except ValueError:
        return None


def as_max(data: bytes | None) -> int | None:
    """A v2 limit ("max" is unlimited) from bytes; None also when unread or malformed."""
    if data is None or data.strip() == b"max":
        return None
    return as_int(data)


def as_v1_limit(data: bytes | None) -> int | None:
    """A v1 limit from bytes (-1, "max" and PAGE_COUNTER_MAX are unlimited); None also when
    unread or malformed."""
    number = as_max(data)
    return None if number is None or number < 0 or number >= V1_UNLIMITED_FLOOR else number


def keyed_value(data: bytes | None, key: bytes) -> int | None:
    """The value of `key` in a flat keyed file ("key value" lines), or None when the file was
    not read, the key is absent or its value is not an integer.

    A find over the bytes: memory.stat has 40-odd lines and a stats reading wants three.
    """
    if data is None:
        return None
    needle = key + b" "
    if data.startswith(needle):
        start = len(needle)
    else:
        start = data.find(b"\n" + needle)
        if start < 0:
            return None
        start += len(needle) + 1
    end = data.find(b"\n", start)
    try:
        return int(data[start:end] if end >= 0 else data[start:])
    except ValueError:
        return None


def pressure_of(data: bytes | None) -> Pressure | None:
    """parse_pressure over bytes; None when unread or without any total=."""
    if data is None:
        return None
    totals = {b"some": 0, b"full": 0}
    found = False
    for line in data.split(b"\n"):
        kind = line[:4]
        if kind in totals:
            at = line.find(b" total=")
            if at >= 0:
                try:
                    totals[kind] = int(line[at + 7:].split(None, 1)[0])
                except (ValueError, IndexError):
                    return None
                found = True
    if not found:
        return None
    return Pressure(some_seconds=totals[b"some"] / 1e6, full_seconds=totals[b"full"] / 1e6)


def pids_of(data: bytes | None) -> list[int] | None:
    """cgroup.procs bytes as pids; None when unread or malformed."""
    if data is None:
        return None
    try:
        return [int(word) for word in data.split()]
    except ValueError:
        return None


def optional(parse, path: str):
    """parse(text of path), or None when the file is missing, unreadable or malformed."""
    try:
        return parse(read_text(path))
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def optional_int(path: str) -> int | None:
    return optional(parse_int, path)


def optional_keyed(path: str) -> dict[str, int]:
    """The keyed file's values; {} when it cannot be read, so lookups answer None."""
    return optional(parse_keyed, path) or {}


# --- writers and directories ------------------------------------------------------------------

def write_value(path: str, value: str | int, *, hint: str | None = None) -> None:
    """Write one value the way the kernel wants it: one write(2), errors reported at write time.

    Python's buffered `open().write()` reports kernel refusals only at close, and not at all
    when the file object is dropped, so this uses os.open/os.write. O_CREAT is left out so a
    missing file is an error here as it is on the real cgroupfs (where creating is refused);
    O_TRUNC is what runc uses, harmless on cgroupfs and right for fixture files.
    """
    data = str(value).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
    except OSError as err:
        raise KernelError(f"cannot write {str(value)!r} to {path}: {err.strerror}",
                          hint=hint or _hint_for(err)) from err


def _hint_for(err: OSError) -> str | None:
    if err.errno == errno.ENOENT:
        return "the cgroup or its controller is missing; check `corral doctor`"
    if err.errno == errno.EBUSY:
        return "the cgroup is busy: a memory limit below current usage, or processes still inside"
    if err.errno == errno.EINVAL:
        return "the kernel rejected the value; check the limit is in range"
    if err.errno in (errno.EACCES, errno.EPERM):
        return "run the daemon as root"
    return None


def check_name(name: str, what: str = "cgroup name") -> str:
    """A single path component: nothing a caller passes may lead outside the parent."""
    if not name or "/" in name or name in (".", "..") or "\0" in name:
        raise InvalidArgument(f"{what} {name!r}: must be one path component without '/'")
    return name


def make_dir(path: str, *, exist_ok: bool, parent: bool = False) -> bool:
    """mkdir; True when this call made it. KernelError otherwise (EEXIST unless exist_ok).
    With `parent`, a missing parent directory is made first (only then: a create's mkdir of each
    hierarchy's parent answered EEXIST at every launch)."""
    try:
        os.mkdir(path)
        return True
    except FileExistsError:
        if exist_ok:
            return False
        raise
    except FileNotFoundError as err:
        if not parent:
            raise KernelError(f"cannot create cgroup {path}: {err.strerror}", hint=_hint_for(err)) from err
        make_dir(os.path.dirname(os.path.normpath(path)), exist_ok=True)
        return make_dir(path, exist_ok=exist_ok)
    except OSError as err:
        raise KernelError(f"cannot create cgroup {path}: {err.strerror}",
                          hint=_hint_for(err)) from err


def remove_cgroups(dirs: list[str], open_files: OpenFiles | None, *, timeout: float) -> None:
    """Forget the held-open files of each directory, then remove it (see remove_tree)."""
    for path in dirs:
        if open_files is not None:
            open_files.forget(path)
        remove_tree(path, timeout=timeout)


def remove_empty_cgroups(dirs: list[str], open_files: OpenFiles | None) -> bool:
    """rmdir each directory (a missing one is fine) while each is empty; False at the first that
    is busy (a process or a child cgroup in it), which the caller then empties and removes. An
    exited container's cgroups are empty: this is its whole removal, without the listing of
    every cgroup.procs and every directory that emptying them first took."""
    for path in dirs:
        if open_files is not None:
            open_files.forget(path)
        try:
            os.rmdir(path)
        except FileNotFoundError:
            continue
        except OSError as err:
            if err.errno in (errno.EBUSY, errno.ENOTEMPTY):
                return False
            raise KernelError(f"cannot remove cgroup {path}: {err.strerror}") from err
    return True


def remove_tree(path: str, *, timeout: float) -> None:
    """rmdir a cgroup and any child cgroups, deepest first; a missing directory is fine.

    rmdir answers EBUSY while killed tasks are still exiting, so it is retried until
    `timeout` seconds have passed.
    """
    deadline = time.monotonic() + timeout
    try:
        children = [entry.path for entry in os.scandir(path) if entry.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return
    except OSError as err:
        raise KernelError(f"cannot list cgroup {path}: {err.strerror}") from err
    for child in children:
        remove_tree(child, timeout=max(0.0, deadline - time.monotonic()))
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as err:
            if err.errno == errno.EBUSY and time.monotonic() < deadline:
                time.sleep(0.01)
                continue
            raise KernelError(f"cannot remove cgroup {path}: {err.strerror}",
                              hint="processes are still inside; kill them and retry") from err


def wait_for(predicate, timeout: float, interval: float = 0.005) -> bool:
    """Poll `predicate` until true or `timeout` seconds pass; answers its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
