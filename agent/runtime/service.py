"""The runtime facade the API server calls: one method per container verb.

Every method takes a container reference (full id, unique id prefix, or name) and raises
NotFound / Conflict / InvalidArgument / LaunchError with a message that names the value.
"""
from __future__ import annotations

import builtins  # RuntimeService.list shadows `list` in the annotations of the methods after it
from dataclasses import dataclass
from typing import IO, Iterator, Protocol

from agent.images.model import Image
from agent.runtime.logs import LogQuery
from agent.runtime.model import Container, ContainerSpec


@dataclass
class ExecProcess:
    """A running `exec`: the launcher process with its output pipes."""

    pid: int
    stdout: IO[bytes] | None      # with a terminal: its master (read the output, write the input)
    stderr: IO[bytes]
    stdin: IO[bytes] | None = None  # with stdin and no terminal: the command's stdin
    tty: bool = False

    def wait(self) -> int:  # replaced by the runtime with the real waiter
        raise NotImplementedError


class RuntimeService(Protocol):
    def run(self, spec: ContainerSpec, *, hold: bool = False) -> Container:
        """Create and start; on any failure nothing is left behind and the error is raised.
        `hold`: a --rm container is not removed at its exit until `release` (the caller reads
        its log first, then removes it)."""

    def release(self, container_id: str) -> None:
        """End a `run`'s hold: a --rm container that has exited meanwhile is removed now."""

    def create(self, spec: ContainerSpec) -> Container: ...

    def start(self, ref: str) -> Container: ...

    def stop(self, ref: str, timeout: float | None = None, signal: int | None = None) -> Container:
        """`signal` (None: the container's stop signal, else SIGTERM), then SIGKILL after `timeout`
        seconds (None: the container's stop timeout, else 10); returns the exited container."""

    def kill(self, ref: str, signal: int = 9) -> Container: ...

    def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        """Refused (Conflict) for a running container unless force, which kills it first;
        `volumes` removes its anonymous volumes too."""

    def wait(self, ref: str, timeout: float | None = None, condition: str = "not-running") -> Container:
        """Block until the container has exited (`next-exit`: exited after this call; `removed`:
        is removed) or timeout; returns it with exit_code set."""

    def get(self, ref: str) -> Container: ...

    def list(self, all: bool = False) -> list[Container]: ...

    def inspect(self, ref: str) -> dict:
        """JSON-ready: state, pid, exit code, OOMKilled, times, cgroup paths and id, limits,
        rootfs, labels, image."""

    def logs(self, ref: str, follow: bool = False, query: LogQuery | None = None) -> Iterator[bytes]:
        """Docker-framed log bytes; with follow, keeps yielding until the container exits;
        `query` picks lines by time, tail and stream and adds timestamps (it has its own follow)."""

    def exec(self, ref: str, command: builtins.list[str], env: builtins.list[str] | None = None,
             workdir: str | None = None, *, tty: bool = False, stdin: bool = False,
             console_size: tuple[int, int] | None = None, user: str | None = None) -> ExecProcess:
        """Start a command in the running container; Conflict when it is not running. With
        `tty` in a terminal of the container's (`console_size` rows and columns), with `stdin`
        its stdin a pipe the caller writes; as `user` instead of the container's user."""

    # Images go through the runtime because only it knows which containers use an image.
    def list_images(self) -> builtins.list: ...          # list[agent.images.model.Image]

    def import_image(self, path: str, reference: str) -> Image:
        """Import a rootfs tarball (or an OCI layout directory) found at `path` on the host."""

    def remove_image(self, ref: str) -> None:
        """Conflict naming the containers that still use it."""
