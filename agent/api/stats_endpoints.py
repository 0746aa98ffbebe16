"""`GET /v1/stats`: cumulative figures of every running container, for `corral stats` and `top`.

The daemon answers with snapshots (agent.metrics.snapshot); the client turns two of them into
rates, so the daemon keeps no per-client state and two viewers never disturb each other.
"""
from __future__ import annotations

import time
from typing import Callable

from agent.api.bodies import StatsQuery
from agent.api.routes import Request, Response, Router


class StatsEndpoints:
    """`snapshots(with_syscalls)` returns list[ContainerSnapshot] of the running containers."""

    def __init__(self, snapshots: Callable[[bool], list] | None) -> None:
        self._snapshots = snapshots

    def register(self, router: Router) -> None:
        router.add("GET", "/v1/stats", self.stats, query=StatsQuery)

    def stats(self, request: Request) -> Response:
        with_syscalls = request.flag("syscalls")
        snapshots = self._snapshots(with_syscalls) if self._snapshots else []
        return Response.json({"time": time.time(), "containers": [s.to_dict() for s in snapshots]})
