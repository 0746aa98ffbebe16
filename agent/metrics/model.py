"""What the metrics collector is given and what it exports.

`WatchedContainer` is one container as the collector sees it, `MetricsOptions` the user's choices
(`--syscall-metrics`, metrics and labels to drop), and `FAMILIES` the catalogue of every metric
family the collector can export: name, type, labels, unit and source. The collector, its
`describe()`, the tests and docs/metrics.md all follow this one table.
"""
from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from agent.catalog.entry import CGROUP_MOUNTS, CatalogEntry, cadvisor_id  # noqa: F401 - re-exported
from agent.errors import InvalidArgument
from agent.fields import check_keys

_LABEL_NAME_INVALID = re.compile(r"[^a-zA-Z0-9_]")
_TOP = re.compile(r"^top:([1-9][0-9]{0,3})$")


def container_label_name(key: str) -> str:
    """The Prometheus label a container label becomes, as cAdvisor names it."""
    return "container_label_" + _LABEL_NAME_INVALID.sub("_", key)


# One container as the collector sees it: the catalogue's own record, so a scrape builds no copy.
WatchedContainer = CatalogEntry


@dataclass(frozen=True)
class MetricsOptions:
    """What the user chose to export.

    syscall_metrics: "all", "top:N" (the N syscalls with the most calls, per container) or
        "none" (no corral_syscall* families at all).
    drop_metrics: globs of metric family names (as exposed, e.g. "container_network_*") that
        are neither described nor collected.
    drop_labels: globs of container identity labels removed from every series: `id`, `image`
        and the `container_label_*` labels. `name` identifies each container's series and
        cannot be dropped.
    """

    syscall_metrics: str = "all"
    drop_metrics: tuple[str, ...] = ()
    drop_labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.syscall_metrics not in ("all", "none") and not _TOP.match(self.syscall_metrics):
            raise InvalidArgument(
                f"syscall-metrics: expected all, none or top:N (N from 1 to 9999), "
                f"got {self.syscall_metrics!r}")
        # Accept lists from YAML/JSON but keep the dataclass hashable and immutable.
        object.__setattr__(self, "drop_metrics", tuple(self.drop_metrics))
        object.__setattr__(self, "drop_labels", tuple(self.drop_labels))
        for pattern in self.drop_metrics + self.drop_labels:
            if not isinstance(pattern, str) or not pattern:
                raise InvalidArgument(f"metrics options: expected a non-empty glob, got {pattern!r}")
        for pattern in self.drop_labels:
            if fnmatch.fnmatchcase("name", pattern):
                raise InvalidArgument(
                    f"drop-labels {pattern!r}: would drop `name`, which tells containers' series "
                    "apart; drop id, image or container_label_* instead")

    @property
    def syscall_top(self) -> int | None:
        """None: every syscall; 0: none; N: the N most called per container."""
        if self.syscall_metrics == "all":
            return None
        if self.syscall_metrics == "none":
            return 0
        return int(self.syscall_metrics.split(":", 1)[1])

    def keeps_metric(self, name: str) -> bool:
        if name.startswith("corral_syscall") and self.syscall_top == 0:
            return False
        return not any(fnmatch.fnmatchcase(name, pattern) for pattern in self.drop_metrics)

    def keeps_label(self, label: str) -> bool:
        return not any(fnmatch.fnmatchcase(label, pattern) for pattern in self.drop_labels)

    @classmethod
    def from_dict(cls, data: dict, where: str = "metrics") -> MetricsOptions:
        check_keys(data, cls, where)
        for key in ("drop_metrics", "drop_labels"):
            if key in data and not isinstance(data[key], (list, tuple)):
                raise InvalidArgument(f"{where}.{key}: expected a list of globs, got {data[key]!r}")
        return cls(**data)


# Label sets, for the catalogue and the docs.
CONTAINER = ("id", "name", "image", "container_label_*")   # cAdvisor's identity labels
NAME = ("name",)                                           # Corral's own per-container series


@dataclass(frozen=True)
class Family:
    """One exported metric family, as it appears on /metrics."""

    name: str          # exposed name; counters end in _total
    type: str          # counter, gauge, histogram or unknown
    help: str
    labels: tuple[str, ...]
    unit: str
    source: str

    @property
    def base_name(self) -> str:
        """The name prometheus_client wants: counters without their _total suffix."""
        return self.name[:-len("_total")] if self.type == "counter" else self.name


