"""`ApiClient`: the daemon's API from the caller's side, with only the standard library.

One method per route. JSON routes return the decoded JSON; streaming routes are generators
(`logs`, `exec` yield `(stream, bytes)` frames; `events` yields event dicts). An error the
daemon answers with is raised again as the same CorralError class, so `corral` exits and
prints exactly what the daemon said.
"""
from __future__ import annotations

from collections.abc import Iterator

from agent.api.image_client import ImageCalls
from agent.api.keepalive import KeptConnection
from agent.api.lifecycle_client import LifecycleCalls
from agent.api.transport import _filters, _ref, _stat_of
from agent.errors import CorralError, InvalidArgument

TYPE_CHECKING = False   # typing.TYPE_CHECKING without importing typing, ~4 ms of every CLI start
if TYPE_CHECKING:
    import _socket
    from typing import Any

DEFAULT_HOST = "unix:///run/corral/corral.sock"


def socket_path_of(host: str) -> str:
    """The socket path of `unix:///run/corral/corral.sock` (a bare absolute path works too)."""
    if host.startswith("unix://"):
        path = host[len("unix://"):]
    elif host.startswith("/"):
        path = host
    else:
        raise InvalidArgument(f"host {host!r}: only UNIX sockets are supported",
                              hint="write it like unix:///run/corral/corral.sock")
    if not path.startswith("/"):
        raise InvalidArgument(f"host {host!r}: the socket path must be absolute, like unix:///run/corral/corral.sock")
    return path


