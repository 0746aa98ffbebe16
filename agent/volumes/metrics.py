"""`corral_volume_bytes{volume}` on /metrics, read from VolumeUsage's cache at scrape time."""
from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agent.volumes.usage import VolumeUsage

# (exposed name, type, labels, help): documented in docs/metrics.md next to FAMILIES.
VOLUME_FAMILIES = (
    ("corral_volume_bytes", "gauge", ("volume",),
     "Bytes of regular files in the volume, measured at most once a minute."),
)


class VolumeCollector(Collector):
    def __init__(self, usage: VolumeUsage) -> None:
        self._usage = usage

    @staticmethod
    def _family() -> GaugeMetricFamily:
        name, _kind, labels, help_text = VOLUME_FAMILIES[0]
        return GaugeMetricFamily(name, help_text, labels=list(labels))

    def describe(self) -> list[Metric]:
        return [self._family()]

    def collect(self) -> list[Metric]:
        family = self._family()
        for name, size in sorted(self._usage.sizes().items()):
            family.add_metric([name], size)
        return [family]
