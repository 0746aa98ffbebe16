"""The Prometheus collector: every container's cgroup figures and BPF counters, read at scrape time.

`ContainerCollector` implements prometheus_client's custom collector protocol (`collect()` and
`describe()`). Nothing is polled in the background: each scrape lists the watched containers,
reads every BPF map once (not once per container), then each container's cgroup files. Process
and thread counts come from the cgroup too (the unified cgroup.procs and pids.current), so a
scrape reads no /proc file unless the host has no pids controller. A read that fails for one
container, or one map, is counted in `corral_scrape_errors_total{source}` and the rest of the
scrape goes on.

The label dicts of each container (its identity, and one per syscall) are kept from one scrape
to the next while the container stays the same: building them is a visible share of a scrape
of 200 containers, and the /metrics renderer formats each dict it has seen before only once.

Names and labels of the `container_*` families follow cAdvisor so its dashboards keep working;
the catalogue is `agent.metrics.model.FAMILIES` and the reference docs/metrics.md.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from prometheus_client.metrics_core import Metric

from agent.budget.budget import SHED_TOP, Budget, SeriesEstimate
from agent.cgroups.driver import CgroupDriver, CgroupStats
from agent.metrics.cgroup_samples import add_cgroup_stats
from agent.metrics.model import FAMILIES, SCRAPE_ERROR_SOURCES, MetricsOptions, WatchedContainer, container_label_name
from agent.metrics.proc_status import read_small, threads_of
from agent.metrics.sample import make_sample, sample_adder
from agent.metrics.sampler import ProbeReading, Sampler
from agent.metrics.syscall_series import CALLS, ERRORS, SyscallText
from agent.metrics.text import TextMetric

log = logging.getLogger(__name__)

# (container_* family, corral_* family, NetCounters field)
_NETWORK = (
    ("container_network_receive_bytes_total", "corral_network_receive_bytes_total", "rx_bytes"),
    ("container_network_receive_packets_total", "corral_network_receive_packets_total", "rx_packets"),
    ("container_network_transmit_bytes_total", "corral_network_transmit_bytes_total", "tx_bytes"),
    ("container_network_transmit_packets_total", "corral_network_transmit_packets_total", "tx_packets"),
)
# The cgroup_skb counters see every socket of the cgroup on every interface (loopback too),
# so there is no per-interface figure to give; "all" says so without posing as a device name.
NETWORK_INTERFACE = "all"
# Families whose samples arrive as text kept between scrapes (agent.metrics.syscall_series).
_TEXT_FAMILIES = frozenset((CALLS, ERRORS))
HISTOGRAM = "corral_syscall_duration_seconds"
LATENCY_SERIES = 35             # series of one syscall's histogram: 32 buckets, +Inf, count, sum


@dataclass
class _ContainerLabels:
    """The label dicts of one container, reused across scrapes while `container` is unchanged.

    Nothing mutates them once made: the renderer caches their text by identity.
    """

    container: WatchedContainer
    identity: dict
    cpu_total: dict                 # identity + cpu="total"
    interface: dict                 # identity + interface="all"
    by_name: dict                   # {"name": ...}, Corral's own per-container series
    syscalls: dict = field(default_factory=dict)   # syscall nr -> {"name", "syscall"}
    syscall_text: SyscallText | None = None        # the syscall series' text, kept between scrapes


class ContainerCollector:
    """A prometheus_client custom collector for the containers the agent watches.

    containers: returns the running containers at scrape time.
    cgroups: the host's cgroup driver (`stats()` and `pids()` are used).
    probes: the loaded BPF probes (agent.probes.loader.ProbeSet) or None without BPF.
    syscall_name: syscall number -> name (agent.syscall_table); numbers as text without.
    proc_root: where /proc is, so tests can point at a fixture tree.
    clock: unix time, for container_last_seen.
    budget: the agent's budget (agent/budget): what to shed, told each scrape's series count.
    """

    def __init__(self, containers: Callable[[], Iterable[WatchedContainer]], cgroups: CgroupDriver,
                 probes: Any | None, options: MetricsOptions | None = None, *,
                 syscall_name: Callable[[int], str | None] | None = None, proc_root: str = "/proc",
                 clock: Callable[[], float] = time.time, sampler: Sampler | None = None,
                 budget: Budget | None = None) -> None:
        self._containers = containers
        self._cgroups = cgroups
        self._probes = probes
        # The one reader of cgroup files and BPF maps (its error policy: counted, never zeroed),
        # shared with `corral stats` and the policies when the daemon passes its own.
        self._sampler = sampler or Sampler(cgroups, probes, syscall_name)
        self._options = options or MetricsOptions()
        self._syscall_name = syscall_name or str
        self._proc_root = proc_root.rstrip("/") or "/"
        self._clock = clock
        self._budget = budget
        self._latency_on = False           # a latency histogram was ever read: the feature is on
        self._families = tuple(f for f in FAMILIES if self._options.keeps_metric(f.name))
        self._lock = threading.Lock()      # scrapes may run in parallel server threads
        self._scrape_errors = dict.fromkeys(SCRAPE_ERROR_SOURCES, 0)
        self._syscall_names: dict[int, str] = {}
        self._bucket_bounds: dict[int, tuple[list[str], list[float]]] = {}
        # container id -> its label dicts, as of the last scrape (replaced whole, so parallel
        # scrapes never see a half-built map).
        self._labels: dict[str, _ContainerLabels] = {}
        # The cheaper listing where the driver has one (one cgroup.procs on hybrid hosts).
        self._list_pids = getattr(cgroups, "procs", None) or cgroups.pids

    # -- the collector protocol ------------------------------------------------------------

    def describe(self) -> Iterator[Metric]:
        """Every family this collector can export with its options, without samples."""
        for family in self._families:
            yield Metric(family.base_name, family.help, family.type)

    def collect(self) -> Iterator[Metric]:
        metrics = {f.name: (TextMetric if f.name in _TEXT_FAMILIES else Metric)(f.base_name, f.help, f.type)
                   for f in self._families}
        # The families filled sample by sample (the syscall series arrive as text chunks).
        samples = {name: metric.samples for name, metric in metrics.items() if name not in _TEXT_FAMILIES}
        errors = dict.fromkeys(SCRAPE_ERROR_SOURCES, 0)
        try:
            containers = list(self._containers())
        except Exception:  # the runtime's failure must not take the whole endpoint down
            log.warning("metrics: could not list containers", exc_info=True)
            errors["containers"] += 1
            containers = []
        usage = {"syscalls_all": 0, "syscalls_top": 0, "syscalls": 0, "latency_all": 0, "latency": 0,
                 "top": self._syscall_top()}
        reading = self._read_probes(errors, metrics) if self._probes is not None else None
        now = float(int(self._clock()))
        known = self._labels
        labels_now: dict[str, _ContainerLabels] = {}
        for container in containers:
            labels = known.get(container.id)
            if labels is None or (labels.container is not container and labels.container != container):
                labels = self._container_labels(container)
            labels_now[container.id] = labels
            self._collect_container(container, labels, metrics, samples, reading, now, errors, usage)
        self._labels = labels_now   # containers gone since the last scrape are dropped
        if "corral_containers" in samples:
            samples["corral_containers"].append(make_sample("corral_containers", {}, len(containers)))
        if reading is not None:
            self._add_probe_health(reading, samples)
        with self._lock:
            for source, count in errors.items():
                self._scrape_errors[source] += count
            totals = dict(self._scrape_errors)
        if "corral_scrape_errors_total" in samples:
            samples["corral_scrape_errors_total"].extend(
                make_sample("corral_scrape_errors_total", {"source": source}, count)
                for source, count in totals.items())
        if self._budget is not None:
            self._tell_budget(self._budget, samples, usage)
        yield from metrics.values()

    def _syscall_top(self) -> int | None:
        """--syscall-metrics' top, or SHED_TOP while the budget sheds per-syscall series."""
        top = self._options.syscall_top
        if self._budget is not None and top != 0 and self._budget.shed("syscall_series"):
            return SHED_TOP if top is None else min(top, SHED_TOP)
        return top

    @staticmethod
    def _tell_budget(budget: Budget, samples: dict, usage: dict) -> None:
        exported = sum(len(out) for out in samples.values()) + usage["syscalls"]
        base = exported - usage["syscalls"] - usage["latency"]
        budget.observe_series(SeriesEstimate(base, usage["syscalls_all"], usage["syscalls_top"],
                                                   usage["latency_all"]), exported)

    @property
    def scrape_errors(self) -> dict[str, int]:
        """Failed reads so far, by source (what corral_scrape_errors_total shows)."""
        with self._lock:
            return dict(self._scrape_errors)

    # -- one container ---------------------------------------------------------------------

    def _container_labels(self, container: WatchedContainer) -> _ContainerLabels:
        identity = self._identity(container)
        return _ContainerLabels(container=container, identity=identity,
                                cpu_total={**identity, "cpu": "total"},
                                interface={**identity, "interface": NETWORK_INTERFACE},
                                by_name={"name": container.name})

    def _collect_container(self, container: WatchedContainer, labels: _ContainerLabels, metrics: dict,
                           samples: dict, reading, now: float, errors: dict, usage: dict) -> None:
        # One label dict per container, shared by every series that carries only these labels:
        # the exposition code only reads it, and a scrape of 200 containers saves thousands.
        identity = labels.identity
        add = sample_adder(samples)

        add("container_start_time_seconds", identity, container.started_at)
        add("container_last_seen", identity, now)

        stats = self._sampler.cgroup_stats(container, errors)
        if stats is not None:
            add_cgroup_stats(stats, labels, add)

        oom_kills = stats.oom_kills if stats is not None else None
        if oom_kills is None and reading is not None:
            oom_kills = reading.oom_kills.get(container.cgroup_id)
        add("container_oom_events_total", identity, oom_kills)

        self._add_processes(container, identity, stats, add, errors)

        if reading is not None:
            try:
                self._add_probe_counters(container, labels, reading, metrics, add, usage)
            except Exception:  # a map entry of an unexpected shape: a decode error, counted
                log.debug("metrics: probe values of %s could not be decoded", container.name,
                          exc_info=True)
                errors["probes"] += 1

    def _identity(self, container: WatchedContainer) -> dict[str, str]:
        options = self._options
        labels = {"name": container.name}
        if options.keeps_label("id"):
            labels["id"] = container.id_label
        if options.keeps_label("image"):
            labels["image"] = container.image
        # A service's replica (docs/services.md) and a build's RUN step (docs/images.md) carry
        # their service or build as a label of their own, beside container_label_*.
        for key, label in (("corral.service", "service"), ("corral.build", "build")):
            if key in container.labels and options.keeps_label(label):
                labels[label] = str(container.labels[key])
        for key in sorted(container.labels):
            label = container_label_name(key)
            if label not in labels and options.keeps_label(label):
                labels[label] = str(container.labels[key])
        return labels

    def _add_processes(self, container: WatchedContainer, identity: dict,
                       stats: CgroupStats | None, add, errors: dict) -> None:
        try:
            pids = self._list_pids(container.cgroup)
        except Exception:
            log.debug("metrics: pids of %s failed", container.name, exc_info=True)
            errors["processes"] += 1
            return
        tasks = stats.pids_current if stats is not None else None
        if tasks is not None:
            # The pids controller counts tasks, i.e. threads, of the whole cgroup: no /proc
            # read per process. A process forked between the two reads must not show more
            # processes than threads.
            add("container_processes", identity, len(pids))
            add("container_threads", identity, max(tasks, len(pids)))
            return
        # No pids controller: the Threads: line of each process.
        processes = threads = 0
        for pid in pids:
            try:
                status = read_small(f"{self._proc_root}/{pid}/status")
            except (FileNotFoundError, ProcessLookupError):
                continue  # exited since the cgroup was listed: no longer one of its processes
            except OSError:
                log.debug("metrics: /proc/%s/status of %s failed", pid, container.name, exc_info=True)
                errors["processes"] += 1
                return
            processes += 1
            threads += threads_of(status)
        add("container_processes", identity, processes)
        add("container_threads", identity, threads)

    # -- BPF maps --------------------------------------------------------------------------

    def _read_probes(self, errors: dict, samples: dict[str, Any]) -> ProbeReading:
        """Read each map once; a failing map is counted and has no series this scrape."""
        wanted = [("status", True), ("errors", True), ("oom_kills", True),
                  ("map_entries", "corral_probe_map_entries" in samples),
                  ("events_lost", "corral_events_lost_total" in samples),
                  ("syscalls", "corral_syscalls_total" in samples
                   or "corral_syscall_errors_total" in samples),
                  ("latency", HISTOGRAM in samples
                   and not (self._budget is not None and self._budget.shed("latency_histograms"))),
                  ("network", True), ("tcp", True), ("processes", True)]
        return self._sampler.read_probes((attribute for attribute, needed in wanted if needed), errors)

    def _add_probe_counters(self, container: WatchedContainer, labels: _ContainerLabels,
                            reading: ProbeReading, metrics: dict, add, usage: dict) -> None:
        key = container.cgroup_id
        by_name = labels.by_name
        network = reading.network.get(key)
        if network is not None:
            with_interface = labels.interface
            for cadvisor_family, corral_family, counter in _NETWORK:
                value = getattr(network, counter)
                add(cadvisor_family, with_interface, value)
                add(corral_family, by_name, value)
        tcp = reading.tcp.get(key)
        if tcp is not None:
            add("corral_tcp_connects_total", by_name, tcp.connects)
            add("corral_tcp_retransmits_total", by_name, tcp.retransmits)
        processes = reading.processes.get(key)
        if processes is not None:
            add("corral_process_execs_total", by_name, processes.execs)
            add("corral_process_forks_total", by_name, processes.forks)
            add("corral_process_exits_total", by_name, processes.exits)
        counts = reading.syscalls.get(key)
        latency = reading.latency.get(key)
        if counts or latency:
            self._add_syscalls(labels, counts or {}, latency or {}, metrics, usage)

    def _add_syscalls(self, container_labels: _ContainerLabels, counts: dict, latency: dict,
                      metrics: dict, usage: dict) -> None:
        top = usage["top"]
        series = container_labels.syscall_text
        if series is None or series.top != top:
            series = container_labels.syscall_text = SyscallText(
                container_labels.by_name["name"], container_labels.syscalls, top, self._name_of)
        chosen = series.chosen(counts)
        series.add_to(metrics.get(CALLS), metrics.get(ERRORS))
        # What each budget level would export (agent/budget): both families, per syscall.
        families = (CALLS in metrics) + (ERRORS in metrics)
        usage["syscalls"] += families * len(chosen)
        usage["syscalls_all"] += families * len(counts)
        usage["syscalls_top"] += families * min(len(counts), SHED_TOP if top is None else min(top, SHED_TOP))
        if latency:
            self._latency_on = True
        histogram = metrics.get(HISTOGRAM)
        if histogram is not None and self._latency_on:
            # Shed, the maps are not read: each syscall called would have its histogram.
            usage["latency_all"] += LATENCY_SERIES * (len(latency) if latency else len(counts))
        if histogram is None or not latency:
            return
        kept = None if top is None else {nr for nr, _ in chosen}
        for nr, buckets in latency.items():
            if kept is not None and nr not in kept:
                continue  # top:N keeps the same syscalls in every family
            self._add_histogram(histogram.samples, series.labels_of(nr), buckets)
            usage["latency"] += len(buckets) + 3

    def _add_histogram(self, out: list, labels: dict, buckets: list[int]) -> None:
        """log2 buckets (bucket i: [2^i, 2^(i+1)) ns) as a cumulative Prometheus histogram."""
        bounds, midpoints = self._bounds(len(buckets))
        cumulative = 0
        estimate = 0.0
        for index, count in enumerate(buckets):
            cumulative += count
            estimate += count * midpoints[index]
            out.append(make_sample("corral_syscall_duration_seconds_bucket",
                               {**labels, "le": bounds[index]}, cumulative))
        out.append(make_sample("corral_syscall_duration_seconds_bucket", {**labels, "le": "+Inf"}, cumulative))
        out.append(make_sample("corral_syscall_duration_seconds_count", labels, cumulative))
        out.append(make_sample("corral_syscall_duration_seconds_sum", labels, estimate))

    def _bounds(self, length: int) -> tuple[list[str], list[float]]:
        cached = self._bucket_bounds.get(length)
        if cached is None:
            bounds = [repr(2.0 ** (i + 1) / 1e9) for i in range(length)]
            # The probe only knows the bucket, not the time: count each call at its midpoint.
            midpoints = [1.5 * 2.0 ** i / 1e9 for i in range(length)]
            cached = self._bucket_bounds[length] = (bounds, midpoints)
        return cached

    def _name_of(self, nr: int) -> str:
        name = self._syscall_names.get(nr)
        if name is None:
            # A number the table does not know (a newer kernel) still gets a usable label.
            name = self._syscall_names[nr] = self._syscall_name(nr) or str(nr)
        return name

    @staticmethod
    def _add_probe_health(reading: ProbeReading, samples: dict) -> None:
        attached = samples.get("corral_probe_attached")
        if attached is not None:
            attached.extend(make_sample("corral_probe_attached", {"probe": probe}, 1 if up else 0)
                            for probe, up in sorted(reading.status.items()))
        errors = samples.get("corral_probe_errors_total")
        if errors is not None:
            errors.extend(make_sample("corral_probe_errors_total", {"probe": probe}, count)
                          for probe, count in sorted(reading.errors.items()))
        entries = samples.get("corral_probe_map_entries")
        if entries is not None:
            entries.extend(make_sample("corral_probe_map_entries", {"map": name}, count)
                           for name, count in sorted(reading.map_entries.items()))
        lost = samples.get("corral_events_lost_total")
        if lost is not None:
            lost.extend(make_sample("corral_events_lost_total", {"reason": reason}, count)
                        for reason, count in sorted(reading.events_lost.items()))
