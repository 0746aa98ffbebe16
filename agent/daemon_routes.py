"""The route groups of the daemon's v1 API beyond the core (agent/api/*_endpoints.py), each over
the parts of a started Daemon. Network routes are always served (without networking they say
it is off), so the route table and openapi.yaml agree whatever the daemon was started with."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agent.api.attach_endpoints import AttachEndpoints
from agent.api.build_endpoints import BuildEndpoints
from agent.api.exec_endpoints import ExecEndpoints
from agent.api.file_endpoints import FileEndpoints
from agent.api.image_endpoints import ImageEndpoints
from agent.api.incident_endpoints import IncidentEndpoints
from agent.api.lifecycle_endpoints import LifecycleEndpoints
from agent.api.network_endpoints import NetworkEndpoints
from agent.api.observed_endpoints import ObservedEndpoints
from agent.api.policy_endpoints import PolicyEndpoints
from agent.api.registry_endpoints import RegistryEndpoints
from agent.api.routes import Router
from agent.api.run_endpoints import RunEndpoints
from agent.api.service_endpoints import ServiceEndpoints
from agent.api.stats_endpoints import StatsEndpoints
from agent.api.volume_endpoints import VolumeEndpoints
from agent.runtime.connections import Connections
from agent.runtime.files import ContainerFiles
from agent.runtime.lifecycle import Lifecycle
from agent.runtime.prune import Pruning


def route_groups(daemon: Any) -> list[Callable[[Router], None]]:
    registry = RegistryEndpoints(daemon.images, daemon.registry_options())
    return [
        NetworkEndpoints(daemon.networks, Connections(daemon.runtime)).register,
        StatsEndpoints(daemon.snapshots).register,
        PolicyEndpoints(daemon.policy.queries if daemon.policy else None, daemon.prover).register,
        ObservedEndpoints(daemon.observed).register,
        ServiceEndpoints(daemon.services).register,
        registry.register,
        ImageEndpoints(daemon.images, daemon.runtime, daemon.cgroups).register,
        IncidentEndpoints(daemon.incidents.store).register,
        BuildEndpoints(daemon.builder).register,
        LifecycleEndpoints(Lifecycle(daemon.runtime), Pruning(daemon.runtime)).register,
        AttachEndpoints(daemon.terminals).register,
        ExecEndpoints(daemon.terminals).register,
        RunEndpoints(daemon.runtime).register,
        VolumeEndpoints(daemon.runtime.volumes).register,
        FileEndpoints(ContainerFiles(daemon.runtime.store, daemon.runtime.rootfs, daemon.images,
                                     daemon.runtime.volumes)).register,
    ]
