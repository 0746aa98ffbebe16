"""Exec: create, start (hijacked after 101 UPGRADED, or detached), resize, inspect.

Create only records what was asked (Docker's two steps); start runs it through Corral's own
interactive exec (agent/runtime/terminals.py, the one terminal path the v1 API's `corral exec
-it` uses too), with a terminal when `Tty` (the output then raw, else Docker's multiplexed
frames) and the client's bytes as stdin when `AttachStdin` (its half-close is the command's
end of input). An instance is held here from create to a while after it ends, so a client
reads its exit code (`docker exec` and docker-py ask for it after the stream closes: it is
recorded before the connection is closed). As dockerd's, an exec outlives its client: one that
detaches (`DetachKeys`, ctrl-p,ctrl-q unless given, with a terminal) or goes away leaves the
command running, its output dropped.
"""
from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import IO, Any

from agent.api.frames import STDERR, STDOUT
from agent.dockerapi.app import Parts
from agent.dockerapi.attach import console_size, terminal_size
from agent.dockerapi.create import is_zero
from agent.dockerapi.errors import no_such_container
from agent.dockerapi.router import Reply, Request, Router
from agent.dockerapi.streams import MULTIPLEXED, RAW
from agent.errors import Conflict, InvalidArgument, NotFound
from agent.runtime.attach import DEFAULT_DETACH_KEYS, parse_detach_keys
from agent.runtime.exec_session import ExecSession
from agent.runtime.model import PAUSED, RUNNING

MAX_EXECS = 1024           # instances remembered; the oldest finished ones are forgotten first
_HONOURED = {"AttachStdin", "AttachStdout", "AttachStderr", "Tty", "Cmd", "Env", "WorkingDir", "User",
             "DetachKeys", "ConsoleSize", "Privileged",
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
    attach_stdin: bool = False
    tty: bool = False
    user: str = ""
    privileged: bool = False
    detach_keys: str = ""
    console_size: tuple[int, int] | None = None
    started: bool = False
    session: ExecSession | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def view(self) -> dict:
        session = self.session
        return {"ID": self.id, "ContainerID": self.container_id,
                "Running": session is not None and session.running,
                "ExitCode": session.exit_code if session is not None else None,
                "Pid": session.process.pid if session is not None else 0, "CanRemove": False,
                "DetachKeys": self.detach_keys, "OpenStdin": self.attach_stdin,
                "OpenStdout": self.attach_stdout, "OpenStderr": self.attach_stderr,
                "ProcessConfig": {"entrypoint": self.command[0], "arguments": self.command[1:],
                                  "privileged": self.privileged, "tty": self.tty, "user": self.user}}


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
        if not isinstance(body, dict):
            raise InvalidArgument("the exec body must be a JSON object")
        for key, value in body.items():
            if key not in _HONOURED and not is_zero(value):
                raise InvalidArgument(f"{key}: Corral cannot honour {value!r} for exec", field=key)
        if container.state == PAUSED:
            raise Conflict(f"Container {container.id} is paused, unpause the container before exec")
        if container.state != RUNNING:
            raise Conflict(f"Container {container.id} is not running")
        command = body.get("Cmd") or []
        if isinstance(command, str):
            command = [command]
        if not command or not all(isinstance(item, str) for item in command):
            raise InvalidArgument("Cmd: a command of strings is required", field="Cmd")
        privileged = bool(body.get("Privileged"))
        if privileged and not container.spec.privileged:
            # Corral's exec keeps the container's capabilities, seccomp filter and cgroup; more
            # than the container has would be a way out of what it was given.
            raise InvalidArgument("Privileged: Corral runs exec with the container's own privileges; an exec "
                                  "is privileged only in a container run with --privileged", field="Privileged")
        instance = ExecInstance(id=secrets.token_hex(32), container_id=container.id, command=list(command),
                                env=_strings(body.get("Env"), "Env"), workdir=body.get("WorkingDir") or None,
                                attach_stdout=bool(body.get("AttachStdout", True)),
                                attach_stderr=bool(body.get("AttachStderr", True)),
                                attach_stdin=bool(body.get("AttachStdin")), tty=bool(body.get("Tty")),
                                user=body.get("User") or "", privileged=privileged,
                                detach_keys=_detach_keys(body.get("DetachKeys")),
                                console_size=console_size(body.get("ConsoleSize"), "ConsoleSize"))
        with self._guard:
            self._execs[instance.id] = instance
            while len(self._execs) > MAX_EXECS:
                oldest = next((k for k, v in self._execs.items() if v.session is None or not v.session.running), None)
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
        instance = self._get(request.params["id"])
        rows, cols = terminal_size(request)
        if not instance.tty:
            raise InvalidArgument(f"exec {instance.id[:12]} has no terminal to resize (created without Tty)")
        if instance.session is None:
            raise Conflict(f"exec {instance.id[:12]} has not been started")
        instance.session.resize(rows, cols)
        return Reply.empty(200)

    def start(self, request: Request) -> Reply:
        instance = self._get(request.params["id"])
        body = request.json(required=False)
        if not isinstance(body, dict):
            raise InvalidArgument("the exec start body must be a JSON object")
        detach = bool(body.get("Detach"))
        size = console_size(body.get("ConsoleSize"), "ConsoleSize") or instance.console_size
        with instance.lock:
            if instance.started:
                raise Conflict(f"exec {instance.id} has already been started")
            instance.started = True
        session = self.parts.terminals.exec(
            instance.container_id, instance.command, env=instance.env, workdir=instance.workdir,
            tty=instance.tty, stdin=instance.attach_stdin and not detach,
            console_size=size if instance.tty else None, user=instance.user or None)
        instance.session = session
        if detach:
            threading.Thread(target=session.drain, daemon=True, name="docker-exec-detached").start()
            return Reply.empty(200)
        streams = frozenset(s for s, on in ((STDOUT, instance.attach_stdout), (STDERR, instance.attach_stderr)) if on)

        def hijacked(connection: Any, rfile: IO[bytes], wfile: IO[bytes]) -> None:
            wfile.flush()
            session.serve(connection, rfile.read1, raw=instance.tty, exit_frame=False,  # type: ignore[attr-defined]
                          streams=streams, detach_keys=parse_detach_keys(instance.detach_keys or DEFAULT_DETACH_KEYS),
                          outlive_client=True)

        return Reply(content_type=RAW if instance.tty else MULTIPLEXED, hijack=hijacked)


def _strings(value: Any, name: str) -> list[str]:
    if is_zero(value):
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidArgument(f"{name}: expected a list of strings", field=name)
    return list(value)


def _detach_keys(value: Any) -> str:
    if is_zero(value):
        return ""
    if not isinstance(value, str):
        raise InvalidArgument(f"DetachKeys: expected keys like ctrl-p,ctrl-q, got {value!r}", field="DetachKeys")
    parse_detach_keys(value, field="DetachKeys")
    return value
