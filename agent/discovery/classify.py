"""Recognising foreign containers from their cgroup paths, and naming them from host state.

`classify(path)` is pure: it looks only at the path (relative to the cgroup mount, as
/proc/PID/cgroup shows it) and answers a `CgroupMatch` or None. The layouts it knows:

| runtime | systemd cgroup driver | cgroupfs driver |
|---|---|---|
| Kubernetes (containerd, CRI-O, dockershim) | `kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid>.slice/cri-containerd-<id>.scope` (`crio-<id>.scope`, `docker-<id>.scope`) | `/kubepods/<qos>/pod<uid>/<id>` |
| docker | `system.slice/docker-<id>.scope` | `/docker/<id>` |
| podman | `machine.slice/libpod-<id>.scope` | `/libpod_parent/libpod-<id>` |
| systemd units | `system.slice/<name>.service` | - |

`describe(match, state)` turns a match into a `ForeignContainer`, reading names, images and
Kubernetes pod/namespace/container from the runtimes' files on the host (no network, no
runtime API): containerd's task bundle config.json annotations, CRI-O's userdata config.json,
docker's config.v2.json, podman's containers.json. Anything unreadable falls back to the id,
so a container is always listed even when its runtime's state cannot be read.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field

_HEX_ID = r"[0-9a-f]{64}"
_SCOPE = re.compile(rf"^(cri-containerd|crio|docker|libpod)-({_HEX_ID})\.scope$")
_BARE_ID = re.compile(rf"^{_HEX_ID}$")
_LIBPOD = re.compile(rf"^libpod-({_HEX_ID})$")
_POD_SLICE = re.compile(r"^kubepods(?:-[a-z]+)?-pod([0-9a-f_]+)\.slice$")
_POD_DIR = re.compile(r"^pod([0-9a-f-]+)$")
_SERVICE = re.compile(r"^[A-Za-z0-9:_.\\@-]+\.service$")

# The runtime that makes each kind of systemd scope.
_SCOPE_RUNTIME = {"cri-containerd": "containerd", "crio": "cri-o", "docker": "docker", "libpod": "podman"}

# Labels (exported as container_label_*) that carry Kubernetes identity, as dockershim set them
# on docker containers and as standalone cAdvisor exports them.
POD_LABEL = "io.kubernetes.pod.name"
NAMESPACE_LABEL = "io.kubernetes.pod.namespace"
CONTAINER_LABEL = "io.kubernetes.container.name"
POD_UID_LABEL = "io.kubernetes.pod.uid"


@dataclass(frozen=True)
class CgroupMatch:
    """What a cgroup path alone says about the container in it."""

    runtime: str            # containerd, cri-o, docker, podman, systemd, or "kubernetes" (cgroupfs
                            # driver: the path does not say which CRI runtime; describe() finds it)
    id: str                 # the runtime's container id, or the unit name for systemd
    cgroup: str             # the path that was classified
    pod_uid: str | None = None

    @property
    def kubernetes(self) -> bool:
        return self.pod_uid is not None


@dataclass(frozen=True)
class ForeignContainer:
    """A container (or systemd unit) some other runtime started, as Corral shows it."""

    id: str
    name: str
    runtime: str
    cgroup: str                         # path below the cgroup mounts, e.g. /system.slice/docker-<id>.scope
    image: str = ""
    pod: str | None = None              # Kubernetes only, when readable
    namespace: str | None = None
    container: str | None = None
    labels: dict = field(default_factory=dict)   # exported as container_label_* like cAdvisor

    def to_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "runtime": self.runtime, "cgroup": self.cgroup,
                "image": self.image, "pod": self.pod, "namespace": self.namespace,
                "container": self.container, "labels": dict(self.labels)}


def classify(path: str) -> CgroupMatch | None:
    """The container a cgroup path belongs to, or None for anything else (slices, pods, the
    root, Corral's own cgroups). Only the container's own directory matches, not its children."""
    parts = [p for p in path.split("/") if p]
    if not parts:
        return None
    leaf, parents = parts[-1], parts[:-1]
    normalized = "/" + "/".join(parts)
    kube = _kubepods_uid(parents)
    scope = _SCOPE.match(leaf)
    if scope:
        runtime = _SCOPE_RUNTIME[scope.group(1)]
        if kube is not None:
            return CgroupMatch(runtime, scope.group(2), normalized, pod_uid=kube)
        if any(p.startswith("kubepods") for p in parents):
            return None      # inside kubepods but not in a pod slice: not a layout we know
        return CgroupMatch(runtime, scope.group(2), normalized)
    if _BARE_ID.match(leaf) and parents:
        if kube is not None:
            return CgroupMatch("kubernetes", leaf, normalized, pod_uid=kube)
        if parents[-1] == "docker":
            return CgroupMatch("docker", leaf, normalized)
        return None
    libpod = _LIBPOD.match(leaf)
    if libpod and parents and parents[-1] == "libpod_parent":
        return CgroupMatch("podman", libpod.group(1), normalized)
    if _SERVICE.match(leaf) and parents and parents[-1] == "system.slice":
        return CgroupMatch("systemd", leaf, normalized)
    return None


def _kubepods_uid(parents: list[str]) -> str | None:
    """The pod uid when the parent directly above the container is a pod's cgroup below kubepods."""
    if not parents or not any(p == "kubepods" or p.startswith("kubepods") for p in parents[:-1]):
        return None
    slice_match = _POD_SLICE.match(parents[-1])
    if slice_match:
        # systemd escapes "-" in unit names as "_".
        return slice_match.group(1).replace("_", "-")
    dir_match = _POD_DIR.match(parents[-1])
    return dir_match.group(1) if dir_match else None


# --- names from the runtimes' state on the host -------------------------------------------------

@dataclass(frozen=True)
class HostState:
    """Where the runtimes keep their state; `root` prefixes every path so tests use fixtures."""

    root: str = "/"
    containerd_tasks: str = "run/containerd/io.containerd.runtime.v2.task"
    crio_containers: str = "run/containers/storage/overlay-containers"
    docker_containers: str = "var/lib/docker/containers"
    podman_storages: tuple[str, ...] = ("var/lib/containers/storage", "run/containers/storage")

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)


