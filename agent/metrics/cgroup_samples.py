"""One container's cgroup figures (agent.cgroups.driver.CgroupStats) as the container_* families
cAdvisor exports, under the names its dashboards know."""
from __future__ import annotations

from agent.cgroups.driver import CgroupStats

TYPE_CHECKING = False
if TYPE_CHECKING:
    from agent.metrics.collector import _ContainerLabels

# cgroup figures exported as they are: (family, CgroupStats attribute).
_PLAIN_STATS = (
    ("container_cpu_user_seconds_total", "cpu_user_seconds"),
    ("container_cpu_system_seconds_total", "cpu_system_seconds"),
    ("container_memory_usage_bytes", "memory_usage_bytes"),
    ("container_memory_working_set_bytes", "memory_working_set_bytes"),
    ("container_memory_rss", "memory_rss_bytes"),
    ("container_memory_cache", "memory_cache_bytes"),
    ("container_memory_max_usage_bytes", "memory_max_usage_bytes"),
    ("container_memory_failcnt", "memory_failcnt"),
    ("container_spec_cpu_period", "cpu_period_us"),
    # memory.events, one family per event (v1 has `max` as memory.failcnt and `oom_kill` in
    # memory.oom_control, and neither `high` nor `oom`: those are absent there, not 0).
    ("container_memory_events_high_total", "memory_high_events"),
    ("container_memory_events_max_total", "memory_failcnt"),
    ("container_memory_events_oom_total", "oom_events"),
    ("container_memory_events_oom_kill_total", "oom_kills"),
)
# Exported only for containers with a CPU quota, as cAdvisor does: without one the kernel
# counts no periods and a throttling ratio would be 0/0.
_CFS_STATS = (
    ("container_cpu_cfs_periods_total", "cpu_periods"),
    ("container_cpu_cfs_throttled_periods_total", "cpu_throttled_periods"),
    ("container_cpu_cfs_throttled_seconds_total", "cpu_throttled_seconds"),
)
_PRESSURE = tuple(
    (resource, f"container_pressure_{resource}_waiting_seconds_total",
     f"container_pressure_{resource}_stalled_seconds_total")
    for resource in ("cpu", "memory", "io"))


def add_cgroup_stats(stats: CgroupStats, labels: _ContainerLabels, add) -> None:
    """The container's cgroup figures as cAdvisor's container_* families."""
    identity = labels.identity
    if stats.cpu_usage_seconds is not None:
        add("container_cpu_usage_seconds_total", labels.cpu_total, stats.cpu_usage_seconds)
    for family, attribute in _PLAIN_STATS:
        add(family, identity, getattr(stats, attribute))
    if stats.cpu_quota_us is not None:
        add("container_spec_cpu_quota", identity, stats.cpu_quota_us)
        for family, attribute in _CFS_STATS:
            add(family, identity, getattr(stats, attribute))
    # cAdvisor shows "unlimited" as 0 for both limits.
    add("container_spec_memory_limit_bytes", identity, stats.memory_limit_bytes or 0)
    add("container_threads_max", identity, stats.pids_limit or 0)
    for resource, waiting, stalled in _PRESSURE:
        pressure = stats.pressure.get(resource)
        if pressure is not None:
            add(waiting, identity, pressure.some_seconds)
            add(stalled, identity, pressure.full_seconds)
