"""The senders' own figures on /metrics, read at scrape time (no prometheus_client state).

corral_alerts_sent_total{target,result}   alerts posted: result "ok" or "error" (a retry counts again)
corral_alerts_dropped_total{target}       alerts lost: the inbox was full, or a down target's backlog overflowed
corral_alert_queue_length{target}         messages waiting in the target's inbox
corral_alerts_active{target}              alerts the agent is keeping alive (re-sending) at the target
"""
from __future__ import annotations

from typing import Callable

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from agent.alerting.sender import SenderStats
from agent.metrics.families import families_of

# (exposed name, type, labels, help): the catalogue the dashboards test allows besides FAMILIES.
ALERT_FAMILIES = (
    ("corral_alerts_sent_total", "counter", ("target", "result"),
     "Alerts posted to a target, by result (ok, error); each retry counts again."),
    ("corral_alerts_dropped_total", "counter", ("target",),
     "Alerts dropped: the target's queue was full or its backlog overflowed while it was down."),
    ("corral_alert_queue_length", "gauge", ("target",), "Alert messages waiting to be sent."),
    ("corral_alerts_active", "gauge", ("target",), "Alerts the agent is keeping active at the target."),
)


class AlertCollector(Collector):
    """A custom collector over `stats()` of the alert senders (AlertFanOut.stats)."""

    def __init__(self, stats: Callable[[], list[SenderStats]]) -> None:
        self._stats = stats

    @staticmethod
    def _families():
        return families_of(ALERT_FAMILIES)

    def describe(self) -> list[Metric]:
        return list(self._families().values())

    def collect(self) -> list[Metric]:
        families = self._families()
        for stats in self._stats():
            families["corral_alerts_sent_total"].add_metric([stats.target, "ok"], stats.sent_ok)
            families["corral_alerts_sent_total"].add_metric([stats.target, "error"], stats.sent_error)
            families["corral_alerts_dropped_total"].add_metric([stats.target], stats.dropped)
            families["corral_alert_queue_length"].add_metric([stats.target], stats.queue_length)
            families["corral_alerts_active"].add_metric([stats.target], stats.active)
        return list(families.values())
