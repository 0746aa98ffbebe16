"""The daemon's process-wide set-up kept out of agent/daemon.py: the /metrics registry's
always-present families and the open-files limit."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from agent.policy.metrics import PolicyMetrics


def metrics_registry(registry: CollectorRegistry, alert_stats: Callable[[], list],
                     service_figures: Callable[[], list] = list) -> tuple[CollectorRegistry, PolicyMetrics]:
    """The /metrics registry (the container collector already on it) with the policy,
    alerting and service families. They are registered whether or not policies and alert targets are
    configured, so every family a dashboard or alert rule names is described (and at 0 where
    it can be) from the first scrape, instead of "No data" until first used."""
    from agent.alerting.metrics import AlertCollector
    from agent.policy.metrics import PolicyMetrics
    policy_metrics = PolicyMetrics(registry)
    from agent.services.metrics import ServiceCollector
    registry.register(AlertCollector(alert_stats))
    registry.register(ServiceCollector(service_figures))
    return registry, policy_metrics


def raise_open_files_limit() -> None:
    """The cgroup drivers keep each container's files open (a re-read is 5x cheaper than an
    open), up to a quarter of the soft limit: lift the soft limit to the hard one. Raising the
    hard limit needs CAP_SYS_RESOURCE, which not every host grants, so it is left alone."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
