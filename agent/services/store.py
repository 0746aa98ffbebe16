"""`ServiceStore`: each service's desired state, one JSON file per service below the daemon's root.

Written atomically and durably (agent/atomic_file.py): after a crash or a restart the daemon
reads back exactly what was asked for, and the reconciler adopts the replicas that still run.
"""
from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Callable

from agent.atomic_file import write_atomically
from agent.errors import CorralError, NotFound
from agent.services.model import Service

log = logging.getLogger(__name__)


class ServiceStore:
    def __init__(self, root: Path) -> None:
        self.directory = Path(root) / "services"
        self._lock = threading.RLock()

    def _path(self, name: str) -> Path:
        return self.directory / f"{name}.json"

    def save(self, service: Service) -> None:
        with self._lock:
            write_atomically(self._path(service.name), json.dumps(service.to_dict(), indent=1) + "\n")

    def modify(self, name: str, change: Callable[[Service], Service]) -> Service:
        """Read, change and save one service under the lock: the API's changes and the
        reconciler's history notes never overwrite each other."""
        with self._lock:
            service = change(self.get(name))
            write_atomically(self._path(service.name), json.dumps(service.to_dict(), indent=1) + "\n")
            return service

    def exists(self, name: str) -> bool:
        return self._path(name).exists()

    def get(self, name: str) -> Service:
        path = self._path(name)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise NotFound(f"no such service: {name}", hint="`corral service ls` lists them") from None
        try:
            return Service.from_dict(json.loads(text), str(path))
        except ValueError as exc:
            raise CorralError(f"service record {path} is not valid JSON: {exc}") from None

    def all(self) -> list[Service]:
        services = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                services.append(self.get(path.stem))
            except CorralError as exc:   # one torn record must not hide the others
                log.error("%s; that service is not run", exc)
        return services

    def delete(self, name: str) -> None:
        with self._lock:
            self._path(name).unlink(missing_ok=True)
