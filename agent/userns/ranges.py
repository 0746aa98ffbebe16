"""Subordinate id ranges and the choice of a free one: pure logic, no files, no kernel.

/etc/subuid and /etc/subgid lines are `USER:START:COUNT` (USER a name or a uid). Corral maps
each container's ids 0..65535 onto a block of its own inside the ranges listed for its user
(`corral`), so two containers never share a host id and none is a real host user's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

from agent.errors import InvalidArgument

# Every container gets this many ids (0..65535 inside), as podman's --userns=auto default
# and Docker's userns-remap do: enough for any uid an image ships.
RANGE_SIZE = 65536
SUBID_USER = "corral"
# uid_map takes 32-bit ids and the kernel reserves (uid_t)-1.
_MAX_ID = (1 << 32) - 1


@dataclass(frozen=True, order=True)
class Span:
    """COUNT ids from START on the host."""

    start: int
    count: int

    @property
    def end(self) -> int:
        return self.start + self.count

    def overlaps(self, other: Span) -> bool:
        return self.start < other.end and other.start < self.end


@dataclass(frozen=True)
class IdRange:
    """A container's mapping: its ids 0..size-1 are host uids uid.. and gids gid.."""

    uid: int
    gid: int
    size: int = RANGE_SIZE

    def to_dict(self) -> dict:
        return {"uid": self.uid, "gid": self.gid, "size": self.size}

    @classmethod
    def from_dict(cls, data: dict) -> IdRange:
        return cls(int(data["uid"]), int(data["gid"]), int(data.get("size", RANGE_SIZE)))

    @classmethod
    def of(cls, record: dict | None) -> IdRange | None:
        """The range a container record holds (`Container.userns`), None in the host's ids."""
        return cls.from_dict(record) if record else None

    def launcher_option(self) -> str:
        """corral-launch's `--userns UID:GID:SIZE`."""
        return f"{self.uid}:{self.gid}:{self.size}"

    def host_uid(self, uid: int) -> int:
        """The host uid of the container's `uid` (ids past the range stay as they are: the
        kernel shows them as the overflow id)."""
        return self.uid + uid if 0 <= uid < self.size else uid

    def host_gid(self, gid: int) -> int:
        return self.gid + gid if 0 <= gid < self.size else gid


def parse_subids(text: str, user: str, uid: int | None, where: str) -> list[Span]:
    """The spans listed for `user` (or its numeric `uid`) in a subuid/subgid file's `text`.
    A malformed line for this user is an error naming the file and line; other users' lines
    are not ours to judge."""
    spans = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        owner, _, rest = line.partition(":")
        if owner != user and (uid is None or owner != str(uid)):
            continue
        start, _, count = rest.partition(":")
        if not (start.isdigit() and count.isdigit()) or int(count) == 0 or int(start) + int(count) > _MAX_ID:
            raise InvalidArgument(f"{where}:{number}: expected {user}:START:COUNT with numbers, got {line!r}")
        spans.append(Span(int(start), int(count)))
    return sorted(spans)


def free_blocks(spans: Iterable[Span], size: int) -> Iterator[int]:
    """Starts of the `size`-id blocks that fit wholly inside `spans`, lowest first (lazily:
    a 4096-container range is not listed to find its first free block)."""
    for span in sorted(spans):
        start = span.start
        while start + size <= span.end:
            yield start
            start += size


def choose(uid_spans: list[Span], gid_spans: list[Span], in_use: Iterable[IdRange],
           size: int = RANGE_SIZE) -> IdRange | None:
    """The lowest free block: the n-th uid block paired with the n-th gid block, skipping any
    whose uids or gids overlap a range in use. None when every block is taken."""
    used = list(in_use)
    used_uids = [Span(r.uid, r.size) for r in used]
    used_gids = [Span(r.gid, r.size) for r in used]
    for uid, gid in zip(free_blocks(uid_spans, size), free_blocks(gid_spans, size)):
        if any(Span(uid, size).overlaps(s) for s in used_uids) or any(Span(gid, size).overlaps(s) for s in used_gids):
            continue
        return IdRange(uid, gid, size)
    return None
