"""On-disk state of containers: one directory per container under `<root>/containers/<id>/`.

`state.json` is written atomically (temp file + rename) so a crash never leaves a torn file;
the in-memory index is rebuilt from the directories at start, which is what makes the daemon
restartable. Lookups accept a full id, a unique id prefix, or a name, as docker does.
"""
from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

from agent.errors import Conflict, InvalidArgument, NotFound
from agent.runtime.model import Container


class ContainerStore:
    """The containers the daemon knows, kept on disk and indexed in memory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root) / "containers"
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._containers: dict[str, Container] = {}
        self.load_errors: list[str] = []
        self._load()

    def _load(self) -> None:
        for entry in sorted(self.root.iterdir()):
            state = entry / "state.json"
            if not state.is_file():
                continue
            try:
                container = Container.from_dict(json.loads(state.read_text()))
            except (ValueError, KeyError, TypeError, InvalidArgument) as exc:
                # Kept on disk for a person to look at; never silently deleted.
                self.load_errors.append(f"{state}: {exc}")
                continue
            self._containers[container.id] = container

    def directory(self, container_id: str) -> Path:
        return self.root / container_id

    def save(self, container: Container) -> None:
        with self._lock:
            directory = self.directory(container.id)
            directory.mkdir(parents=True, exist_ok=True)
            temporary = directory / "state.json.tmp"
            temporary.write_text(json.dumps(container.to_dict(), separators=(",", ":")))
            os.replace(temporary, directory / "state.json")
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
