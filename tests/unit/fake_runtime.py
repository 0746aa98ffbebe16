"""An in-memory RuntimeService for API and CLI tests: no processes, cgroups or images on disk.

Containers "run" until stopped or killed; `finish()` makes one exit with a code. Logs are kept
as Docker frames; `exec` runs its command on the host with `sh`, which is enough to test the
framing of real pipes. Lifecycle events go to the EventLog it is given, like the real runtime.
"""
from __future__ import annotations

import http.client
import socket
import subprocess
import threading
import time
from typing import Iterator

from agent.api import frames
from agent.errors import Conflict, InvalidArgument, NotFound
from agent.events import Event, EventLog
from agent.images.model import Image, ImageConfig
from agent.runtime.logs import LogQuery
from agent.runtime.model import CREATED, EXITED, RUNNING, Container, ContainerSpec
from agent.runtime.service import ExecProcess

LAYER = "sha256:" + "a" * 64


def make_image(name: str = "busybox", tag: str = "latest", digit: str = "b") -> Image:
    return Image(id="sha256:" + digit * 64, name=name, tag=tag, layers=[LAYER],
                 config=ImageConfig(cmd=["sh"]), created=time.time() - 3600, size=4_261_000)


class _HostExec(ExecProcess):
    def __init__(self, process: subprocess.Popen) -> None:
        super().__init__(process.pid, process.stdout, process.stderr, stdin=process.stdin)
        self._process = process

    def wait(self) -> int:
        return self._process.wait()


class FakeRuntime:
    def __init__(self, events: EventLog) -> None:
        self.events = events
        self.containers: dict[str, Container] = {}
        self.logs_of: dict[str, bytes] = {}
        self.images: list[Image] = [make_image()]
        self.calls: list[tuple] = []
        self.boom: Exception | None = None    # raised by list(), to test the 500 path
        self.on_start = None                   # called with each started container: its "program"
        self._changed = threading.Condition()
        self._serial = 0
        self.held: set[str] = set()            # run(hold=True) until release

    # helpers for tests

    def finish(self, ref: str, code: int, oom: bool = False) -> None:
        with self._changed:
            container = self.get(ref)
            container.state, container.exit_code, container.oom_killed = EXITED, code, oom
            container.finished_at = time.time()
            self._changed.notify_all()
        self.events.emit(Event("container", "die", container.id, container.name,
                               attributes={"exit_code": code}))
        if container.spec.auto_remove and container.id not in self.held:   # as the runtime's exit path
            with self._changed:
                self.containers.pop(container.id, None)
                self._changed.notify_all()

    def write_log(self, ref: str, stream: int, data: bytes) -> None:
        with self._changed:
            container = self.get(ref)
            self.logs_of[container.id] = self.logs_of.get(container.id, b"") + frames.encode(stream, data)
            self._changed.notify_all()

    # RuntimeService

    def run(self, spec: ContainerSpec, *, hold: bool = False) -> Container:
        self.calls.append(("run", spec))
        container = self.create(spec)
        if hold:
            self.held.add(container.id)
        return self.start(container.id)

    def release(self, container_id: str) -> None:
        self.calls.append(("release", container_id))
        self.held.discard(container_id)
        container = self.containers.get(container_id)
        if container is not None and container.spec.auto_remove and container.state == EXITED:
            del self.containers[container_id]

    def create(self, spec: ContainerSpec) -> Container:
        self.calls.append(("create", spec))
        if spec.image not in ("busybox", "busybox:latest"):
            raise NotFound(f"image {spec.image!r} not found", hint="`corral images` lists the images")
        if spec.name and any(c.name == spec.name for c in self.containers.values()):
            raise Conflict(f"the name {spec.name!r} is already used by a container")
        self._serial += 1
        container_id = f"{self._serial:02d}" + "c" * 62
        container = Container(id=container_id, name=spec.name or f"calm_pony{self._serial}", spec=spec,
                              image_id=self.images[0].id, created_at=time.time())
        self.containers[container_id] = container
        self.events.emit(Event("container", "create", container.id, container.name))
        return container

    def start(self, ref: str) -> Container:
        self.calls.append(("start", ref))
        container = self.get(ref)
        if container.state == RUNNING:
            raise Conflict(f"container {container.name} is already running")
        container.state, container.pid, container.started_at = RUNNING, 4242, time.time()
        self.events.emit(Event("container", "start", container.id, container.name))
        if self.on_start is not None:
            self.on_start(container)
        return container

    def stop(self, ref: str, timeout: float | None = None, signal: int | None = None) -> Container:
        self.calls.append(("stop", ref, timeout))
        container = self.get(ref)
        if container.state == RUNNING:
            self.finish(ref, 143)
        return container

    def kill(self, ref: str, signal: int = 9) -> Container:
        self.calls.append(("kill", ref, signal))
        container = self.get(ref)
        if container.state != RUNNING:
            raise Conflict(f"container {container.name} is not running")
        self.finish(ref, 128 + signal)
        return container

    def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        self.calls.append(("remove", ref, force) + (("volumes",) if volumes else ()))
        container = self.get(ref)
        if container.state == RUNNING and not force:
            raise Conflict(f"container {container.name} is running", hint="stop it first, or use `corral rm -f`")
        del self.containers[container.id]
        self.events.emit(Event("container", "destroy", container.id, container.name))

    def wait(self, ref: str, timeout: float | None = None, condition: str = "not-running") -> Container:
        self.calls.append(("wait", ref) if condition == "not-running" else ("wait", ref, condition))
        with self._changed:
            container = self.get(ref)
            self._changed.wait_for(lambda: container.state == EXITED, timeout=timeout or 10)
        return container

    def get(self, ref: str) -> Container:
        if ref in self.containers:
            return self.containers[ref]
        by_name = [c for c in self.containers.values() if c.name == ref]
        by_prefix = [c for c in self.containers.values() if c.id.startswith(ref)]
        matches = by_name or by_prefix
        if len(matches) > 1:
            raise InvalidArgument(f"container id prefix {ref!r} is ambiguous")
        if not matches:
            raise NotFound(f"no such container: {ref}")
        return matches[0]

    def list(self, all: bool = False) -> list[Container]:
        if self.boom is not None:
            raise self.boom
        return [c for c in self.containers.values() if all or c.state == RUNNING]

    def inspect(self, ref: str) -> dict:
        container = self.get(ref)
        return {"Id": container.id, "Name": container.name,
                "State": {"Status": container.state, "Running": container.state == RUNNING,
                          "ExitCode": container.exit_code, "OOMKilled": container.oom_killed},
                "Labels": dict(container.spec.labels)}

    def logs(self, ref: str, follow: bool = False, query: LogQuery | None = None) -> Iterator[bytes]:
        container = self.get(ref)
        if query is not None:
            self.calls.append(("logs", ref, query))
            follow = query.follow

        def chunks() -> Iterator[bytes]:
            sent = 0
            while True:
                with self._changed:
                    data = self.logs_of.get(container.id, b"")
                    if len(data) == sent:
                        if not follow or container.state not in (RUNNING, CREATED):
                            return
                        self._changed.wait(0.5)
                        continue
                yield data[sent:]
                sent = len(data)
        return chunks()

    def exec(self, ref: str, command: list[str], env: list[str] | None = None,
             workdir: str | None = None, *, tty: bool = False, stdin: bool = False,
             console_size: tuple[int, int] | None = None, user: str | None = None) -> ExecProcess:
        self.calls.append(("exec", ref, command, env, workdir))
        container = self.get(ref)
        if container.state != RUNNING:
            raise Conflict(f"container {container.name} is not running")
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                   env=dict(item.split("=", 1) for item in env or []), cwd=workdir)
        return _HostExec(process)

    def list_images(self) -> list[Image]:
        return list(self.images)

    def import_image(self, path: str, reference: str) -> Image:
        self.calls.append(("import_image", path, reference))
        name, _, tag = reference.partition(":")
        image = make_image(name, tag or "latest", digit="d")
        self.images.append(image)
        return image

    def remove_image(self, ref: str) -> None:
        self.calls.append(("remove_image", ref))
        for image in self.images:
            if image.reference == ref or image.name == ref or image.id == ref:
                if any(c.image_id == image.id for c in self.containers.values()):
                    raise Conflict(f"image {ref} is used by containers")
                self.images.remove(image)
                return
        raise NotFound(f"no such image: {ref}")


