"""The daemon itself: _ping, version, info, events, system/df, and the parts Docker has and
Corral does not run (swarm, services, nodes, secrets, configs, plugins, BuildKit sessions), which answer
the way dockerd answers when they are unavailable so clients degrade cleanly."""
from __future__ import annotations

import json
import os
import platform
import threading
import time
from typing import Iterator

from agent import __version__
from agent.dockerapi import filters, version
from agent.dockerapi.app import Parts
from agent.dockerapi.errors import NotImplementedHere, Unavailable
from agent.dockerapi.router import Reply, Request, Router
from agent.dockerapi.views import LOG_DRIVER
from agent.errors import InvalidArgument
from agent.runtime.filters import EVENT_KEYS, event_matches

ENGINE_VERSION = f"{__version__}-corral"
# The event types docker clients know; Corral's own (probe, policy, oom, exec) stay on its API.
DOCKER_TYPES = ("container", "image", "network", "volume")
SWARM_MESSAGE = ("This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" "
                 "to connect this node to swarm and try again.")


class SystemRoutes:
    def __init__(self, parts: Parts) -> None:
        self.parts = parts

    def register(self, router: Router) -> None:
        router.add("GET", "/_ping", self.ping)
        router.add("HEAD", "/_ping", self.ping)
        router.add("GET", "/version", self.version)
        router.add("GET", "/info", self.info)
        router.add("GET", "/events", self.events)
        router.add("GET", "/system/df", self.disk_usage)
        router.add("POST", "/auth", self.auth)
        for prefix in ("/swarm", "/nodes", "/services", "/tasks", "/secrets", "/configs"):
            for method in ("GET", "POST", "DELETE"):
                router.add(method, prefix, self.swarm)
                router.add(method, prefix + "/{rest*}", self.swarm)
        router.add("GET", "/plugins", self.plugins)
        router.add("POST", "/session", self.session)

    def ping(self, request: Request) -> Reply:
        reply = Reply.text("OK")
        reply.headers.update({"Builder-Version": "1", "Swarm": "inactive",
                              "Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache"})
        return reply

    def version(self, request: Request) -> Reply:
        kernel = platform.release()
        arch = _go_arch()
        return Reply.json({
            "Platform": {"Name": "Corral"},
            "Components": [{"Name": "Engine", "Version": ENGINE_VERSION,
                            "Details": {"ApiVersion": version.API_VERSION, "MinAPIVersion": version.MIN_API_VERSION,
                                        "Os": "linux", "Arch": arch, "KernelVersion": kernel,
                                        "Runtime": "corral-launch"}}],
            "Version": ENGINE_VERSION, "ApiVersion": version.API_VERSION,
            "MinAPIVersion": version.MIN_API_VERSION, "GitCommit": "", "GoVersion": f"python{platform.python_version()}",
            "Os": "linux", "Arch": arch, "KernelVersion": kernel, "BuildTime": "",
        })

    def info(self, request: Request) -> Reply:
        parts = self.parts
        own = parts.info()
        containers = parts.runtime.list(all=True)
        running = sum(1 for c in containers if c.state == "running")
        paused = sum(1 for c in containers if c.state == "paused")
        cgroup_mode = own.get("cgroup_driver", "")
        return Reply.json({
            "ID": _host_id(), "Name": platform.node(),
            "Containers": len(containers), "ContainersRunning": running, "ContainersPaused": paused,
            "ContainersStopped": len(containers) - running - paused,
            "Images": len(parts.images.list()),
            "Driver": "overlay2", "DriverStatus": [["Backing Filesystem", "corral overlay"]],
            "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"], "Authorization": None,
                        "Log": [LOG_DRIVER]},
            "MemoryLimit": True, "SwapLimit": False, "CpuCfsPeriod": True, "CpuCfsQuota": True,
            "CPUShares": False, "CPUSet": False, "PidsLimit": True, "OomKillDisable": False,
            "IPv4Forwarding": True, "Debug": False, "NFd": len(os.listdir("/proc/self/fd")),
            "NGoroutines": 0, "SystemTime": time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime()),
            "LoggingDriver": LOG_DRIVER, "CgroupDriver": "cgroupfs",
            "CgroupVersion": "2" if cgroup_mode == "v2" else "1",
            "NEventsListener": 0, "KernelVersion": platform.release(), "OperatingSystem": _os_name(),
            "OSVersion": "", "OSType": "linux", "Architecture": platform.machine(),
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": {"IndexConfigs": {}, "InsecureRegistryCIDRs": ["127.0.0.0/8"], "Mirrors": []},
            "NCPU": os.cpu_count() or 1, "MemTotal": _mem_total(),
            "DockerRootDir": own.get("root", ""), "HttpProxy": "", "HttpsProxy": "", "NoProxy": "",
            "Labels": [], "ExperimentalBuild": False, "ServerVersion": ENGINE_VERSION,
            "Runtimes": {"corral": {"path": "corral-launch"}}, "DefaultRuntime": "corral",
            "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": False,
                      "Error": "", "RemoteManagers": None},
            "LiveRestoreEnabled": True, "Isolation": "", "InitBinary": "",
            "ContainerdCommit": {"ID": ""}, "RuncCommit": {"ID": ""}, "InitCommit": {"ID": ""},
            "SecurityOptions": ["name=seccomp,profile=builtin", "name=no-new-privileges"],
            "Warnings": [],
        })

    def events(self, request: Request) -> Reply:
        wanted = filters.parse(request.text("filters"), EVENT_KEYS, "events")
        since = _timestamp(request.text("since"), "since")
        until = _timestamp(request.text("until"), "until")
        log = self.parts.events
        if until is not None and until <= time.time():
            source: Iterator = iter([e for e in log.since(since or 0.0) if e.time <= until])
        elif until is not None:
            ends = threading.Event()               # the stream ends at `until`, events or not
            timer = threading.Timer(until - time.time(), ends.set)
            timer.daemon = True
            timer.start()
            source = log.follow(since, stop=ends, poll=0.2)
        else:
            source = log.follow(since, stop=self.parts.stopping)
        labels_of = self._labels_of

        def lines() -> Iterator[bytes]:
            yield b""        # the headers go out now: `docker events` waits for them
            for event in source:
                if until is not None and event.time > until:
                    return
                if event.type in DOCKER_TYPES and event_matches(event, wanted, labels_of):
                    yield json.dumps(docker_event(event, labels_of)).encode() + b"\n"
        return Reply.chunks(lines())

    def _labels_of(self, container_id: str) -> dict[str, str]:
        try:
            return dict(self.parts.runtime.get(container_id).spec.labels)
        except Exception:  # noqa: BLE001 - a removed container has no labels left to add
            return {}

    def disk_usage(self, request: Request) -> Reply:
        from agent.dockerapi.views import container_summary, image_summary
        runtime = self.parts.runtime
        containers = runtime.list(all=True)
        images = self.parts.images.list()
        layers = sum(image.size for image in images)
        from agent.dockerapi.volumes import volume_views
        return Reply.json({
            "LayersSize": layers,
            "Images": [{**image_summary(image), "Containers": sum(1 for c in containers if c.image_id == image.id)}
                       for image in images],
            "Containers": [container_summary(c, self.parts) for c in containers],
            "Volumes": volume_views(self.parts, usage=True),
            "BuildCache": [],
        })

    def auth(self, request: Request) -> Reply:
        from agent.registry.auth import Credentials
        from agent.registry.login import check_login
        body = request.json()
        server = body.get("serveraddress") or "docker.io"
        server = server.removeprefix("https://").removeprefix("http://").split("/")[0]
        if server == "index.docker.io":
            server = "docker.io"
        check_login(server, Credentials(body.get("username", ""), body.get("password", ""),
                                        body.get("identitytoken", "")), self.parts.registry_options)
        return Reply.json({"Status": "Login Succeeded", "IdentityToken": ""})

    def swarm(self, request: Request) -> Reply:
        raise Unavailable(SWARM_MESSAGE)

    def plugins(self, request: Request) -> Reply:
        return Reply.json([])

    def session(self, request: Request) -> Reply:
        raise NotImplementedHere("BuildKit sessions are not supported by Corral; build with the classic "
                                 "builder (DOCKER_BUILDKIT=0), which POST /build serves")