def _f(name, type_, labels, unit, source, help_):
    return Family(name=name, type=type_, help=help_, labels=tuple(labels), unit=unit, source=source)


_CPU = "cgroup cpuacct/cpu (v1) or cpu.stat (v2)"
_MEM = "cgroup memory controller"
_NET = "BPF cgroup_skb ingress/egress counters"

FAMILIES: tuple[Family, ...] = (
    # cAdvisor-compatible families
    _f("container_cpu_usage_seconds_total", "counter", CONTAINER + ("cpu",), "seconds", _CPU,
       "Cumulative cpu time consumed in seconds."),
    _f("container_cpu_user_seconds_total", "counter", CONTAINER, "seconds", _CPU,
       "Cumulative user cpu time consumed in seconds."),
    _f("container_cpu_system_seconds_total", "counter", CONTAINER, "seconds", _CPU,
       "Cumulative system cpu time consumed in seconds."),
    _f("container_cpu_cfs_periods_total", "counter", CONTAINER, "periods", _CPU,
       "Number of elapsed enforcement period intervals."),
    _f("container_cpu_cfs_throttled_periods_total", "counter", CONTAINER, "periods", _CPU,
       "Number of throttled period intervals."),
    _f("container_cpu_cfs_throttled_seconds_total", "counter", CONTAINER, "seconds", _CPU,
       "Total time duration the container has been throttled."),
    _f("container_memory_usage_bytes", "gauge", CONTAINER, "bytes", _MEM,
       "Current memory usage in bytes, including all memory regardless of when it was accessed."),
    _f("container_memory_working_set_bytes", "gauge", CONTAINER, "bytes", _MEM,
       "Current working set in bytes."),
    _f("container_memory_rss", "gauge", CONTAINER, "bytes", _MEM, "Size of RSS in bytes."),
    _f("container_memory_cache", "gauge", CONTAINER, "bytes", _MEM,
       "Number of bytes of page cache memory."),
    _f("container_memory_max_usage_bytes", "gauge", CONTAINER, "bytes", _MEM,
       "Maximum memory usage recorded in bytes."),
    # A count that only grows, but cAdvisor's name has no _total: exposed untyped so the name
    # stays the one dashboards use and linters do not flag a counter without _total.
    _f("container_memory_failcnt", "unknown", CONTAINER, "events", _MEM,
       "Number of memory usage hits limits (cumulative)."),
    _f("container_memory_events_high_total", "counter", CONTAINER, "events", "v2 memory.events high",
       "Times the container's memory went over memory.high and was throttled and reclaimed (cgroup v2)."),
    _f("container_memory_events_max_total", "counter", CONTAINER, "events",
       "v2 memory.events max, v1 memory.failcnt",
       "Times the container's memory reached its limit (memory.max)."),
    _f("container_memory_events_oom_total", "counter", CONTAINER, "events", "v2 memory.events oom",
       "Times the container's memory stayed at its limit after reclaim and the OOM killer was invoked (cgroup v2)."),
    _f("container_memory_events_oom_kill_total", "counter", CONTAINER, "events",
       "v2 memory.events oom_kill, v1 memory.oom_control oom_kill",
       "Processes of the container killed by the OOM killer."),
    _f("container_oom_events_total", "counter", CONTAINER, "events",
       "cgroup OOM kill count; the BPF oom:mark_victim probe where the cgroup has none",
       "Count of out of memory events observed for the container."),
    _f("container_spec_memory_limit_bytes", "gauge", CONTAINER, "bytes", _MEM,
       "Memory limit for the container; 0 when unlimited."),
    _f("container_spec_cpu_quota", "gauge", CONTAINER, "microseconds", _CPU,
       "CPU quota of the container (per period); absent when unlimited."),
    _f("container_spec_cpu_period", "gauge", CONTAINER, "microseconds", _CPU,
       "CPU period of the container."),
    _f("container_threads_max", "gauge", CONTAINER, "threads", "cgroup pids.max",
       "Maximum number of threads allowed inside the container, infinity if value is zero."),
    _f("container_processes", "gauge", CONTAINER, "processes", "cgroup.procs",
       "Number of processes running inside the container."),
    _f("container_threads", "gauge", CONTAINER, "threads",
       "cgroup pids.current (tasks); Threads: of /proc/<pid>/status without a pids controller",
       "Number of threads running inside the container."),
    _f("container_start_time_seconds", "gauge", CONTAINER, "seconds", "the runtime's start time",
       "Start time of the container since unix epoch in seconds."),
    _f("container_last_seen", "gauge", CONTAINER, "seconds", "the scrape's clock",
       "Last time a container was seen by the exporter."),
    _f("container_network_receive_bytes_total", "counter", CONTAINER + ("interface",), "bytes", _NET,
       "Cumulative count of bytes received."),
    _f("container_network_receive_packets_total", "counter", CONTAINER + ("interface",), "packets",
       _NET, "Cumulative count of packets received."),
    _f("container_network_transmit_bytes_total", "counter", CONTAINER + ("interface",), "bytes",
       _NET, "Cumulative count of bytes transmitted."),
    _f("container_network_transmit_packets_total", "counter", CONTAINER + ("interface",), "packets",
       _NET, "Cumulative count of packets transmitted."),
) + tuple(
    _f(f"container_pressure_{resource}_{kind}_seconds_total", "counter", CONTAINER, "seconds",
       f"cgroup v2 {resource}.pressure `{line}` total",
       f"Total time duration {who} in the container {what} due to {shown} congestion.")
    for resource, shown in (("cpu", "CPU"), ("memory", "memory"), ("io", "IO"))
    for kind, line, who, what in (("waiting", "some", "tasks", "have waited"),
                                  ("stalled", "full", "no tasks", "could make progress"))
) + (
    # Corral's own families
    _f("corral_syscalls_total", "counter", NAME + ("syscall",), "calls", "BPF syscall probe",
       "System calls made by the container's processes."),
    _f("corral_syscall_errors_total", "counter", NAME + ("syscall",), "calls", "BPF syscall probe",
       "System calls of the container that returned an error."),
    _f("corral_syscall_duration_seconds", "histogram", NAME + ("syscall", "le"), "seconds",
       "BPF syscall latency probe (log2 buckets), when enabled",
       "Time spent in system calls; _sum is estimated from bucket midpoints."),
    _f("corral_tcp_connects_total", "counter", NAME, "connections", "BPF tcp probe",
       "TCP connections the container opened."),
    _f("corral_tcp_retransmits_total", "counter", NAME, "segments", "BPF tcp probe",
       "TCP segments the container retransmitted."),
    _f("corral_process_execs_total", "counter", NAME, "processes", "BPF process probe",
       "Programs executed in the container."),
    _f("corral_process_forks_total", "counter", NAME, "processes", "BPF process probe",
       "Processes forked in the container."),
    _f("corral_process_exits_total", "counter", NAME, "processes", "BPF process probe",
       "Processes that exited in the container."),
    _f("corral_network_receive_bytes_total", "counter", NAME, "bytes", _NET,
       "Bytes received by the container's sockets, on every interface including loopback."),
    _f("corral_network_receive_packets_total", "counter", NAME, "packets", _NET,
       "Packets received by the container's sockets, on every interface including loopback."),
    _f("corral_network_transmit_bytes_total", "counter", NAME, "bytes", _NET,
       "Bytes sent by the container's sockets, on every interface including loopback."),
    _f("corral_network_transmit_packets_total", "counter", NAME, "packets", _NET,
       "Packets sent by the container's sockets, on every interface including loopback."),
    _f("corral_probe_attached", "gauge", ("probe",), "boolean", "the probe loader",
       "1 when the BPF probe is attached, 0 when it failed or is disabled."),
    _f("corral_probe_errors_total", "counter", ("probe",), "errors", "the probes' own error maps",
       "Errors and lost events the BPF probe counted."),
    _f("corral_events_lost_total", "counter", ("reason",), "events", "the probes' event_loss map",
       "Probe events (OOM kills, execs, kill and egress reports) that found the ring buffer full: "
       "reason ring_full (read too slowly) or daemon_down (no daemon read, e.g. killed)."),
    _f("corral_probe_map_entries", "gauge", ("map",), "entries", "the probe loader",
       "Entries held for watched containers in each keyed BPF map; 0 everywhere with no container."),
    _f("corral_scrape_errors_total", "counter", ("source",), "errors", "the collector",
       "Reads that failed during scrapes (source: containers, cgroup, processes, probes); the scrape went on."),
    _f("corral_containers", "gauge", (), "containers", "the runtime",
       "Containers the agent is watching."),
)

FAMILIES_BY_NAME: dict[str, Family] = {family.name: family for family in FAMILIES}
SCRAPE_ERROR_SOURCES = ("containers", "cgroup", "processes", "probes")
