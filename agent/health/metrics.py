"""`corral_container_health{name, status}`: one series per status of each running container
that has a health check, 1 for the status it is in and 0 for the others (the Prometheus way
of exporting a state), read from the catalogue at scrape time."""
from __future__ import annotations

from typing import Callable, Iterable

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agent.catalog.entry import CatalogEntry
from agent.health.state import STATUSES

FAMILY = "corral_container_health"
HELP = "Health check status of the container: 1 for the status it is in (starting, healthy, unhealthy)"


class HealthCollector(Collector):
    def __init__(self, containers: Callable[[], Iterable[CatalogEntry]]) -> None:
        self._containers = containers

    def describe(self) -> list[Metric]:
        return [GaugeMetricFamily(FAMILY, HELP, labels=["name", "status"])]

    def collect(self) -> list[Metric]:
        family = GaugeMetricFamily(FAMILY, HELP, labels=["name", "status"])
        for entry in self._containers():
            if entry.running and entry.health:
                for status in STATUSES:
                    family.add_metric([entry.name, status], 1.0 if entry.health == status else 0.0)
        return [family]
