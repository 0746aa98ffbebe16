"""pause, unpause, rename, update and restart through Corral's own life-cycle verbs
(agent/runtime/lifecycle.py); docker's update body is translated like create's fields: a
non-zero field Corral cannot change live is refused naming it."""
from __future__ import annotations

from typing import Any

from agent import schema
from agent.dockerapi.app import Parts
from agent.dockerapi.create import is_zero
from agent.dockerapi.errors import no_such_container
from agent.dockerapi.router import Reply, Request, Router
from agent.errors import InvalidArgument
from agent.runtime.model import RestartPolicy
from agent.units import parse_signal


class LifecycleRoutes:
    def __init__(self, parts: Parts) -> None:
        from agent.runtime.lifecycle import Lifecycle
        self.parts = parts
        self._verbs: Any = None
        self._make = Lifecycle

    @property
    def verbs(self) -> Any:
        if self._verbs is None:
            self._verbs = self._make(self.parts.runtime)
        return self._verbs

    def register(self, router: Router) -> None:
        router.add("POST", "/containers/{id}/pause", self.pause)
        router.add("POST", "/containers/{id}/unpause", self.unpause)
        router.add("POST", "/containers/{id}/rename", self.rename)
        router.add("POST", "/containers/{id}/update", self.update)
        router.add("POST", "/containers/{id}/restart", self.restart)

    def _id(self, request: Request) -> str:
        ref = request.params["id"]
        return no_such_container(ref, lambda: self.parts.runtime.get(ref)).id

    def pause(self, request: Request) -> Reply:
        self.verbs.pause(self._id(request))
        return Reply.empty()

    def unpause(self, request: Request) -> Reply:
        self.verbs.unpause(self._id(request))
        return Reply.empty()

    def rename(self, request: Request) -> Reply:
        name = request.text("name").lstrip("/")
        if not name:
            raise InvalidArgument("name: a new name is required")
        self.verbs.rename(self._id(request), name)
        return Reply.empty()

    def restart(self, request: Request) -> Reply:
        timeout = request.integer("t", None)
        signal = request.text("signal")
        self.verbs.restart(self._id(request), timeout=float(timeout) if timeout is not None and timeout >= 0 else None,
                           signal=parse_signal(signal, field="query parameter signal") if signal else None)
        return Reply.empty()

    def update(self, request: Request) -> Reply:
        body = request.json()
        changes: dict[str, Any] = {}
        for key, value in body.items():
            if is_zero(value) or key == "RestartPolicy" and is_zero(value.get("Name")):
                continue
            if key == "Memory":
                changes["memory"] = value
            elif key == "NanoCpus":
                changes["cpus"] = value / 1e9
            elif key == "PidsLimit" and value > 0:
                changes["pids_limit"] = value
            elif key == "RestartPolicy":
                # The runtime takes the policy object, as Corral's own update hands it over.
                changes["restart_policy"] = schema.convert(
                    {"name": value.get("Name"), "maximum_retry_count": value.get("MaximumRetryCount") or 0},
                    RestartPolicy, "RestartPolicy")
            elif key == "MemorySwap" and value == body.get("Memory"):
                continue
            elif not (key == "PidsLimit" and value == -1):
                raise InvalidArgument(f"{key}: Corral cannot update {value!r} on a container", field=key)
        self.verbs.update(self._id(request), changes)
        return Reply.json({"Warnings": []})
