"""On-disk state of containers: one directory per container under `<root>/containers/<id>/`.

Each save writes a new generation, `state.<n>.json`, and removes generation n-2; at start the
newest generation that parses wins. A crash can therefore never leave only a torn file, and no
save replaces a file by rename: on ext4 a rename over an existing file forces its data to disk
(auto_da_alloc), which made every save cost ~0.5 ms instead of ~0.1 ms, four times per
container on the launch path. The in-memory index is rebuilt from the directories at start,
which is what makes the daemon restartable. Lookups accept a full id, a unique id prefix, or a
name, as docker does.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import threading
from pathlib import Path

from agent.errors import Conflict, InvalidArgument, NotFound
from agent.runtime.model import Container


_GENERATION = re.compile(r"^state\.(\d+)\.json$")
# Written by earlier versions; read as generation 0.
_LEGACY = "state.json"


def _generations(directory: Path) -> list[tuple[int, Path]]:
    """State files of one container, newest first."""
    found = []
    for entry in os.scandir(directory):
        match = _GENERATION.match(entry.name)
        if match:
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
        self.load_errors: list[str] = []
        self._load()

    def _load(self) -> None:
        for entry in sorted(self.root.iterdir()):
            if not entry.is_dir():
                continue
            errors = []
            for generation, state in _generations(entry):
                try:
                    container = Container.from_dict(json.loads(state.read_text()))
                except (OSError, ValueError, KeyError, TypeError, InvalidArgument) as exc:
                    # Kept on disk for a person to look at; never silently deleted.
                    errors.append(f"{state}: {exc}")
                    continue
                self._containers[container.id] = container
                self._generation[container.id] = generation
                break
            else:
                self.load_errors.extend(errors)

    def directory(self, container_id: str) -> Path:
        return self.root / container_id

    def save(self, container: Container) -> None:
        with self._lock:
            directory = self.directory(container.id)
            generation = self._generation.get(container.id, 0) + 1
            if generation == 1:
                directory.mkdir(parents=True, exist_ok=True)
            (directory / f"state.{generation}.json").write_text(
                json.dumps(container.to_dict(), separators=(",", ":")))
            old = directory / (f"state.{generation - 2}.json" if generation > 2 else _LEGACY)
            try:
                old.unlink()
            except FileNotFoundError:
                pass
            self._generation[container.id] = generation
            self._containers[container.id] = container

    def add(self, container: Container) -> None:
        """Save a new container; Conflict when its name is taken."""
        with self._lock:
            for other in self._containers.values():
                if other.name == container.name:
                    raise Conflict(f"container name {container.name!r} is already used by {other.id[:12]}",
                                   hint=f"remove it with `corral rm {container.name}` or choose another --name")
            self.save(container)

    def delete(self, container_id: str) -> None:
        with self._lock:
            self._containers.pop(container_id, None)
            self._generation.pop(container_id, None)
            shutil.rmtree(self.directory(container_id), ignore_errors=True)

    def all(self) -> list[Container]:
        with self._lock:
            return sorted(self._containers.values(), key=lambda c: c.created_at)

    def names(self) -> set[str]:
        with self._lock:
            return {c.name for c in self._containers.values()}

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
