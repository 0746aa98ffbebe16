"""Handing out user-namespace ranges: one block of /etc/subuid and /etc/subgid per container.

The allocation is persisted in the container records themselves (`Container.userns`, saved
durably at create): a restarted daemon reads every record before it allocates, so a range
held by a live (or merely created) container is never handed out twice, and removing the
container (its record) frees the range. The lock makes choose-and-record one step for
concurrent creates.
"""
from __future__ import annotations

import pwd
import threading
from pathlib import Path
from typing import Iterable

from agent.errors import Conflict, InvalidArgument
from agent.userns.ranges import RANGE_SIZE, SUBID_USER, IdRange, Span, choose, parse_subids

SUBUID, SUBGID = Path("/etc/subuid"), Path("/etc/subgid")
SETUP_HINT = (f"run scripts/setup.sh, or add a line like `{SUBID_USER}:1000000:268435456` to "
              f"{SUBUID} and {SUBGID} (docs/security.md, User namespaces)")


class UsernsAllocator:
    """Chooses each container a free range inside the `user`'s subordinate ids."""

    def __init__(self, subuid: Path = SUBUID, subgid: Path = SUBGID, user: str = SUBID_USER,
                 size: int = RANGE_SIZE, default: str = "host") -> None:
        self.subuid, self.subgid, self.user, self.size = Path(subuid), Path(subgid), user, size
        self.default = default         # the daemon's --userns: auto | host
        self.lock = threading.Lock()   # held from choose to the save that records the choice

    def spans(self) -> tuple[list[Span], list[Span]]:
        """The user's (uid spans, gid spans); InvalidArgument naming the file when it has none."""
        try:
            uid: int | None = pwd.getpwnam(self.user).pw_uid
        except KeyError:
            uid = None
        found = []
        for path in (self.subuid, self.subgid):
            try:
                text = path.read_text()
            except FileNotFoundError:
                text = ""
            spans = parse_subids(text, self.user, uid, str(path))
            if not any(span.count >= self.size for span in spans):
                raise InvalidArgument(f"--userns auto: {path} lists no range of {self.size} ids for user "
                                      f"{self.user!r}", hint=SETUP_HINT, field="userns")
            found.append(spans)
        return found[0], found[1]

    def add(self, container, store) -> None:
        """Give a new `container` its range when its mode is auto, and add it to the runtime's
        `store` (which reserves its name) as one step, so two creates never choose the same range."""
        with self.lock:
            if mode_of(container.spec, self.default) == AUTO:
                container.userns = self.allocate(in_use(store.all())).to_dict()
            store.add(container)

    def allocate(self, in_use: Iterable[IdRange]) -> IdRange:
        """The lowest free range; Conflict when all are held. Call with `self.lock` held."""
        uids, gids = self.spans()
        chosen = choose(uids, gids, in_use, self.size)
        if chosen is None:
            raise Conflict(f"--userns auto: every range of {self.size} ids for user {self.user!r} in "
                           f"{self.subuid} is held by a container",
                           hint=f"remove containers or give {self.user!r} more subordinate ids")
        return chosen


AUTO, HOST = "auto", "host"


def mode_of(spec, default: str) -> str:
    """The user-namespace mode of a ContainerSpec: its own, else the daemon's default. A
    privileged or --net host container cannot have one (as with Docker's userns-remap: the
    host's sysfs and full capabilities are not a user namespace's to give)."""
    mode = spec.userns or default
    if mode == AUTO:
        clash = "--privileged" if spec.privileged else "--net host" if spec.network == "host" else None
        if clash:
            said = "--userns auto" if spec.userns else "the daemon's default --userns auto"
            raise InvalidArgument(f"userns: {clash} cannot be used with {said}",
                                  hint="add --userns host to run it in the host's user namespace", field="userns")
    return mode


def in_use(records: Iterable) -> list[IdRange]:
    """The ranges held by the containers in `records` (each one's `userns`, when it has one)."""
    return [IdRange.from_dict(record.userns) for record in records if getattr(record, "userns", None)]
