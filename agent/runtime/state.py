"""On-disk state of containers: one directory per container under `<root>/containers/<id>/`.

Each save writes a new generation, `state.<n>.json`, and removes generation n-2; at start the
newest generation that parses wins. Each generation is written as `.state.<n>.json.part` and
renamed to its own new name, so a daemon killed mid-save leaves a `.part` file (ignored), never a
short state file; no save renames over an existing file: on ext4 that forces the data to disk
(auto_da_alloc), which made every save cost ~0.5 ms instead of ~0.1 ms. The in-memory index is
rebuilt from the directories at start, which is what makes the daemon restartable. Lookups
accept a full id, a unique id prefix, or a name, as docker does.

Durability: a daemon killed at any point loses nothing (the page cache keeps every write).
Only a power loss can undo a save, and it also kills every container, so only the save that
completes a container's creation, its first (`add` only reserves the name and makes the
directory), is fsync'd (`durable=True`, file and directories, ~0.4 ms): it is the record that
owns what the container keeps on disk. That generation is kept until a
later durable one replaces it, so a torn newer generation always has a good one beneath it.
`run` overlaps those fsyncs with the launch (`sync_later`, PendingSync, in the one thread of
agent/runtime/state_sync.py) and answers only once they are done; a --rm container's first
save in `run` is not synced at all (a power loss ends it, and reconcile removes what is left,
an empty state file counting as none).
Later saves (start, exit, removing; a --rm container's exit and removal are not saved at all,
agent/runtime/endings.py) may be lost to a power loss: reconcile corrects a stale
state from what is (or is not) running. A directory with no state file (a create cut short)
and one whose every generation is unreadable are listed for the reconciler (`no_state`,
`unreadable`), which cleans or quarantines them; nothing here deletes them.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from agent.atomic_file import sync_directory
from agent.errors import Conflict, InvalidArgument, NotFound
from agent.runtime.model import Container
from agent.runtime.state_sync import PendingSync, StateSyncer

if TYPE_CHECKING:
    from agent.runtime.trash import Trash

_GENERATION = re.compile(r"^state\.(\d+)\.json$")
# Written by earlier versions; read as generation 0.
_LEGACY = "state.json"
# Where the directories of containers whose state is unreadable are moved, for a person.
QUARANTINE = "quarantine"

log = logging.getLogger(__name__)


def _generations(directory: Path) -> list[tuple[int, Path]]:
    """State files of one container, newest first. An empty one is no generation: it is a save
    that was not synced (a --rm container's, `Runtime.run`) whose data never reached the disk
    before the machine went down; a save the daemon itself was killed in leaves a `.part`."""
    found = []
    for entry in os.scandir(directory):
        match = _GENERATION.match(entry.name)
        if match and entry.stat().st_size > 0:
            found.append((int(match.group(1)), Path(entry.path)))
        elif entry.name == _LEGACY:
            found.append((0, Path(entry.path)))
    return sorted(found, reverse=True)


class ContainerStore:
    """The containers the daemon knows, kept on disk and indexed in memory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root) / "containers"
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._containers: dict[str, Container] = {}
        self._generation: dict[str, int] = {}
        self._kept: dict[str, int] = {}         # the last durable generation, never removed by save
        self.load_errors: list[str] = []
        self.no_state: list[str] = []           # ids of directories without any state file
        self.unreadable: dict[str, list[str]] = {}   # id -> why each of its state files is unreadable
        self._syncer = StateSyncer()            # the fsyncs of `sync_later` saves
        self._load()

    def _load(self) -> None:
        for entry in sorted(self.root.iterdir()):
            if not entry.is_dir():
                continue
            generations = _generations(entry)
            if not generations:
                self.no_state.append(entry.name)
                continue
            errors = []
            for generation, state in generations:
                try:
                    container = Container.from_dict(json.loads(state.read_text()))
                    if container.id != entry.name:
                        raise InvalidArgument(f"it names container {container.id!r}")
                except (OSError, ValueError, KeyError, TypeError, AttributeError, InvalidArgument) as exc:
                    # Kept on disk for a person to look at; never silently deleted.
                    errors.append(f"{state}: {exc}")
                    continue
                for error in errors:
                    log.warning("container state %s; using the older %s", error, state.name)
                self._containers[container.id] = container
                self._generation[container.id] = max(generations)[0]
                self._kept[container.id] = generation
                break
            else:
                self.load_errors.extend(errors)
                self.unreadable[entry.name] = errors

    def directory(self, container_id: str) -> Path:
        return self.root / container_id

    def save(self, container: Container, *, durable: bool = False, sync_later: bool = False) -> PendingSync | None:
        """Write a new generation; `durable` also fsyncs it and the directories naming it. With
        `sync_later` those fsyncs run in a thread while the caller goes on (`run` launches the
        container meanwhile): the returned PendingSync must be waited for before anyone is told
        the container exists."""
        pending = None
        with self._lock:
            directory = self.directory(container.id)
            generation = self._generation.get(container.id, 0) + 1
            if generation == 1:
                directory.mkdir(exist_ok=True)        # made by `add`, unless a test saves directly
            path = directory / f"state.{generation}.json"
            data = json.dumps(container.to_dict(), separators=(",", ":")).encode()
            # Written under a name no reader takes, then renamed to a name that is new (so ext4's
            # flush on a rename over a file does not apply): a daemon killed between the open and
            # the end of the write leaves a `.part` file, never a short state file (which would be
            # read as unreadable and, for a first generation, quarantined).
            part = directory / f".{path.name}.part"
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, data)
                if durable and not sync_later:
                    os.fdatasync(fd)
                os.rename(part, path)
            except BaseException:
                os.close(fd)
                part.unlink(missing_ok=True)
                raise
            if durable and sync_later:
                fds = [fd]
                try:
                    for named_in in (directory, self.root):
                        fds.append(os.open(named_in, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
                except BaseException:
                    for opened in fds:
                        os.close(opened)
                    raise
                pending = self._syncer.submit(tuple(fds))      # it closes them
            else:
                os.close(fd)
                if durable:
                    sync_directory(directory)
                    sync_directory(self.root)
            old_generation = generation - 2
            if old_generation != self._kept.get(container.id):
                old = directory / (f"state.{old_generation}.json" if old_generation > 0 else _LEGACY)
                try:
                    old.unlink()
                except FileNotFoundError:
                    pass
            if durable:
                kept = self._kept.get(container.id)
                if kept is not None and kept < generation - 1:
                    (directory / f"state.{kept}.json").unlink(missing_ok=True)
                self._kept[container.id] = generation
            self._generation[container.id] = generation
            self._containers[container.id] = container
        return pending

    def add(self, container: Container) -> None:
        """Reserve a new container's name and make its directory; Conflict when the name is taken.
        Nothing is written: its first save is the create's durable one, once its cgroup and root
        exist. Until then a crash leaves a directory without state (`no_state`), which the
        reconciler removes with the cgroup and root of that id."""
        with self._lock:
            for other in self._containers.values():
                if other.name == container.name:
                    raise Conflict(f"container name {container.name!r} is already used by {other.id[:12]}",
                                   hint=f"remove it with `corral rm {container.name}` or choose another --name")
            self.directory(container.id).mkdir()
            self._containers[container.id] = container

    def rename(self, container: Container, name: str) -> None:
        """Give a container a new name; Conflict when another has it."""
        with self._lock:
            for other in self._containers.values():
                if other.name == name and other.id != container.id:
                    raise Conflict(f"container name {name!r} is already used by {other.id[:12]}",
                                   hint=f"remove or rename that container first (`corral rename {name} NEW`)")
            container.name = name
            self.save(container)

    def delete(self, container_id: str, trash: Trash | None = None) -> None:
        """Forget a container and its directory; with `trash`, the directory is moved there
        (one rename) and deleted in the background (agent/runtime/trash.py)."""
        with self._lock:
            if trash is not None:
                trash.put(self.directory(container_id), container_id)
            else:
                shutil.rmtree(self.directory(container_id), ignore_errors=True)
            self._containers.pop(container_id, None)
            self._generation.pop(container_id, None)
            self._kept.pop(container_id, None)

    def quarantine(self, container_id: str) -> Path:
        """Move a container's directory out of the way (its rootfs must be unmounted first)."""
        target = self.root.parent / QUARANTINE / f"{container_id}.{int(time.time())}"
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(self.directory(container_id), target)
        return target

    def all(self) -> list[Container]:
        with self._lock:
            return sorted(self._containers.values(), key=lambda c: c.created_at)

    def names(self) -> set[str]:
        with self._lock:
            return {c.name for c in self._containers.values()}

    def by_id(self, container_id: str) -> Container | None:
        """The container of exactly this id, if the store has it."""
        with self._lock:
            return self._containers.get(container_id)

    def get(self, ref: str) -> Container:
        """By full id, name, or unique id prefix."""
        with self._lock:
            if ref in self._containers:
                return self._containers[ref]
            for container in self._containers.values():
                if container.name == ref:
                    return container
            matches = [c for c in self._containers.values() if c.id.startswith(ref)] if ref else []
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise Conflict(f"container id prefix {ref!r} matches {len(matches)} containers",
                           hint="give more characters of the id")
        raise NotFound(f"no such container: {ref}", hint="`corral ps -a` lists containers")
