"""The compat API put together: the parts of the daemon it wraps, and its route table."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from agent.dockerapi.router import Router


@dataclass
class Parts:
    """What the handlers call: Corral's own runtime, stores and managers, never its socket."""

    runtime: Any                           # agent.runtime.containers.Runtime
    events: Any                            # agent.events.EventLog
    images: Any                            # agent.images.store.ImageStore
    cgroups: Any                           # agent.cgroups.driver.CgroupDriver
    info: Callable[[], dict]               # the daemon's own info (root, cgroup driver, counts)
    networks: Any = None                   # agent.network.manager.NetworkManager, None without networking
    registry_options: Any = None           # agent.registry.transport.RegistryOptions
    health: Any = None                     # agent.health.monitor.HealthMonitor: State.Health, "(healthy)"
    terminals: Any = None                  # agent.runtime.terminals.Terminals: attach, resize, exec
    builder: Any = None                    # agent.build.builder.Builder: POST /build, shared with `corral build`
    stopping: threading.Event = field(default_factory=threading.Event)   # set at stop: streams end


def build_router(parts: Parts) -> Router:
    from agent.dockerapi.archive import ArchiveRoutes
    from agent.dockerapi.attach import AttachRoutes
    from agent.dockerapi.build import BuildRoutes
    from agent.dockerapi.containers import ContainerRoutes
    from agent.dockerapi.execs import ExecRoutes
    from agent.dockerapi.images import ImageRoutes
    from agent.dockerapi.lifecycle import LifecycleRoutes
    from agent.dockerapi.networks import NetworkRoutes
    from agent.dockerapi.streams import StreamRoutes
    from agent.dockerapi.system import SystemRoutes
    from agent.dockerapi.unsupported import register as register_unsupported
    from agent.dockerapi.volumes import VolumeRoutes
    router = Router()
    for routes in (SystemRoutes(parts), ContainerRoutes(parts), LifecycleRoutes(parts), StreamRoutes(parts), AttachRoutes(parts), ExecRoutes(parts),
                   ImageRoutes(parts), NetworkRoutes(parts), VolumeRoutes(parts), ArchiveRoutes(parts), BuildRoutes(parts)):
        routes.register(router)
    register_unsupported(router)
    return router
