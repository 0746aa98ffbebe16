"""The compat routes described: `python -m agent.dockerapi.openapi_gen` writes openapi.yaml
from the route table, with each route's status in Corral (`x-corral-status`: full, partial,
refused, and what is missing or why), and the same table into docs/docker-api.md between its
`<!-- routes -->` markers. tests/unit/test_dockerapi_openapi.py fails while either differs."""
from __future__ import annotations

import sys
from pathlib import Path

import yaml

from agent.dockerapi import version

HERE = Path(__file__).resolve().parent
SPEC = HERE / "openapi.yaml"
DOCS = HERE.parent.parent / "docs" / "docker-api.md"
BEGIN, END = "<!-- routes -->", "<!-- /routes -->"

FULL, PARTIAL, REFUSED = "full", "partial", "refused"
_SWARM = (REFUSED, "503 as dockerd answers off a swarm: Corral runs no swarm")
# (method, pattern) -> (status, what is missing or why). A route not here is an error.
STATUS: dict[tuple[str, str], tuple[str, str]] = {
    ("GET", "/_ping"): (FULL, ""), ("HEAD", "/_ping"): (FULL, ""),
    ("GET", "/version"): (FULL, ""),
    ("GET", "/info"): (PARTIAL, "figures Corral has no notion of (goroutines, listeners) are 0"),
    ("GET", "/events"): (PARTIAL, "container and image events; container labels only while the container exists"),
    ("GET", "/system/df"): (PARTIAL, "volumes with sizes; no build cache, container sizes 0"),
    ("POST", "/auth"): (FULL, "checks the login; nothing is stored by the daemon"),
    ("GET", "/plugins"): (PARTIAL, "always empty: Corral has no plugins"),
    ("POST", "/build"): (PARTIAL, "classic builder over Corral's own: tar context (gzip/bzip2/xz), t, dockerfile, "
                                  "buildargs, target, labels, nocache, pull, q, networkmode, platform; RUN containers are "
                                  "always removed (rm, forcerm); remote and version=2 (BuildKit) refused"),
    ("POST", "/session"): (REFUSED, "501: BuildKit sessions, for builds"),
    ("POST", "/commit"): (PARTIAL, "container, repo, tag, comment, author, changes, pause; a config body is refused"),
    ("GET", "/containers/json"): (FULL, "filters id, name, label, status, ancestor, exited, network, before, since"),
    ("POST", "/containers/create"): (PARTIAL, "a non-zero field Corral cannot honour is a 400 naming it: "
                                              "VolumesFrom, OomScoreAdj and the like"),
    ("POST", "/containers/prune"): (FULL, "filters label, until"),
    ("GET", "/containers/{id}/json"): (FULL, ""),
    ("POST", "/containers/{id}/start"): (FULL, "304 when started; an exited container starts again"),
    ("POST", "/containers/{id}/pause"): (FULL, "the cgroup freezer"),
    ("POST", "/containers/{id}/unpause"): (FULL, ""),
    ("POST", "/containers/{id}/rename"): (FULL, "the network's hosts files follow"),
    ("POST", "/containers/{id}/update"): (PARTIAL, "Memory, NanoCpus, PidsLimit, RestartPolicy; other fields refused"),
    ("POST", "/containers/{id}/stop"): (FULL, "304 when stopped; t, signal; the container's StopSignal/StopTimeout"),
    ("POST", "/containers/{id}/kill"): (FULL, ""),
    ("POST", "/containers/{id}/restart"): (FULL, "t, signal"),
    ("POST", "/containers/{id}/wait"): (FULL, "headers at once; not-running, next-exit, removed"),
    ("DELETE", "/containers/{id}"): (PARTIAL, "force; v removes its anonymous volumes; link refused: "
                                              "Corral has no links"),
    ("GET", "/containers/{id}/logs"): (FULL, "follow, tail, since, until, timestamps, stdout/stderr (the "
                                             "shim's time index); details: Corral keeps no attributes"),
    ("POST", "/containers/{id}/attach"): (FULL, "101 hijack: stdin (half-close is its end with StdinOnce), "
                                                "raw for a terminal, detachKeys; held until a created one starts"),
    ("POST", "/containers/{id}/resize"): (FULL, "h, w; 409 for a container without Tty or not running"),
    ("GET", "/containers/{id}/stats"): (PARTIAL, "stream and one-shot with precpu_stats; blkio_stats "
                                                 "io_service_bytes_recursive and io_serviced_recursive "
                                                 "(the other blkio lists are null, as dockerd's on v2)"),
    ("GET", "/containers/{id}/top"): (FULL, "ps_args"),
    ("POST", "/containers/{id}/exec"): (PARTIAL, "Tty, AttachStdin, User, WorkingDir, Env, ConsoleSize, "
                                                 "DetachKeys; Privileged only in a privileged container "
                                                 "(else 400)"),
    ("POST", "/exec/{id}/start"): (FULL, "hijacked (raw with Tty, stdin with AttachStdin) or detached; ConsoleSize"),
    ("GET", "/exec/{id}/json"): (FULL, ""),
    ("POST", "/exec/{id}/resize"): (FULL, "h, w; 400 for an exec without Tty"),
    ("GET", "/images/json"): (FULL, "filters dangling, label, reference, before, since"),
    ("POST", "/images/create"): (PARTIAL, "fromImage pulls with NDJSON progress (X-Registry-Auth); "
                                          "fromSrc=- imports the body; fromSrc URLs and changes refused"),
    ("POST", "/images/prune"): (FULL, "dangling"),
    ("GET", "/images/search"): (REFUSED, "400: Corral does not search registries"),
    ("GET", "/images/{name}/json"): (FULL, ""),
    ("GET", "/images/{name}/history"): (FULL, "from the config blob; one row per layer for imported rootfs tars"),
    ("POST", "/images/{name}/tag"): (FULL, ""),
    ("POST", "/images/{name}/push"): (FULL, "X-Registry-Auth"),
    ("GET", "/images/get"): (FULL, "docker save's format (names=...)"),
    ("GET", "/images/{name}/get"): (FULL, "docker save's format"),
    ("POST", "/images/load"): (PARTIAL, "docker save and OCI layout tars; no quiet progress bars"),
    ("DELETE", "/images/{name}"): (PARTIAL, "an image a container uses is refused (409) even with force"),
    ("GET", "/networks"): (FULL, "filters name, id, label, driver, type, dangling"),
    ("POST", "/networks/create"): (PARTIAL, "bridge driver, one IPv4 subnet, labels, internal"),
    ("POST", "/networks/prune"): (FULL, ""),
    ("GET", "/networks/{id}"): (FULL, ""),
    ("DELETE", "/networks/{id}"): (FULL, ""),
    ("POST", "/networks/{id}/connect"): (PARTIAL, "Container, EndpointConfig.Aliases, "
                                                  "EndpointConfig.IPAMConfig.IPv4Address; live or at the next start"),
    ("POST", "/networks/{id}/disconnect"): (FULL, "Container, Force; the last network too"),
    ("GET", "/containers/{id}/archive"): (PARTIAL, "X-Docker-Container-Path-Stat; paths resolve inside the "
                                                   "container; a path on a tmpfs, /proc, /dev or /sys is refused "
                                                   "(409): only the container's namespace has it"),
    ("HEAD", "/containers/{id}/archive"): (PARTIAL, "the stat header alone; tmpfs paths as GET"),
    ("PUT", "/containers/{id}/archive"): (PARTIAL, "copyUIDGID; noOverwriteDirNonDir is always on; tmpfs "
                                                   "paths as GET"),
    ("GET", "/containers/{id}/changes"): (FULL, ""),
    ("GET", "/containers/{id}/export"): (FULL, "volumes and mounts left out, as docker does"),
    ("GET", "/volumes"): (FULL, "filters dangling, driver, label, name"),
    ("POST", "/volumes/create"): (PARTIAL, "Name, Labels, driver local; DriverOpts refused by name (a volume is "
                                           "a directory the daemon keeps)"),
    ("POST", "/volumes/prune"): (FULL, "filters label, label!, all; anonymous volumes only unless all=true "
                                       "(every unused one below API 1.42)"),
    ("GET", "/volumes/{name}"): (FULL, ""),
    ("DELETE", "/volumes/{name}"): (FULL, "409 while a container uses it, also with force"),
}


