"""Attach, resize and interactive exec over the runtime's containers: the one place front ends
(the v1 API in agent/api/attach_endpoints.py, the Docker API) get a container's terminal from.

    terminals = Terminals(runtime)
    attachment = terminals.attach("web", AttachOptions(stdin=True))   # errors before any byte
    attachment.serve(conn, read)                                       # then the relay
    terminals.resize("web", rows=40, cols=120)
    session = terminals.exec("web", ["sh"], tty=True, stdin=True)      # an interactive exec
    session.serve(conn, read, raw=True, exit_frame=False)              # Docker's exec start
    terminals.resize_exec(session.id, 40, 120)
"""
from __future__ import annotations

import secrets
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from agent.errors import Conflict, NotFound
from agent.runtime.attach import resize_terminal
from agent.runtime.attach_session import Attachment, AttachOptions
from agent.runtime.exec_session import ExecSession
from agent.runtime.model import CREATED, RUNNING, Container

if TYPE_CHECKING:
    from agent.runtime.containers import Runtime

LOG_NAME = "container.log"
MAX_EXECS = 256        # execs remembered for resize and their exit code, newest kept


class Terminals:
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._execs: dict[str, ExecSession] = {}      # oldest first
        self._lock = threading.Lock()

    def attach(self, ref: str, options: AttachOptions) -> Attachment:
        """An attachment to a created or running container (a stopped one only to read its
        log with `logs`); NotFound or Conflict before anything is sent."""
        container = self._runtime.get(ref)
        if container.state not in (CREATED, RUNNING) and not options.logs:
            raise Conflict(f"container {container.name} is not running: one cannot attach to it",
                           hint=f"start it, or read what it wrote with `corral logs {container.name}`")
        directory = self._directory(container)
        container_id = container.id

        def state() -> str | None:
            try:
                return self._runtime.get(container_id).state
            except NotFound:
                return None

        return Attachment(state_dir=directory, log_path=directory / LOG_NAME, tty=container.spec.tty,
                          close_stdin_at_eof=container.spec.stdin_once, options=options, state=state,
                          wait_change=self._runtime.wait_change)

    def resize(self, ref: str, rows: int, cols: int) -> None:
        """Set the size of a running container's terminal."""
        container = self._runtime.get(ref)
        if not container.spec.tty:
            raise Conflict(f"container {container.name} has no terminal to resize",
                           hint="only containers run with -t have one")
        if container.state != RUNNING:
            raise Conflict(f"container {container.name} is not running")
        resize_terminal(self._directory(container), rows, cols)

    def exec(self, ref: str, command: list[str], *, env: list[str] | None = None, workdir: str | None = None,
             tty: bool = False, stdin: bool = False, console_size: tuple[int, int] | None = None,
             user: str | None = None) -> ExecSession:
        """Start a command in a running container, to be relayed with `serve`; it is kept
        (for `resize_exec` and its exit code) until MAX_EXECS newer ones have started."""
        process = self._runtime.exec(ref, command, env=env, workdir=workdir, tty=tty, stdin=stdin,
                                     console_size=console_size, user=user)
        session = ExecSession(secrets.token_hex(32), self._runtime.get(ref).id, process, stdin=stdin)
        with self._lock:
            self._execs[session.id] = session
            while len(self._execs) > MAX_EXECS:
                self._execs.pop(next(iter(self._execs)))
        return session

    def get_exec(self, exec_id: str) -> ExecSession:
        with self._lock:
            session = self._execs.get(exec_id)
        if session is None:
            raise NotFound(f"no such exec: {exec_id}")
        return session

    def resize_exec(self, exec_id: str, rows: int, cols: int) -> None:
        session = self.get_exec(exec_id)
        if not session.tty:
            raise Conflict(f"exec {exec_id[:12]} has no terminal to resize", hint="only exec -t has one")
        session.resize(rows, cols)

    def _directory(self, container: Container) -> Path:
        return self._runtime.store.directory(container.id)
