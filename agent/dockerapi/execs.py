"""Exec: create, start (hijacked after 101 UPGRADED, or detached), inspect.

An exec instance is held here from create to a while after it ends, so a client reads its
exit code (`docker exec` and docker-py ask for it after the stream closes: it is recorded
before the connection is closed). Terminals and stdin wait for the tty work; until then a
create asking for them is refused, naming the field.
"""
from __future__ import annotations

import os
import secrets
import selectors
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import IO, Any

from agent.api.frames import STDERR, STDOUT, encode
from agent.dockerapi.app import Parts
from agent.dockerapi.create import is_zero
from agent.dockerapi.errors import no_such_container
from agent.dockerapi.router import Reply, Request, Router
from agent.dockerapi.streams import MULTIPLEXED, _close_write
from agent.errors import Conflict, InvalidArgument, NotFound
from agent.runtime.model import RUNNING

MAX_EXECS = 1024           # instances remembered; the oldest finished ones are forgotten first
_HONOURED = {"AttachStdout", "AttachStderr", "Cmd", "Env", "WorkingDir", "User", "DetachKeys", "ConsoleSize",
             "Container"}   # docker-py repeats the container id in the body


@dataclass
class ExecInstance:
    id: str
    container_id: str
    command: list[str]
    env: list[str]
    workdir: str | None
    attach_stdout: bool
    attach_stderr: bool
    user: str = ""
    running: bool = False
    started: bool = False
    exit_code: int | None = None
    pid: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def view(self) -> dict:
        return {"ID": self.id, "ContainerID": self.container_id, "Running": self.running,
                "ExitCode": self.exit_code, "Pid": self.pid, "CanRemove": False, "DetachKeys": "",
                "OpenStdin": False, "OpenStdout": self.attach_stdout, "OpenStderr": self.attach_stderr,
                "ProcessConfig": {"entrypoint": self.command[0], "arguments": self.command[1:],
                                  "privileged": False, "tty": False, "user": self.user}}


class ExecRoutes:
    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self.runtime = parts.runtime
        self._execs: OrderedDict[str, ExecInstance] = OrderedDict()
        self._guard = threading.Lock()

    def register(self, router: Router) -> None:
        router.add("POST", "/containers/{id}/exec", self.create)
        router.add("POST", "/exec/{id}/start", self.start)
        router.add("GET", "/exec/{id}/json", self.inspect)
        router.add("POST", "/exec/{id}/resize", self.resize)

    def create(self, request: Request) -> Reply:
        container = no_such_container(request.params["id"], lambda: self.runtime.get(request.params["id"]))
        body = request.json()
        for key, value in body.items():
            if key not in _HONOURED and not is_zero(value):
                raise InvalidArgument(f"{key}: Corral cannot honour {value!r} for exec yet "
                                      "(terminals and stdin through this API come with the tty work)", field=key)
        if container.state != RUNNING:
            raise Conflict(f"Container {container.id} is not running")
        command = body.get("Cmd") or []
        if isinstance(command, str):
            command = [command]
        if not command or not all(isinstance(item, str) for item in command):
            raise InvalidArgument("Cmd: a command of strings is required")
        user = body.get("User") or ""
        if user and user != (container.spec.user or ""):
            raise InvalidArgument(f"User: Corral runs exec as the container's user; cannot honour {user!r}",
                                  field="User")
        instance = ExecInstance(id=secrets.token_hex(32), container_id=container.id, command=list(command),
                                env=list(body.get("Env") or []), workdir=body.get("WorkingDir") or None,
                                attach_stdout=bool(body.get("AttachStdout", True)),
                                attach_stderr=bool(body.get("AttachStderr", True)), user=user)
        with self._guard:
            self._execs[instance.id] = instance
            while len(self._execs) > MAX_EXECS:
                oldest = next((k for k, v in self._execs.items() if not v.running), None)
                if oldest is None:
                    break
                del self._execs[oldest]
        return Reply.json({"Id": instance.id}, status=201)

    def _get(self, exec_id: str) -> ExecInstance:
        with self._guard:
            instance = self._execs.get(exec_id)
        if instance is None:
            raise NotFound(f"No such exec instance: {exec_id}")
        return instance

    def inspect(self, request: Request) -> Reply:
        return Reply.json(self._get(request.params["id"]).view())

    def resize(self, request: Request) -> Reply:
        self._get(request.params["id"])
        raise InvalidArgument("resize: this exec has no terminal")

    def start(self, request: Request) -> Reply:
        instance = self._get(request.params["id"])
        body = request.json(required=False)
        if body.get("Tty"):
            raise InvalidArgument("Tty: Corral cannot honour a terminal for exec yet", field="Tty")
        with instance.lock:
            if instance.started:
                raise Conflict(f"exec {instance.id} has already been started")
            instance.started = True
        process = self.runtime.exec(instance.container_id, instance.command, env=instance.env,
                                    workdir=instance.workdir)
        instance.pid = process.pid
        instance.running = True
        streams = {s for s, on in ((STDOUT, instance.attach_stdout), (STDERR, instance.attach_stderr)) if on}
        if body.get("Detach"):
            threading.Thread(target=_pump, args=(process, instance, None, set()), daemon=True,
                             name="docker-exec-detached").start()
            return Reply.empty(200)

        def hijacked(connection: Any, rfile: IO[bytes], wfile: IO[bytes]) -> None:
            _pump(process, instance, wfile, streams)
            _close_write(connection)

        return Reply(content_type=MULTIPLEXED, hijack=hijacked)


def _pump(process, instance: ExecInstance, wfile: IO[bytes] | None, streams: set[int]) -> None:
    """Frames of the process's output to `wfile` while they come; the exit code is recorded
    before returning, so an inspect after the stream ends sees it."""
    selector = selectors.DefaultSelector()
    try:
        for stream, pipe in ((STDOUT, process.stdout), (STDERR, process.stderr)):
            if pipe is not None:
                selector.register(pipe, selectors.EVENT_READ, stream)
        while selector.get_map():
            for key, _ in selector.select():
                data = os.read(key.fd, 65536)
                if not data:
                    selector.unregister(key.fileobj)
                elif wfile is not None and key.data in streams:
                    try:
                        wfile.write(encode(key.data, data))
                    except OSError:
                        wfile = None      # the client left; the command runs on, its output dropped
    finally:
        selector.close()
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()
        instance.exit_code = process.wait()
        instance.running = False