def describe(match: CgroupMatch, state: HostState | None = None) -> ForeignContainer:
    """A ForeignContainer for `match`, named from the runtime's state where it can be read."""
    state = state or HostState()
    if match.runtime == "systemd":
        return ForeignContainer(id=match.id, name=match.id, runtime="systemd", cgroup=match.cgroup)
    if match.runtime == "docker":
        found = _docker(match, state)
        if found is not None:
            return found
    if match.runtime == "podman":
        found = _podman(match, state)
        if found is not None:
            return found
    if match.runtime in ("containerd", "kubernetes", "docker"):
        found = _containerd(match, state)
        if found is not None:
            return found
    if match.runtime in ("cri-o", "kubernetes"):
        found = _crio(match, state)
        if found is not None:
            return found
    labels = {POD_UID_LABEL: match.pod_uid} if match.pod_uid else {}
    return ForeignContainer(id=match.id, name=match.id[:12], runtime=match.runtime,
                            cgroup=match.cgroup, labels=labels)


def _read_json(path: str):
    """The decoded file, or None when it is missing, unreadable or not JSON."""
    try:
        with open(path, "rb") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def _kubernetes(match: CgroupMatch, runtime: str, image: str, pod: str | None, namespace: str | None,
                container: str | None, sandbox: bool, fallback_name: str) -> ForeignContainer:
    if sandbox:
        container = "POD"       # the pause container, named as dockershim named it
    labels = {}
    for key, value in ((POD_LABEL, pod), (NAMESPACE_LABEL, namespace), (CONTAINER_LABEL, container),
                       (POD_UID_LABEL, match.pod_uid)):
        if value:
            labels[key] = value
    if pod and namespace and container:
        name = f"k8s_{container}_{pod}_{namespace}"   # dockershim's name, without uid and attempt
    else:
        name = fallback_name
    return ForeignContainer(id=match.id, name=name, runtime=runtime, cgroup=match.cgroup, image=image,
                            pod=pod, namespace=namespace, container=container, labels=labels)


