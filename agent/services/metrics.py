"""Services' figures on /metrics, read at scrape time (no prometheus_client state).

corral_service_replicas_desired{service}              replicas asked for
corral_service_replicas_running{service}              replicas running
corral_service_replica_exits_total{service}           replicas that exited (and were replaced, restart condition permitting)
corral_service_connections_total{service,result}      new connections to the published port: balanced, or refused (no replica ready)

The replicas' own container_* series carry a `service` label (agent/metrics/collector.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from agent.metrics.families import families_of

# (exposed name, type, labels, help): the catalogue the dashboards test allows besides FAMILIES.
SERVICE_FAMILIES = (
    ("corral_service_replicas_desired", "gauge", ("service",), "Replicas the service asks for."),
    ("corral_service_replicas_running", "gauge", ("service",), "Replicas of the service running."),
    ("corral_service_replica_exits_total", "counter", ("service",),
     "Replicas of the service that exited (killed, crashed or failed a start), since the daemon started."),
    ("corral_service_connections_total", "counter", ("service", "result"),
     "New connections to the service's published port: balanced to a replica, or refused as none was ready."),
)


@dataclass(frozen=True)
class ServiceFigures:
    service: str
    desired: int
    running: int
    exits: int
    balanced: int | None = None          # None: the service publishes no port
    refused: int | None = None


class ServiceCollector(Collector):
    """A custom collector over `figures()` (ServiceManager.figures)."""

    def __init__(self, figures: Callable[[], list[ServiceFigures]]) -> None:
        self._figures = figures

    @staticmethod
    def _families():
        return families_of(SERVICE_FAMILIES)

    def describe(self) -> list[Metric]:
        return list(self._families().values())

    def collect(self) -> list[Metric]:
        families = self._families()
        for one in self._figures():
            families["corral_service_replicas_desired"].add_metric([one.service], one.desired)
            families["corral_service_replicas_running"].add_metric([one.service], one.running)
            families["corral_service_replica_exits_total"].add_metric([one.service], one.exits)
            if one.balanced is not None:
                connections = families["corral_service_connections_total"]
                connections.add_metric([one.service, "balanced"], one.balanced)
                connections.add_metric([one.service, "refused"], one.refused or 0)
        return list(families.values())
