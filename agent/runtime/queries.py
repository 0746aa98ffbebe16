"""The Runtime's questions about containers: get, list, inspect, logs and waiting for a change.
Part of the Runtime (agent/runtime/containers.py), kept apart so each file reads in one sitting.
"""
from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Iterator

from agent.cgroups.driver import CgroupDriver, CgroupPaths
from agent.errors import CorralError, NotFound
from agent.runtime import inspect as inspection
from agent.runtime.logs import LogQuery, encoded_log
from agent.runtime.model import CREATED, LIVE, Container
from agent.runtime.state import ContainerStore

if TYPE_CHECKING:
    from agent.images.store import ImageStore


class ContainerQueries:
    """A mixin: the Runtime sets these attributes."""

    store: ContainerStore
    images: ImageStore
    cgroups: CgroupDriver
    _changed: threading.Condition

    def wait(self, ref: str, timeout: float | None = None, condition: str = "not-running") -> Container:
        """Until the container is not running (`not-running`), has exited after this call
        (`next-exit`) or is removed (`removed`: the container as last seen); or timeout."""
        container = self.store.get(ref)
        container_id, exited_before = container.id, container.finished_at
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while True:
                try:
                    container = self.store.get(container_id)
                except NotFound:
                    if condition == "removed":
                        return container
                    raise NotFound(f"container {ref} was removed while waiting for it") from None
                if container.state not in LIVE and container.state != CREATED and (
                        condition == "not-running"
                        or condition == "next-exit" and container.finished_at != exited_before):
                    return container
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return container
                self._changed.wait(remaining)

    def get(self, ref: str) -> Container:
        return self.store.get(ref)

    def wait_change(self, seconds: float) -> None:
        """Sleep until any container changes state, or `seconds` pass."""
        with self._changed:
            self._changed.wait(seconds)

    def inspect(self, ref: str) -> dict:
        container = self.store.get(ref)
        limits = None
        if container.cgroup and self.cgroups.exists(CgroupPaths.from_dict(container.cgroup)):
            limits = self.cgroups.read_limits(CgroupPaths.from_dict(container.cgroup))
        layers = []
        try:
            layers = [str(p) for p in self.images.layer_paths(self.images.get(container.image_id))]
        except CorralError:
            pass
        return inspection.describe(container, limits, self.cgroups.mode, layers,
                                   self.store.directory(container.id))

    def logs(self, ref: str, follow: bool = False, query: LogQuery | None = None) -> Iterator[bytes]:
        """Docker frames of the log; `query` (agent/runtime/logs.py) says which, else all, followed
        with `follow`."""
        container = self.store.get(ref)
        path = self.store.directory(container.id) / "container.log"

        def running() -> bool:
            try:
                return self.store.get(container.id).state in (*LIVE, CREATED)
            except NotFound:
                return False

        return encoded_log(path, query or LogQuery(follow=follow), alive=running, wait=self.wait_change)

    def list(self, all: bool = False) -> list[Container]:
        containers = self.store.all()
        return containers if all else [c for c in containers if c.state in LIVE]