class ApiClient(LifecycleCalls, ImageCalls):
    """A client of the daemon at `host`. JSON calls share one kept connection (HTTP keep-alive,
    agent/api/keepalive.py); each stream opens its own. `close()` (or `with`) closes the kept one.
    The life-cycle routes' methods are in agent/api/lifecycle_client.py, the images' in
    agent/api/image_client.py, the requests under them in agent/api/transport.py."""

    def __init__(self, host: str = DEFAULT_HOST, *, timeout: float | None = None) -> None:
        self.host = host
        self._path = socket_path_of(host)
        self._timeout = timeout   # None: `wait` and `stop` may take as long as the container does
        self._kept = KeptConnection(self._path)

    def close(self) -> None:
        """Close the kept connection (a later call opens a new one)."""
        self._kept.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # The daemon

    def version(self) -> dict:
        return self._json("GET", "/v1/version")

    def info(self) -> dict:
        return self._json("GET", "/v1/info")

    # Containers

    def list_containers(self, all: bool = False, filters: dict | None = None) -> list[dict]:
        """`filters`: docker's {"label": ["a=b"], "status": ["exited"]} (agent/runtime/filters.py)."""
        return self._json("GET", "/v1/containers", query={"all": all, **_filters(filters)})

    def create_container(self, spec: dict, *, start: bool = False) -> dict:
        return self._json("POST", "/v1/containers", body=spec, query={"start": start})

    def inspect_container(self, ref: str) -> dict:
        return self._json("GET", f"/v1/containers/{_ref(ref)}")

    def start_container(self, ref: str) -> dict:
        return self._json("POST", f"/v1/containers/{_ref(ref)}/start")

    def stop_container(self, ref: str, timeout: float | None = None, signal: str | None = None) -> dict:
        query: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        if signal is not None:
            query["signal"] = signal
        return self._json("POST", f"/v1/containers/{_ref(ref)}/stop", query=query)

    def kill_container(self, ref: str, signal: str | int = "KILL") -> dict:
        return self._json("POST", f"/v1/containers/{_ref(ref)}/kill", query={"signal": signal})

    def wait_container(self, ref: str, condition: str = "not-running", *, remove: bool = False) -> dict:
        """{"exit_code": int, "oom_killed": bool} once the container has exited (`condition`:
        not-running, next-exit or removed); `remove`: the daemon then removes it with its
        anonymous volumes before it answers."""
        query: dict[str, Any] = {} if condition == "not-running" else {"condition": condition}
        if remove:
            query["remove"] = True
        return self._json("POST", f"/v1/containers/{_ref(ref)}/wait", query=query)

    def remove_container(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        query = {"force": force, "volumes": True} if volumes else {"force": force}
        self._json("DELETE", f"/v1/containers/{_ref(ref)}", query=query)

    def logs(self, ref: str, follow: bool = False, *, timestamps: bool = False, since: str | None = None,
             until: str | None = None, tail: str = "all") -> Iterator[tuple[int, bytes]]:
        """(stream, data) frames of the container's log; 1 is stdout, 2 is stderr. `since` and
        `until` in docker's syntax (agent/log_time.py), `tail` a number or all."""
        query: dict[str, Any] = {"follow": follow}
        if timestamps:
            query["timestamps"] = True
        if since is not None:
            query["since"] = since
        if until is not None:
            query["until"] = until
        if tail != "all":
            query["tail"] = tail
        response = self._open("GET", f"/v1/containers/{_ref(ref)}/logs", query=query)
        yield from self._frames(response)

    def exec(self, ref: str, command: list[str], env: list[str] | None = None,
             workdir: str | None = None) -> Iterator[tuple[int, bytes]]:
        """(stream, data) frames of the command's output, then (3, b"<exit code>")."""
        body: dict[str, Any] = {"command": list(command), "env": list(env or [])}
        if workdir is not None:
            body["workdir"] = workdir
        response = self._open("POST", f"/v1/containers/{_ref(ref)}/exec", body=body)
        yield from self._frames(response)

    def attach(self, ref: str, *, stdin: bool, logs: bool = False,
               detach_keys: str | None = None) -> tuple[_socket.socket, bytes]:
        """The container's output and stdin over an upgraded connection: the socket and the
        first bytes already read. Raw bytes with a terminal, else Docker frames."""
        query: dict[str, Any] = {"stream": True, "stdin": stdin, "stdout": True, "stderr": True, "logs": logs}
        if detach_keys is not None:
            query["detachKeys"] = detach_keys
        sock, first, _ = self._upgrade(f"/v1/containers/{_ref(ref)}/attach", query=query)
        return sock, first

    def resize_container(self, ref: str, rows: int, cols: int) -> None:
        self._json("POST", f"/v1/containers/{_ref(ref)}/resize", query={"h": rows, "w": cols})

    def exec_interactive(self, ref: str, command: list[str], *, env: list[str] | None = None,
                         workdir: str | None = None, tty: bool, stdin: bool,
                         console_size: tuple[int, int] | None = None) -> tuple[_socket.socket, str, bytes]:
        """An exec over an upgraded connection: the socket (stdin one way, Docker frames and
        the exit-code frame the other), the exec's id (for resize_exec), the first bytes."""
        body: dict[str, Any] = {"command": list(command), "env": list(env or []), "tty": tty, "stdin": stdin}
        if workdir is not None:
            body["workdir"] = workdir
        if console_size is not None:
            body["console_size"] = list(console_size)
        sock, first, headers = self._upgrade(f"/v1/containers/{_ref(ref)}/exec", body=body)
        return sock, headers.get("corral-exec-id", ""), first

    def resize_exec(self, exec_id: str, rows: int, cols: int) -> None:
        self._json("POST", f"/v1/execs/{_ref(exec_id)}/resize", query={"h": rows, "w": cols})

    # Events

    def events(self, since: float | None = None, follow: bool = False,
               filters: dict | None = None) -> Iterator[dict]:
        query: dict[str, Any] = {"follow": follow, **_filters(filters)}
        if since is not None:
            query["since"] = since
        return self._lines("GET", "/v1/events", query=query)

    # Networks

    def list_networks(self, filters: dict | None = None) -> list[dict]:
        return self._json("GET", "/v1/networks", query=_filters(filters))

    def create_network(self, name: str, subnet: str | None = None, internal: bool = False) -> dict:
        body: dict[str, Any] = {"name": name, "internal": internal}
        if subnet is not None:
            body["subnet"] = subnet
        return self._json("POST", "/v1/networks", body=body)

    def inspect_network(self, name: str) -> dict:
        return self._json("GET", f"/v1/networks/{_ref(name)}")

    def remove_network(self, name: str) -> None:
        self._json("DELETE", f"/v1/networks/{_ref(name)}")

    def connect_network(self, name: str, container: str, aliases: list[str] | None = None,
                        ip: str | None = None) -> dict:
        body: dict = {"container": container, "aliases": list(aliases or [])}
        if ip is not None:
            body["ip"] = ip
        return self._json("POST", f"/v1/networks/{_ref(name)}/connect", body=body)

    def disconnect_network(self, name: str, container: str, force: bool = False) -> dict:
        return self._json("POST", f"/v1/networks/{_ref(name)}/disconnect",
                          body={"container": container, "force": force})

    # Volumes

    def list_volumes(self, filters: dict | None = None) -> list[dict]:
        """`filters`: docker's {"dangling": ["true"], "label": ["a=b"], "name": [...], "driver": [...]}."""
        return self._json("GET", "/v1/volumes", query=_filters(filters))

    def create_volume(self, name: str | None = None, labels: dict | None = None) -> dict:
        body: dict[str, Any] = {"labels": dict(labels or {})}
        if name is not None:
            body["name"] = name
        return self._json("POST", "/v1/volumes", body=body)

    def inspect_volume(self, name: str) -> dict:
        return self._json("GET", f"/v1/volumes/{_ref(name)}")

    def remove_volume(self, name: str, force: bool = False) -> None:
        self._json("DELETE", f"/v1/volumes/{_ref(name)}", query={"force": force})

    def prune_volumes(self, all: bool = False) -> dict:
        return self._json("POST", "/v1/volumes/prune", query={"all": all})

    # Files of containers

    def stat_path(self, ref: str, path: str) -> dict:
        """Docker's stat of a container path (from the X-Docker-Container-Path-Stat header)."""
        target = f"/v1/containers/{_ref(ref)}/archive"
        try:
            response = self._open("HEAD", target, query={"path": path})
        except CorralError as exc:
            if str(exc).startswith("the daemon answered"):
                # A HEAD answer has no body to carry the error: ask again for the message.
                self._open("GET", target, query={"path": path}).close()
            raise
        response.close()
        return _stat_of(response)

    def get_archive(self, ref: str, path: str) -> tuple[dict, Iterator[bytes]]:
        """The stat of a container path and its tar stream, in chunks."""
        response = self._open("GET", f"/v1/containers/{_ref(ref)}/archive", query={"path": path})
        return _stat_of(response), self._chunks(response)

    def put_archive(self, ref: str, path: str, chunks: Iterator[bytes], copy_uid_gid: bool = False) -> None:
        """Send a tar stream (chunked, any size) to be extracted into the directory `path`."""
        query = {"path": path, "copy_uid_gid": copy_uid_gid}
        self._open("PUT", f"/v1/containers/{_ref(ref)}/archive", query=query, chunks=chunks).close()

    def container_changes(self, ref: str) -> list[dict]:
        return self._json("GET", f"/v1/containers/{_ref(ref)}/changes")

    def export_container(self, ref: str) -> Iterator[bytes]:
        return self._chunks(self._open("GET", f"/v1/containers/{_ref(ref)}/export"))

    # Policies

    def policies(self) -> dict:
        """{"directory", "policies": [{name, mode, file, commit, containers...}], "problems"}."""
        return self._json("GET", "/v1/policies")

    def policy_explain(self, ref: str) -> dict:
        return self._json("GET", f"/v1/policies/explain/{_ref(ref)}")

    def policy_prove(self, container: str | None = None, *, repair: bool = False,
                     canary: bool = False) -> list[dict]:
        """One RuleProof dict per enforcing rule of the running containers (or of one)."""
        query: dict = {} if container is None else {"container": container}
        if canary:
            query["canary"] = "true"
        return self._json("POST" if repair else "GET", "/v1/policies/prove", query=query)

    def policy_replay(self, text: str, file: str, since: float | None = None) -> list[dict]:
        """One ReplayReport dict per policy in the file's text."""
        query = {} if since is None else {"since": since}
        return self._json("POST", "/v1/policies/replay", body={"text": text, "file": file}, query=query)

    def policy_suggest(self, body: dict) -> dict:
        """{"name", "policy" (YAML text), "seccomp", "containers", "start", "end", "holdout"...}."""
        return self._json("POST", "/v1/policies/suggest", body=body)

    def incidents(self) -> list[dict]:
        return self._json("GET", "/v1/incidents")

    def incident(self, ref: str) -> dict:
        return self._json("GET", f"/v1/incidents/{_ref(ref)}")

    def export_incident(self, ref: str) -> bytes:
        response = self._open("GET", f"/v1/incidents/{_ref(ref)}/export")
        try:
            return b"".join(iter(lambda: self._read(response), b""))
        finally:
            response.close()

    def unfreeze_container(self, ref: str) -> dict:
        return self._json("POST", f"/v1/containers/{_ref(ref)}/unfreeze")

    def stats(self, syscalls: bool = False) -> dict:
        """Cumulative figures of running containers (`GET /v1/stats`)."""
        return self._json("GET", "/v1/stats" + ("?syscalls=true" if syscalls else ""))

    # Services

    def list_services(self) -> list[dict]:
        return self._json("GET", "/v1/services")

    def create_service(self, spec: dict) -> dict:
        return self._json("POST", "/v1/services", body=spec)

    def inspect_service(self, name: str) -> dict:
        return self._json("GET", f"/v1/services/{_ref(name)}")

    def service_tasks(self, name: str) -> list[dict]:
        return self._json("GET", f"/v1/services/{_ref(name)}/tasks")

    def service_logs(self, name: str, follow: bool = False) -> Iterator[tuple[int, bytes]]:
        response = self._open("GET", f"/v1/services/{_ref(name)}/logs", query={"follow": follow})
        yield from self._frames(response)

    def scale_service(self, name: str, replicas: int) -> dict:
        return self._json("POST", f"/v1/services/{_ref(name)}/scale", body={"replicas": replicas})

    def update_service(self, name: str, change: dict) -> dict:
        return self._json("POST", f"/v1/services/{_ref(name)}/update", body=change)

    def rollback_service(self, name: str) -> dict:
        return self._json("POST", f"/v1/services/{_ref(name)}/rollback")

    def remove_service(self, name: str) -> None:
        self._json("DELETE", f"/v1/services/{_ref(name)}")

    def list_observed(self) -> list[dict]:
        """Containers Corral watches but did not start (`GET /v1/observed`)."""
        return self._json("GET", "/v1/observed")
