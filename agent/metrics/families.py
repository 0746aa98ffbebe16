"""Empty metric families from a catalogue of (exposed name, type, labels, help), for the custom
collectors that read their figures at scrape time (alert senders, services): `describe()` gives
them as they are, `collect()` fills them."""
from __future__ import annotations

from typing import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

Catalogue = Iterable[tuple[str, str, tuple[str, ...], str]]


def families_of(catalogue: Catalogue) -> dict[str, CounterMetricFamily | GaugeMetricFamily]:
    """By exposed name (a counter's with its `_total`); counters and gauges only."""
    built: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}
    for name, kind, labels, help_text in catalogue:
        if kind == "counter":
            built[name] = CounterMetricFamily(name[:-len("_total")], help_text, labels=list(labels))
        else:
            built[name] = GaugeMetricFamily(name, help_text, labels=list(labels))
    return built
