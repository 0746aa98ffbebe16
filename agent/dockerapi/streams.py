"""What streams out of a container: logs (read by agent/dockerapi/logs.py), stats, top
(attach and resize: attach.py)."""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Iterator

from agent.cgroups.driver import CgroupPaths
from agent.dockerapi.app import Parts
from agent.dockerapi.errors import no_such_container
from agent.dockerapi.logs import MULTIPLEXED, RAW, log_query, log_reply  # noqa: F401 - attach.py and execs.py take them from here
from agent.dockerapi.router import Reply, Request, Router
from agent.dockerapi.stats import stats_of
from agent.errors import Conflict, InvalidArgument, NotFound
from agent.runtime.model import CREATED, PAUSED, RUNNING, Container


class StreamRoutes:
    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self.runtime = parts.runtime

    def register(self, router: Router) -> None:
        router.add("GET", "/containers/{id}/logs", self.logs)
        router.add("GET", "/containers/{id}/stats", self.stats)
        router.add("GET", "/containers/{id}/top", self.top)

    def _container(self, ref: str) -> Container:
        return no_such_container(ref, lambda: self.runtime.get(ref))

    def _log_path(self, container: Container) -> Path:
        return self.runtime.store.directory(container.id) / "container.log"

    def _alive(self, container_id: str) -> bool:
        try:
            return self.runtime.get(container_id).state in (RUNNING, CREATED, PAUSED)
        except NotFound:
            return False

    # Logs

    def logs(self, request: Request) -> Reply:
        container = self._container(request.params["id"])
        return log_reply(container, self._log_path(container), log_query(request),
                         alive=lambda: self._alive(container.id), stopping=self.parts.stopping)

    # Stats and top

    def stats(self, request: Request) -> Reply:
        container = self._container(request.params["id"])
        stream = request.flag("stream", True)
        one_shot = request.flag("one-shot")
        if one_shot and stream:
            raise InvalidArgument("one-shot: only with stream=false")
        parts = self.parts

        def sample(previous: dict | None) -> dict:
            current = self._container(container.id)
            return stats_of(current, parts.cgroups, previous)

        def lines() -> Iterator[bytes]:
            previous = None
            if not stream and not one_shot:
                previous = sample(None)             # precpu_stats: docker's second reading, a second later
                time.sleep(1.0)
            while True:
                shaped = sample(previous)
                yield json.dumps(shaped).encode() + b"\n"
                if not stream or parts.stopping.is_set():
                    return
                previous = shaped
                time.sleep(1.0)
                if not self._alive(container.id):
                    yield json.dumps(sample(previous)).encode() + b"\n"
                    return
        if not stream:
            return Reply(body=b"".join(lines()))
        return Reply.chunks(lines())

    def top(self, request: Request) -> Reply:
        container = self._container(request.params["id"])
        if container.state not in (RUNNING, PAUSED) or not container.cgroup:
            raise Conflict(f"Container {container.id} is not running")
        pids = set(self.parts.cgroups.procs(CgroupPaths.from_dict(container.cgroup)))
        args = (request.text("ps_args") or "-ef").split()
        done = subprocess.run(["ps", *args], capture_output=True, text=True, timeout=30, check=False)
        if done.returncode != 0:
            raise InvalidArgument(f"ps_args {' '.join(args)!r}: ps failed: {done.stderr.strip()}")
        return Reply.json(top_table(done.stdout, pids))


def top_table(output: str, pids: set[int]) -> dict:
    """ps output cut to the container's processes, the way dockerd cuts it."""
    lines = output.splitlines()
    if not lines:
        return {"Titles": [], "Processes": []}
    titles = lines[0].split()
    if "PID" not in titles:
        raise InvalidArgument("ps_args: the output has no PID column")
    column = titles.index("PID")
    processes = []
    for line in lines[1:]:
        fields = line.split(None, len(titles) - 1)
        if len(fields) > column and fields[column].isdigit() and int(fields[column]) in pids:
            processes.append(fields)
    return {"Titles": titles, "Processes": processes}