def docker_event(event, labels_of) -> dict:
    """Corral's event in Docker's shape (Type, Action, Actor, scope, time, timeNano, and the
    legacy status/id/from that old clients read)."""
    kind = event.type
    attributes = {k: str(v) for k, v in event.attributes.items() if not isinstance(v, (list, dict))}
    action = event.action
    if kind == "container":
        if action == "exec_start":
            command = event.attributes.get("command") or []
            action = "exec_start: " + " ".join(command)
        attributes = {**labels_of(event.id), **attributes}
        if "exitCode" in event.attributes:
            attributes["exitCode"] = str(event.attributes["exitCode"])
        attributes.setdefault("name", event.name)
    elif kind == "image":
        attributes.setdefault("name", event.name)
    elif kind not in ("network", "volume"):
        kind = "corral"       # probe, policy and oom events keep their own names under Corral's type
    stamp = float(event.time)
    shaped = {"Type": kind, "Action": action, "Actor": {"ID": event.id, "Attributes": attributes},
              "scope": "local", "time": int(stamp), "timeNano": int(stamp * 1e9)}
    if kind in ("container", "image"):
        shaped.update(status=action, id=event.id, **({"from": attributes["image"]} if "image" in attributes else {}))
    return shaped


def _timestamp(text: str, name: str) -> float | None:
    """Docker's since/until: seconds (with a fraction) since the epoch, or an RFC 3339 time."""
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    from datetime import datetime
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise InvalidArgument(f"query parameter {name}: expected seconds since the epoch or an "
                              f"RFC 3339 time, got {text!r}") from None


def _go_arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)


def _host_id() -> str:
    try:
        with open("/etc/machine-id") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def _mem_total() -> int:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _os_name() -> str:
    try:
        with open("/etc/os-release") as handle:
            for line in handle:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"
