"""What streams out of a container: logs, stats, top (attach and resize: attach.py).

Logs read the container's log file, which the launcher writes in Docker's own
frame format, so frames go out as they were written. The file is kept open while it is
followed: a `--rm` container's state (its log with it) is removed at exit, and the last words
must still reach the client. Docker's `since`, `until` and `timestamps` need a time per record,
which the log does not keep: they are refused (400) rather than answered wrongly.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import IO, Iterator

from agent.api.frames import STDERR, STDOUT, FrameDecoder, encode
from agent.cgroups.driver import CgroupPaths
from agent.dockerapi.app import Parts
from agent.dockerapi.errors import no_such_container
from agent.dockerapi.router import Reply, Request, Router
from agent.dockerapi.stats import stats_of
from agent.errors import Conflict, InvalidArgument, NotFound
from agent.runtime.model import CREATED, PAUSED, RUNNING, Container

MULTIPLEXED = "application/vnd.docker.multiplexed-stream"
RAW = "application/vnd.docker.raw-stream"
_POLL = 0.1


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
        streams = _streams(request)
        for name in ("since", "until"):
            if request.text(name) not in ("", "0"):
                raise InvalidArgument(f"{name}: Corral's log keeps no time per record, so it cannot honour "
                                      f"{name}={request.text(name)!r}")
        if request.flag("timestamps"):
            raise InvalidArgument("timestamps: Corral's log keeps no time per record, so it cannot honour timestamps")
        tail_text = request.text("tail", "all") or "all"
        if tail_text != "all" and not tail_text.lstrip("-").isdigit():
            raise InvalidArgument(f"tail: expected a number of lines or all, got {tail_text!r}")
        tail = None if tail_text == "all" or int(tail_text) < 0 else int(tail_text)
        frames = self._read(container, follow=request.flag("follow"), tail=tail, since_start=True)
        return Reply.chunks((encode(s, d) for s, d in frames if s in streams), MULTIPLEXED)

    def _read(self, container: Container, *, follow: bool, tail: int | None, since_start: bool,
              handle: IO[bytes] | None = None) -> Iterator[tuple[int, bytes]]:
        """(stream, bytes) records of the log: the last `tail` lines first, then, with `follow`,
        every frame written until the container has exited and its log is drained."""
        handle = handle or self._open(container, wait=follow)
        if handle is None:
            return
        with handle:
            if not since_start:
                handle.seek(0, os.SEEK_END)
            decoder = FrameDecoder()
            if tail is not None:
                yield from _last_lines(decoder.feed(handle.read()), tail)
            while True:
                alive = follow and self._alive(container.id)   # before reading: nothing written before exit is missed
                while chunk := handle.read(65536):
                    yield from decoder.feed(chunk)
                if not alive or self.parts.stopping.is_set():
                    return
                time.sleep(_POLL)

    def _open(self, container: Container, *, wait: bool) -> IO[bytes] | None:
        """The log file, waiting (with `wait`) for the launcher to make it at start."""
        path = self._log_path(container)
        while True:
            try:
                return open(path, "rb")  # noqa: SIM115 - closed by the reader that owns it
            except FileNotFoundError:
                if not wait or not self._alive(container.id) or self.parts.stopping.is_set():
                    return None
                time.sleep(_POLL)

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


def _streams(request: Request, default: bool = False) -> set[int]:
    wanted = {stream for stream, name in ((STDOUT, "stdout"), (STDERR, "stderr")) if request.flag(name, default)}
    if not wanted and request.path.endswith("/logs"):
        raise InvalidArgument("Bad parameters: you must choose at least one stream")
    return wanted


def _last_lines(frames: list[tuple[int, bytes]], count: int) -> list[tuple[int, bytes]]:
    """The last `count` lines of the records, each as its own record (docker's tail counts lines)."""
    lines: list[tuple[int, bytes]] = []
    partial: dict[int, bytes] = {}
    for stream, data in frames:
        pending = partial.pop(stream, b"") + data
        *complete, rest = pending.split(b"\n")
        lines += [(stream, line + b"\n") for line in complete]
        if rest:
            partial[stream] = rest
    lines += [(stream, rest) for stream, rest in partial.items()]
    return lines[-count:] if count else []

