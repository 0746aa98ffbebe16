"""Parsing of /proc/self/mountinfo into the few fields the checks need."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agent.doctor.result import read_text


@dataclass(frozen=True)
class MountEntry:
    """One mount: where, which filesystem type, and its per-superblock options."""

    mount_point: str
    fstype: str
    super_options: tuple[str, ...]


def _unescape(field: str) -> str:
    # The kernel writes space, tab, newline and backslash in paths as octal escapes.
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def parse_mountinfo(text: str) -> list[MountEntry]:
    """Entries of a mountinfo file; lines that do not parse are skipped."""
    entries = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        if sep < 5 or len(fields) < sep + 3:
            continue
        options = tuple(fields[sep + 3].split(",")) if len(fields) > sep + 3 else ()
        entries.append(MountEntry(_unescape(fields[4]), fields[sep + 1], options))
    return entries


def read_mounts(path: Path) -> list[MountEntry] | None:
    """The mounts listed in `path`, or None when it cannot be read."""
    text = read_text(path)
    return None if text is None else parse_mountinfo(text)


def mounted(mounts: list[MountEntry], fstype: str, *points: str) -> str | None:
    """The first of `points` where a filesystem of `fstype` is mounted, or None."""
    for point in points:
        if any(m.mount_point == point and m.fstype == fstype for m in mounts):
            return point
    return None
