"""The one parser of the kernel's mount table (/proc/self/mountinfo), and the questions asked
of it: what is mounted at a path, which mount holds a path, is a filesystem type mounted.

The doctor, the image store (is a rootfs mounted?), the cgroup drivers (is a directory on a
cgroup filesystem?) and the probes (are tracefs and bpffs mounted?) all read it through here.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")


@dataclass(frozen=True)
class MountEntry:
    """One mount: where, which filesystem type, and its per-superblock options."""

    mount_point: str
    fstype: str
    super_options: tuple[str, ...]


def unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as \\040-style octal escapes."""
    if "\\" not in field:
        return field        # nearly every path: the loop below costs ~20 us a field, per mount
    out, index = [], 0
    while index < len(field):
        if field[index] == "\\" and index + 3 < len(field) and field[index + 1:index + 4].isdigit():
            out.append(chr(int(field[index + 1:index + 4], 8)))
            index += 4
        else:
            out.append(field[index])
            index += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[MountEntry]:
    """Entries of a mountinfo file; lines that do not parse are skipped."""
    entries = []
    for line in text.splitlines():
        fields = line.split(" ")
        if "-" not in fields:
            continue
        sep = fields.index("-")
        if sep < 5 or len(fields) < sep + 3:
            continue
        options = tuple(fields[sep + 3].split(",")) if len(fields) > sep + 3 else ()
        entries.append(MountEntry(unescape(fields[4]), fields[sep + 1], options))
    return entries


def read_mount_table(path: Path | str = MOUNTINFO) -> list[MountEntry]:
    """The mounts listed in `path` (OSError when it cannot be read: callers decide what that means)."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        return parse_mountinfo(handle.read())


def read_mounts(path: Path | str = MOUNTINFO) -> list[MountEntry] | None:
    """The mounts listed in `path`, or None when it cannot be read (the doctor reports that)."""
    try:
        return read_mount_table(path)
    except OSError:
        return None


def mounted_at(mounts: list[MountEntry], target: str) -> bool:
    """Whether something is mounted exactly at `target` (a resolved path)."""
    return any(m.mount_point == target for m in mounts)


def mounted(mounts: list[MountEntry], fstype: str, *points: str) -> str | None:
    """The first of `points` where a filesystem of `fstype` is mounted, or None."""
    for point in points:
        if any(m.mount_point == point and m.fstype == fstype for m in mounts):
            return point
    return None


def mount_holding(mounts: list[MountEntry], path: str) -> MountEntry | None:
    """The mount that holds `path`: the longest mount point that is a prefix of its real path
    (the last one listed wins a tie: it is mounted over the earlier ones)."""
    target = os.path.realpath(path)
    best: MountEntry | None = None
    for entry in mounts:
        point = entry.mount_point
        if (target == point or target.startswith(point.rstrip("/") + "/")) and \
                (best is None or len(point) >= len(best.mount_point)):
            best = entry
    return best