def _pattern(pattern: str) -> str:
    return pattern.replace("*}", "}")


def status_of(method: str, pattern: str) -> tuple[str, str]:
    from agent.dockerapi import unsupported
    for prefix in ("/swarm", "/nodes", "/services", "/tasks", "/secrets", "/configs"):
        if pattern == prefix or pattern.startswith(prefix + "/"):
            return _SWARM
    for refused_method, refused_pattern, why in unsupported.ROUTES:
        if (refused_method, refused_pattern) == (method, pattern):
            return REFUSED, f"501: {why}"
    return STATUS[(method, _pattern(pattern))]


def routes() -> list[tuple[str, str]]:
    from agent.dockerapi.app import Parts, build_router
    router = build_router(Parts(runtime=None, events=None, images=None, cgroups=None, info=lambda: {}))
    return [(route.method, route.pattern) for route in router.routes]


def spec() -> dict:
    paths: dict[str, dict] = {}
    for method, pattern in routes():
        status, note = status_of(method, pattern)
        path = _pattern(pattern)
        parameters = [{"name": part[1:-1], "in": "path", "required": True, "schema": {"type": "string"}}
                      for part in path.split("/") if part.startswith("{")]
        operation: dict = {"x-corral-status": status, "responses": {"default": {"description": "Docker's answer; "
                                                                                  "errors are {\"message\"}"}}}
        if note:
            operation["description"] = note
        if parameters:
            operation["parameters"] = parameters
        paths.setdefault(path, {})[method.lower()] = operation
    return {"openapi": "3.0.3",
            "info": {"title": "Corral's Docker Engine API", "version": version.API_VERSION,
                     "description": f"Docker Engine API {version.API_VERSION} (min {version.MIN_API_VERSION}) as "
                                    "Corral serves it on --docker-socket; every path also under /v1.NN/. "
                                    "x-corral-status says how much of each route Corral honours."},
            "paths": dict(sorted(paths.items()))}


def spec_text() -> str:
    return "# Generated by `python -m agent.dockerapi.openapi_gen`: do not edit.\n" + \
        yaml.safe_dump(spec(), sort_keys=False, width=110)


def docs_table() -> str:
    lines = ["| method | path | status | what is missing, or why |", "|---|---|---|---|"]
    collapsed: set[str] = set()
    for method, pattern in routes():
        status, note = status_of(method, pattern)
        path = _pattern(pattern)
        if (status, note) == _SWARM:
            prefix = "/" + path.split("/")[1]
            if prefix in collapsed:
                continue
            collapsed.add(prefix)
            method, path = "any", f"{prefix}, {prefix}/..."
        lines.append(f"| {method} | `{path}` | {status} | {note} |")
    return "\n".join(lines) + "\n"


def docs_text(current: str) -> str:
    before, _, rest = current.partition(BEGIN)
    _, _, after = rest.partition(END)
    return f"{before}{BEGIN}\n{docs_table()}{END}{after}"


def main() -> int:
    SPEC.write_text(spec_text())
    DOCS.write_text(docs_text(DOCS.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
