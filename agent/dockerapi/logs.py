"""`GET /containers/{id}/logs` as Docker's daemon answers it, over Corral's log reader
(agent/runtime/logs.py: lines, tail, since/until, timestamps).

As dockerd reads the query: `since`/`until` are UNIX seconds with an optional fraction
(the CLI turns `10m` or a date into that; an RFC 3339 date is taken too), `until=0` is unset;
`tail` is a number of lines, and anything else (`all`, junk, a negative number) is all;
`details` prefixes each line with the record's attributes and a space: Corral keeps no
attributes (no `--log-opt labels/env`), so docker's output for a container without them, a
lone space. A container with a terminal gets its output raw, not multiplexed, as the CLI
expects from its `Tty`.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable, Iterator

from agent.api.frames import encode
from agent.dockerapi.router import Reply, Request
from agent.errors import InvalidArgument
from agent.log_time import parse_log_time
from agent.runtime.logs import LogQuery, open_log, read_log
from agent.runtime.model import Container

MULTIPLEXED = "application/vnd.docker.multiplexed-stream"
RAW = "application/vnd.docker.raw-stream"
_POLL = 0.1


def log_query(request: Request) -> LogQuery:
    """The query parameters as dockerd reads them; 400 naming the parameter when bad."""
    stdout, stderr = request.flag("stdout"), request.flag("stderr")
    if not (stdout or stderr):
        raise InvalidArgument("Bad parameters: you must choose at least one stream")
    tail_text = request.text("tail", "all").strip()
    tail = int(tail_text) if tail_text.lstrip("-").isdigit() and int(tail_text) >= 0 else None
    return LogQuery(follow=request.flag("follow"), timestamps=request.flag("timestamps"),
                    details=request.flag("details"), since=_time(request, "since"), until=_time(request, "until"),
                    tail=tail, stdout=stdout, stderr=stderr)


def _time(request: Request, name: str) -> int | None:
    text = request.text(name).strip()
    if text in ("", "0"):
        return None
    return parse_log_time(text, field=name)


def log_reply(container: Container, path: Path, query: LogQuery, *, alive: Callable[[], bool],
              stopping: threading.Event) -> Reply:
    tty = container.spec.tty

    def wait(seconds: float) -> None:
        stopping.wait(min(seconds, _POLL))

    def body() -> Iterator[bytes]:
        log = open_log(path, wait_for_it=query.follow, alive=alive, wait=wait, stopping=stopping.is_set)
        if log is None:
            return
        with log:
            for record in read_log(log, query, alive=alive, wait=wait, stopping=stopping.is_set):
                data = query.shown(record)
                yield data if tty else encode(record.stream, data)

    return Reply.chunks(body(), RAW if tty else MULTIPLEXED)
