"""The budget on /metrics: `corral_budget_shed{what}` (1 while shed), the CPU share of the last
window and the series of the last scrape (docs/metrics.md)."""
from __future__ import annotations

from typing import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from agent.budget.budget import Budget


class BudgetCollector(Collector):
    def __init__(self, budget: Budget) -> None:
        self._budget = budget

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        yield from self._families(samples=True)

    def _families(self, samples: bool = False) -> Iterator[Metric]:
        shed = GaugeMetricFamily("corral_budget_shed", "1 while the optional work `what` is shed to keep "
                                 "the agent within --cpu-budget/--series-budget.", labels=["what"])
        cpu = GaugeMetricFamily("corral_budget_cpu_ratio", "The agent's own CPU use over the last budget "
                                "window, in CPUs.")
        series = GaugeMetricFamily("corral_budget_series", "Series the last scrape of the container "
                                   "collector exported.")
        if samples:
            budget = self._budget
            for what, is_shed in budget.shedding().items():
                shed.add_metric([what], 1 if is_shed else 0)
            if budget.cpu_fraction is not None:
                cpu.add_metric([], budget.cpu_fraction)
            if budget.series is not None:
                series.add_metric([], budget.series)
        yield shed
        yield cpu
        yield series
