"""Prometheus metrics of the containers Corral watches, read from cgroup files and BPF maps at
scrape time (no polling thread).

  model       WatchedContainer, MetricsOptions and FAMILIES, the catalogue of every metric
  collector   ContainerCollector, the prometheus_client custom collector
  server      serve_metrics(): /metrics on --metrics-addr from a private registry

The reference of every metric is docs/metrics.md.
"""