def _containerd(match: CgroupMatch, state: HostState) -> ForeignContainer | None:
    """containerd keeps each task's OCI bundle at <tasks>/<namespace>/<id>/config.json; the CRI
    plugin (namespace k8s.io) writes io.kubernetes.cri.* annotations into it."""
    tasks = state.path(state.containerd_tasks)
    try:
        namespaces = sorted(os.listdir(tasks), key=lambda n: n != "k8s.io")
    except OSError:
        return None
    for namespace_dir in namespaces:
        config = _read_json(os.path.join(tasks, namespace_dir, match.id, "config.json"))
        if not isinstance(config, dict):
            continue
        notes = config.get("annotations") or {}
        if not isinstance(notes, dict):
            notes = {}
        image = notes.get("io.kubernetes.cri.image-name", "")
        pod = notes.get("io.kubernetes.cri.sandbox-name") or notes.get(POD_LABEL)
        namespace = notes.get("io.kubernetes.cri.sandbox-namespace") or notes.get(NAMESPACE_LABEL)
        container = notes.get("io.kubernetes.cri.container-name") or notes.get(CONTAINER_LABEL)
        sandbox = notes.get("io.kubernetes.cri.container-type") == "sandbox"
        if match.kubernetes or pod:
            return _kubernetes(match, "containerd", image, pod, namespace, container, sandbox,
                               match.id[:12])
        if match.runtime == "docker":
            return None      # docker's own state names it better (moby namespace has no names)
        return ForeignContainer(id=match.id, name=match.id[:12], runtime="containerd",
                                cgroup=match.cgroup, image=image)
    return None


def _crio(match: CgroupMatch, state: HostState) -> ForeignContainer | None:
    """CRI-O writes the OCI config with io.kubernetes.* annotations into each container's userdata."""
    config = _read_json(state.path(state.crio_containers, match.id, "userdata", "config.json"))
    if not isinstance(config, dict):
        return None
    notes = config.get("annotations") or {}
    if not isinstance(notes, dict):
        return None
    return _kubernetes(match, "cri-o", notes.get("io.kubernetes.cri-o.ImageName", ""),
                       notes.get(POD_LABEL), notes.get(NAMESPACE_LABEL), notes.get(CONTAINER_LABEL),
                       notes.get("io.kubernetes.cri-o.ContainerType") == "sandbox", match.id[:12])


def _docker(match: CgroupMatch, state: HostState) -> ForeignContainer | None:
    """docker's config.v2.json: Name ("/web"), Config.Image and Config.Labels (dockershim put
    io.kubernetes.* there)."""
    config = _read_json(state.path(state.docker_containers, match.id, "config.v2.json"))
    if not isinstance(config, dict):
        return None
    inner = config.get("Config") or {}
    labels = inner.get("Labels") or {} if isinstance(inner, dict) else {}
    labels = {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}
    name = str(config.get("Name") or "").lstrip("/") or match.id[:12]
    image = str(inner.get("Image") or "") if isinstance(inner, dict) else ""
    if match.pod_uid and POD_UID_LABEL not in labels:
        labels[POD_UID_LABEL] = match.pod_uid
    return ForeignContainer(id=match.id, name=name, runtime="docker", cgroup=match.cgroup, image=image,
                            pod=labels.get(POD_LABEL), namespace=labels.get(NAMESPACE_LABEL),
                            container=labels.get(CONTAINER_LABEL), labels=labels)


def _podman(match: CgroupMatch, state: HostState) -> ForeignContainer | None:
    """podman (containers/storage) lists containers in overlay-containers/containers.json with
    their names and image id; overlay-images/images.json names the image."""
    for storage in state.podman_storages:
        entries = _read_json(state.path(storage, "overlay-containers", "containers.json"))
        if not isinstance(entries, list):
            continue
        for entry in entries:
            if not isinstance(entry, dict) or entry.get("id") != match.id:
                continue
            names = entry.get("names") or []
            name = str(names[0]) if isinstance(names, list) and names else match.id[:12]
            image_id = str(entry.get("image") or "")
            return ForeignContainer(id=match.id, name=name, runtime="podman", cgroup=match.cgroup,
                                    image=_podman_image(state, storage, image_id))
    return None


def _podman_image(state: HostState, storage: str, image_id: str) -> str:
    images = _read_json(state.path(storage, "overlay-images", "images.json"))
    if isinstance(images, list):
        for image in images:
            if isinstance(image, dict) and image.get("id") == image_id:
                names = image.get("names") or []
                if isinstance(names, list) and names:
                    return str(names[0])
    return image_id[:12]
