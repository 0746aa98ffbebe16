"""`CatalogEntry`: one container as every part of the daemon sees it, whoever started it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from agent.cgroups.driver import CgroupPaths, Limits

# Where cgroup trees are mounted; cAdvisor's `id` label is the path below the mount.
CGROUP_MOUNTS = ("/sys/fs/cgroup/unified", "/sys/fs/cgroup")

Origin = Literal["own", "observed"]
OWN: Origin = "own"
OBSERVED: Origin = "observed"

CREATED = "created"
RUNNING = "running"
EXITED = "exited"


@dataclass(frozen=True)
class CatalogEntry:
    """A container on the host. Immutable: a change is a new entry published on the bus.

    `requested` is what the container asked for (Corral's own: its spec's limits), the floor
    policies tighten; None for observed containers, whose own runtime's limits are never loosened.
    `seccomp_file` is the filter the launcher installed (own containers only: seccomp is set
    before exec, which Corral does not see for observed ones).
    """

    id: str
    name: str
    image: str
    cgroup: CgroupPaths
    cgroup_id: int                       # inode of the unified directory: the key of every BPF map; 0 without one
    origin: Origin = OWN
    runtime: str = "corral"              # corral, docker, containerd, podman, systemd, ...
    state: str = RUNNING                 # created | running | exited
    labels: dict[str, str] = field(default_factory=dict)
    created_at: float = 0.0
    started_at: float = 0.0              # 0 until it starts
    requested: Limits | None = None
    seccomp_file: str = ""
    cgroup_path: str = ""                # cAdvisor's `id` label; derived from cgroup.unified when empty
    probes: bool = True                  # the probes count this container (an observed one may lack a v2 directory)
    note: str = ""                       # why something does not apply
    health: str = ""                     # starting | healthy | unhealthy; "" without a health check

    @property
    def id_label(self) -> str:
        """cAdvisor's `id` label: the cgroup path below the mount."""
        return self.cgroup_path or cadvisor_id(self.cgroup.unified)

    @property
    def observed(self) -> bool:
        return self.origin == OBSERVED

    @property
    def running(self) -> bool:
        return self.state == RUNNING


def cadvisor_id(unified: str) -> str:
    """The cgroup path as cAdvisor shows it in its `id` label, e.g. "/corral/<container id>"."""
    for mount in CGROUP_MOUNTS:
        if unified == mount:
            return "/"
        if unified.startswith(mount + "/"):
            return unified[len(mount):]
    return unified