class FakeDaemon:
    """A real ApiServer over a FakeRuntime, on a socket in a fresh short temp dir (socket
    paths are limited to 107 bytes, which pytest's tmp_path can exceed)."""

    def __init__(self, **server_options) -> None:
        import tempfile
        from pathlib import Path

        from agent.api.client import ApiClient
        from agent.api.server import ApiServer

        self.dir = Path(tempfile.mkdtemp(prefix="corral-api-", dir="/tmp"))
        self.socket = self.dir / "run" / "corral.sock"
        self.host = f"unix://{self.socket}"
        self.events = EventLog(self.dir / "events.jsonl")
        self.runtime = FakeRuntime(self.events)
        self.info = {"cgroup_driver": "hybrid", "root": str(self.dir), "probes": {"oom": "attached"}}
        from agent.api.attach_endpoints import AttachEndpoints
        from agent.api.exec_endpoints import ExecEndpoints
        from agent.api.run_endpoints import RunEndpoints
        from agent.runtime.terminals import Terminals
        terminals = Terminals(self.runtime)   # type: ignore[arg-type]
        server_options.setdefault("extra_routes", [])
        server_options["extra_routes"] = [*server_options["extra_routes"], ExecEndpoints(terminals).register,
                                          AttachEndpoints(terminals).register, RunEndpoints(self.runtime).register]
        self.server = ApiServer(self.socket, self.runtime, self.events, lambda: dict(self.info),
                                **server_options)
        self.client = ApiClient(self.host)

    def __enter__(self) -> FakeDaemon:
        self.server.start()
        return self

    def __exit__(self, *exc_info) -> None:
        import shutil
        self.client.close()
        self.server.stop()
        self.events.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def raw(self, method: str, target: str, body: bytes | str | None = None,
            headers: dict | None = None) -> tuple[int, dict, bytes]:
        """One request with nothing in between: status, headers and body as sent."""
        connection = UnixConnection(str(self.socket), 10)
        try:
            connection.request(method, target, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()


class UnixConnection(http.client.HTTPConnection):
    """http.client over the daemon's socket: a client independent of ours, to see what the
    server sends byte for byte."""

    def __init__(self, path: str, timeout: float | None) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self._path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
