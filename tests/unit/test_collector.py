"""ContainerCollector against an in-memory cgroup driver, probe set and /proc tree.

Every test scrapes through a private CollectorRegistry and reads values the way Prometheus
would see them (`get_sample_value`), plus the /metrics endpoint over loopback.
"""
from __future__ import annotations

import gzip
import socket
import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry

from agent.cgroups.driver import CgroupPaths, CgroupStats, Pressure
from agent.errors import Conflict, InvalidArgument, KernelError
from agent.metrics.collector import ContainerCollector
from agent.metrics.model import FAMILIES, MetricsOptions, WatchedContainer, cadvisor_id
from agent.metrics.server import parse_addr, serve_metrics
from agent.probes.double import ProbeDouble
from agent.probes.interface import NetCounters, ProcessCounters, TcpCounters

SYSCALLS = {0: "read", 1: "write", 2: "open", 3: "close", 59: "execve"}


class FakeDriver:
    """stats()/pids() from dicts; a container whose stats are an exception raises it."""

    def __init__(self, stats: dict, pids: dict | None = None) -> None:
        self.stats_by_dir = stats
        self.pids_by_dir = pids or {}
        self.stats_calls = 0

    def stats(self, paths: CgroupPaths) -> CgroupStats:
        self.stats_calls += 1
        value = self.stats_by_dir[paths.unified]
        if isinstance(value, Exception):
            raise value
        return value

    def pids(self, paths: CgroupPaths) -> list[int]:
        value = self.pids_by_dir.get(paths.unified, [])
        if isinstance(value, Exception):
            raise value
        return value


READINGS = ("syscall_counts", "syscall_latency", "network", "tcp", "processes", "oom_kills", "status",
            "errors", "map_entries", "events_lost")


def fake_probes(**maps) -> ProbeDouble:
    """The maintained probe double, with the readings given by method name."""
    return ProbeDouble.with_readings(**{"status": {}, **maps})


def container(cid: str, name: str, cgroup_id: int, **extra) -> WatchedContainer:
    return WatchedContainer(id=cid, name=name, image="busybox:latest",
                            cgroup=CgroupPaths(unified=f"/sys/fs/cgroup/unified/corral/{cid}"),
                            cgroup_id=cgroup_id, started_at=1700000000.0, **extra)


def full_stats(**overrides) -> CgroupStats:
    values = dict(
        cpu_usage_seconds=12.5, cpu_user_seconds=8.0, cpu_system_seconds=4.5,
        cpu_periods=100, cpu_throttled_periods=7, cpu_throttled_seconds=0.25,
        cpu_quota_us=50_000, cpu_period_us=100_000,
        memory_usage_bytes=64 << 20, memory_max_usage_bytes=80 << 20,
        memory_working_set_bytes=48 << 20, memory_rss_bytes=40 << 20, memory_cache_bytes=16 << 20,
        memory_failcnt=3, memory_limit_bytes=128 << 20, oom_kills=2, pids_current=2, pids_limit=64,
        pressure={"cpu": Pressure(1.5, 0.5), "memory": Pressure(0.25, 0.125), "io": Pressure(2.0, 1.0)})
    values.update(overrides)
    return CgroupStats(**values)


def write_proc(root, pid: int, threads: int) -> None:
    directory = root / str(pid)
    directory.mkdir(parents=True)
    (directory / "status").write_text(f"Name:\tsh\nPid:\t{pid}\nThreads:\t{threads}\nVmRSS:\t1 kB\n")


@pytest.fixture
def proc(tmp_path):
    root = tmp_path / "proc"
    root.mkdir()
    return root


WEB = container("aaa111", "web", 1001, labels={"com.example.tier": "front", "team": "a"})
DB = container("bbb222", "db", 1002)


def scrape(collector: ContainerCollector) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(collector)
    return registry


def snapshot(collector: ContainerCollector):
    """One scrape, then value(name, labels) over it: get_sample_value scrapes on every call,
    and the error counters grow with each scrape."""
    found = {(sample.name, frozenset(sample.labels.items())): sample.value
             for metric in scrape(collector).collect() for sample in metric.samples}
    return lambda name, labels=None: found.get((name, frozenset((labels or {}).items())))


def make(proc, *, containers=(WEB, DB), stats=None, pids=None, probes=None, options=None,
         clock=lambda: 1700000500.7):
    stats = stats if stats is not None else {c.cgroup.unified: full_stats() for c in containers}
    driver = FakeDriver(stats, pids)
    collector = ContainerCollector(lambda: list(containers), driver, probes, options or MetricsOptions(),
                                   syscall_name=SYSCALLS.get, proc_root=str(proc), clock=clock)
    return collector, driver


WEB_ID = {"id": "/corral/aaa111", "name": "web", "image": "busybox:latest",
          "container_label_com_example_tier": "front", "container_label_team": "a"}
DB_ID = {"id": "/corral/bbb222", "name": "db", "image": "busybox:latest"}


# -- cAdvisor-compatible families ------------------------------------------------------------

def test_cgroup_figures_carry_cadvisor_names_and_labels(proc):
    registry = scrape(make(proc)[0])
    value = registry.get_sample_value
    assert value("container_cpu_usage_seconds_total", {**WEB_ID, "cpu": "total"}) == 12.5
    assert value("container_cpu_user_seconds_total", WEB_ID) == 8.0
    assert value("container_cpu_system_seconds_total", WEB_ID) == 4.5
    assert value("container_cpu_cfs_periods_total", WEB_ID) == 100
    assert value("container_cpu_cfs_throttled_periods_total", WEB_ID) == 7
    assert value("container_cpu_cfs_throttled_seconds_total", WEB_ID) == 0.25
    assert value("container_memory_usage_bytes", WEB_ID) == 64 << 20
    assert value("container_memory_working_set_bytes", WEB_ID) == 48 << 20
    assert value("container_memory_rss", WEB_ID) == 40 << 20
    assert value("container_memory_cache", WEB_ID) == 16 << 20
    assert value("container_memory_max_usage_bytes", WEB_ID) == 80 << 20
    assert value("container_memory_failcnt", WEB_ID) == 3
    assert value("container_oom_events_total", WEB_ID) == 2
    assert value("container_spec_memory_limit_bytes", WEB_ID) == 128 << 20
    assert value("container_spec_cpu_quota", WEB_ID) == 50_000
    assert value("container_spec_cpu_period", WEB_ID) == 100_000
    assert value("container_threads_max", WEB_ID) == 64
    assert value("container_start_time_seconds", WEB_ID) == 1700000000.0
    assert value("container_last_seen", WEB_ID) == 1700000500.0
    assert value("container_memory_usage_bytes", DB_ID) == 64 << 20
    assert value("corral_containers") == 2


def test_pressure_waiting_is_some_and_stalled_is_full(proc):
    value = scrape(make(proc)[0]).get_sample_value
    assert value("container_pressure_cpu_waiting_seconds_total", WEB_ID) == 1.5
    assert value("container_pressure_cpu_stalled_seconds_total", WEB_ID) == 0.5
    assert value("container_pressure_memory_waiting_seconds_total", WEB_ID) == 0.25
    assert value("container_pressure_memory_stalled_seconds_total", WEB_ID) == 0.125
    assert value("container_pressure_io_waiting_seconds_total", WEB_ID) == 2.0
    assert value("container_pressure_io_stalled_seconds_total", WEB_ID) == 1.0


def test_unlimited_container_shows_zero_limits_and_no_cfs_series(proc):
    stats = {WEB.cgroup.unified: full_stats(cpu_quota_us=None, memory_limit_bytes=None,
                                            pids_limit=None, pressure={})}
    value = scrape(make(proc, containers=(WEB,), stats=stats)[0]).get_sample_value
    assert value("container_spec_memory_limit_bytes", WEB_ID) == 0
    assert value("container_threads_max", WEB_ID) == 0
    assert value("container_spec_cpu_quota", WEB_ID) is None
    assert value("container_cpu_cfs_periods_total", WEB_ID) is None
    assert value("container_cpu_cfs_throttled_seconds_total", WEB_ID) is None
    assert value("container_pressure_cpu_waiting_seconds_total", WEB_ID) is None
    assert value("container_spec_cpu_period", WEB_ID) == 100_000


def test_figures_the_host_does_not_expose_are_left_out(proc):
    stats = {WEB.cgroup.unified: CgroupStats(memory_usage_bytes=10)}
    value = scrape(make(proc, containers=(WEB,), stats=stats)[0]).get_sample_value
    assert value("container_memory_usage_bytes", WEB_ID) == 10
    assert value("container_memory_rss", WEB_ID) is None
    assert value("container_cpu_usage_seconds_total", {**WEB_ID, "cpu": "total"}) is None


def test_processes_come_from_cgroup_procs_and_threads_from_pids_current(proc):
    # No /proc files at all: the cgroup alone answers.
    stats = {WEB.cgroup.unified: full_stats(pids_current=9), DB.cgroup.unified: full_stats(pids_current=0)}
    pids = {WEB.cgroup.unified: [4001, 4002, 4003]}
    value = scrape(make(proc, stats=stats, pids=pids)[0]).get_sample_value
    assert value("container_processes", WEB_ID) == 3
    assert value("container_threads", WEB_ID) == 9
    assert value("container_processes", DB_ID) == 0
    assert value("container_threads", DB_ID) == 0
    assert value("corral_scrape_errors_total", {"source": "processes"}) == 0


def test_threads_never_fall_below_processes(proc):
    # A process forked between the read of pids.current and that of cgroup.procs.
    stats = {WEB.cgroup.unified: full_stats(pids_current=1)}
    pids = {WEB.cgroup.unified: [4001, 4002]}
    value = scrape(make(proc, containers=(WEB,), stats=stats, pids=pids)[0]).get_sample_value
    assert value("container_processes", WEB_ID) == 2
    assert value("container_threads", WEB_ID) == 2


def test_without_a_pids_controller_threads_come_from_proc_status(proc):
    write_proc(proc, 4001, threads=1)
    write_proc(proc, 4002, threads=7)
    stats = {c.cgroup.unified: full_stats(pids_current=None) for c in (WEB, DB)}
    pids = {WEB.cgroup.unified: [4001, 4002, 4003]}   # 4003 exited since the cgroup was listed
    value = scrape(make(proc, stats=stats, pids=pids)[0]).get_sample_value
    assert value("container_processes", WEB_ID) == 2
    assert value("container_threads", WEB_ID) == 8
    assert value("container_processes", DB_ID) == 0
    assert value("corral_scrape_errors_total", {"source": "processes"}) == 0


def test_the_drivers_one_file_process_list_is_preferred(proc):
    class ProcsDriver(FakeDriver):
        def procs(self, paths):
            return [1, 2, 3, 4]
    driver = ProcsDriver({WEB.cgroup.unified: full_stats(pids_current=5)}, {WEB.cgroup.unified: [1]})
    collector = ContainerCollector(lambda: [WEB], driver, None, proc_root=str(proc))
    assert scrape(collector).get_sample_value("container_processes", WEB_ID) == 4


def test_a_container_that_changes_or_goes_shows_its_new_labels_only(proc):
    watched = [WEB, DB]
    stats = {c.cgroup.unified: full_stats() for c in (WEB, DB)}
    collector = ContainerCollector(lambda: list(watched), FakeDriver(stats), probes_for_web(),
                                   proc_root=str(proc), syscall_name=SYSCALLS.get)
    registry = scrape(collector)
    assert registry.get_sample_value("container_memory_usage_bytes", WEB_ID) == 64 << 20
    renamed = container("aaa111", "web-2", 1001, labels={"team": "b"})
    watched[:] = [renamed]
    found = {(s.name, tuple(sorted(s.labels.items()))) for m in registry.collect() for s in m.samples}
    new_id = {"id": "/corral/aaa111", "name": "web-2", "image": "busybox:latest", "container_label_team": "b"}
    assert ("container_memory_usage_bytes", tuple(sorted(new_id.items()))) in found
    assert ("corral_syscalls_total", (("name", "web-2"), ("syscall", "read"))) in found
    assert not any(dict(labels).get("name") in ("web", "db") for _, labels in found)


def test_oom_events_fall_back_to_the_probe_when_the_cgroup_has_no_count(proc):
    stats = {WEB.cgroup.unified: full_stats(oom_kills=None)}
    probes = fake_probes(oom_kills={1001: 4})
    value = scrape(make(proc, containers=(WEB,), stats=stats, probes=probes)[0]).get_sample_value
    assert value("container_oom_events_total", WEB_ID) == 4


def test_container_labels_become_container_label_labels_unless_dropped(proc):
    options = MetricsOptions(drop_labels=("id", "container_label_com_*"))
    value = scrape(make(proc, options=options)[0]).get_sample_value
    assert value("container_memory_usage_bytes",
                 {"name": "web", "image": "busybox:latest", "container_label_team": "a"}) == 64 << 20
    assert value("container_memory_usage_bytes", WEB_ID) is None


def test_service_replicas_and_build_steps_carry_their_own_label(proc):
    step = container("c" * 64, "step", 9, labels={"corral.build": "b1"})
    value = scrape(make(proc, containers=(step,), options=MetricsOptions(drop_labels=("id",)))[0]).get_sample_value
    assert value("container_memory_usage_bytes", {"name": "step", "image": "busybox:latest", "build": "b1",
                                                  "container_label_corral_build": "b1"}) is not None


def test_id_label_is_the_cgroup_path_below_the_mount():
    assert cadvisor_id("/sys/fs/cgroup/unified/corral/abc") == "/corral/abc"
    assert cadvisor_id("/sys/fs/cgroup/corral/abc") == "/corral/abc"
    explicit = container("x", "x", 1, cgroup_path="/corral/x")
    assert explicit.id_label == "/corral/x"


# -- BPF counters ----------------------------------------------------------------------------

def probes_for_web(**maps) -> ProbeDouble:
    defaults = dict(
        syscall_counts={1001: {0: (500, 2), 1: (300, 0), 2: (40, 40), 3: (41, 1), 59: (1, 0)},
                        9999: {0: (5, 0)}},    # a cgroup the agent does not watch
        network={1001: NetCounters(1000, 10, 2000, 20)},
        tcp={1001: TcpCounters(5, 1)},
        processes={1001: ProcessCounters(3, 4, 2)},
        status={"syscalls": True, "tcp": False},
        errors={"syscalls": 0, "tcp": 9})
    defaults.update(maps)
    return fake_probes(**defaults)


WEB_NAME = {"name": "web"}


def test_probe_counters_by_container(proc):
    value = scrape(make(proc, probes=probes_for_web())[0]).get_sample_value
    assert value("corral_syscalls_total", {"name": "web", "syscall": "read"}) == 500
    assert value("corral_syscall_errors_total", {"name": "web", "syscall": "open"}) == 40
    assert value("corral_syscalls_total", {"name": "web", "syscall": "execve"}) == 1
    assert value("corral_tcp_connects_total", WEB_NAME) == 5
    assert value("corral_tcp_retransmits_total", WEB_NAME) == 1
    assert value("corral_process_execs_total", WEB_NAME) == 3
    assert value("corral_process_forks_total", WEB_NAME) == 4
    assert value("corral_process_exits_total", WEB_NAME) == 2
    assert value("corral_network_receive_bytes_total", WEB_NAME) == 1000
    assert value("corral_network_transmit_packets_total", WEB_NAME) == 20
    assert value("container_network_receive_bytes_total", {**WEB_ID, "interface": "all"}) == 1000
    assert value("container_network_receive_packets_total", {**WEB_ID, "interface": "all"}) == 10
    assert value("container_network_transmit_bytes_total", {**WEB_ID, "interface": "all"}) == 2000
    assert value("container_network_transmit_packets_total", {**WEB_ID, "interface": "all"}) == 20
    assert value("corral_probe_attached", {"probe": "syscalls"}) == 1
    assert value("corral_probe_attached", {"probe": "tcp"}) == 0
    assert value("corral_probe_errors_total", {"probe": "tcp"}) == 9
    # No invented zeros for a container the maps have not seen.
    assert value("corral_tcp_connects_total", {"name": "db"}) is None


def test_each_map_is_read_once_per_scrape_whatever_the_number_of_containers(proc):
    many = tuple(container(f"c{i}", f"c{i}", 2000 + i) for i in range(20))
    probes = probes_for_web()
    registry = scrape(make(proc, containers=many, probes=probes)[0])
    registry.get_sample_value("corral_containers")
    assert probes.reads == {name: 1 for name in READINGS}


def test_syscall_names_that_are_unknown_fall_back_to_the_number(proc):
    probes = probes_for_web(syscall_counts={1001: {451: (3, 0), 0: (1, 0)}})
    value = scrape(make(proc, probes=probes)[0]).get_sample_value
    assert value("corral_syscalls_total", {"name": "web", "syscall": "451"}) == 3
    assert value("corral_syscalls_total", {"name": "web", "syscall": "read"}) == 1


def test_top_n_keeps_the_most_called_syscalls(proc):
    options = MetricsOptions(syscall_metrics="top:2")
    registry = scrape(make(proc, probes=probes_for_web(), options=options)[0])
    kept = {s.labels["syscall"] for m in registry.collect() if m.name == "corral_syscalls"
            for s in m.samples}
    assert kept == {"read", "write"}
    assert registry.get_sample_value("corral_syscall_errors_total",
                                     {"name": "web", "syscall": "open"}) is None


def test_syscall_metrics_none_drops_every_syscall_family(proc):
    collector = make(proc, probes=probes_for_web(), options=MetricsOptions(syscall_metrics="none"))[0]
    described = {m.name for m in collector.describe()}
    assert not any(name.startswith("corral_syscall") for name in described)
    registry = scrape(collector)
    assert registry.get_sample_value("corral_syscalls_total", {"name": "web", "syscall": "read"}) is None
    assert registry.get_sample_value("corral_tcp_connects_total", WEB_NAME) == 5


def test_latency_histogram_from_log2_buckets(proc):
    # bucket i counts [2^i, 2^(i+1)) ns
    latency = {1001: {0: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 6, 3, 1]}}   # 1-2 us, 2-4 us, 4-8 us
    value = scrape(make(proc, probes=probes_for_web(syscall_latency=latency))[0]).get_sample_value
    read = {"name": "web", "syscall": "read"}
    assert value("corral_syscall_duration_seconds_bucket", {**read, "le": "1.024e-06"}) == 0
    assert value("corral_syscall_duration_seconds_bucket", {**read, "le": "2.048e-06"}) == 6
    assert value("corral_syscall_duration_seconds_bucket", {**read, "le": "4.096e-06"}) == 9
    assert value("corral_syscall_duration_seconds_bucket", {**read, "le": "8.192e-06"}) == 10
    assert value("corral_syscall_duration_seconds_bucket", {**read, "le": "+Inf"}) == 10
    assert value("corral_syscall_duration_seconds_count", read) == 10
    estimate = (6 * 1.5 * 1024 + 3 * 1.5 * 2048 + 1 * 1.5 * 4096) / 1e9
    assert value("corral_syscall_duration_seconds_sum", read) == pytest.approx(estimate)


def test_no_histogram_when_latency_is_disabled(proc):
    registry = scrape(make(proc, probes=probes_for_web(syscall_latency={}))[0])
    assert registry.get_sample_value("corral_syscall_duration_seconds_count",
                                     {"name": "web", "syscall": "read"}) is None


def test_without_bpf_the_cgroup_figures_still_appear(proc):
    registry = scrape(make(proc, probes=None)[0])
    assert registry.get_sample_value("container_memory_usage_bytes", WEB_ID) == 64 << 20
    assert registry.get_sample_value("corral_probe_attached", {"probe": "syscalls"}) is None
    assert registry.get_sample_value("corral_scrape_errors_total", {"source": "probes"}) == 0


# -- errors never fail a scrape --------------------------------------------------------------

def test_one_container_failing_does_not_fail_the_scrape(proc):
    stats = {WEB.cgroup.unified: KernelError("memory.stat: No such file or directory"),
             DB.cgroup.unified: full_stats()}
    collector, _ = make(proc, stats=stats, probes=probes_for_web())
    value = snapshot(collector)
    assert value("container_memory_usage_bytes", DB_ID) == 64 << 20
    assert value("container_memory_usage_bytes", WEB_ID) is None
    # The failing container's other series are still there.
    assert value("container_start_time_seconds", WEB_ID) == 1700000000.0
    assert value("corral_syscalls_total", {"name": "web", "syscall": "read"}) == 500
    assert value("corral_scrape_errors_total", {"source": "cgroup"}) == 1
    assert value("corral_scrape_errors_total", {"source": "probes"}) == 0
    # The count lives in the collector: it keeps growing scrape after scrape.
    assert snapshot(collector)("corral_scrape_errors_total", {"source": "cgroup"}) == 2
    assert collector.scrape_errors["cgroup"] == 2


def test_a_failing_map_is_counted_and_the_others_still_read(proc):
    probes = probes_for_web()
    probes.fail = {"syscall_counts"}
    value = snapshot(make(proc, probes=probes)[0])
    assert value("corral_syscalls_total", {"name": "web", "syscall": "read"}) is None
    assert value("corral_tcp_connects_total", WEB_NAME) == 5
    assert value("corral_scrape_errors_total", {"source": "probes"}) == 1


def test_unreadable_pids_are_counted(proc):
    pids = {WEB.cgroup.unified: PermissionError(13, "Permission denied")}
    value = snapshot(make(proc, pids=pids)[0])
    assert value("container_processes", WEB_ID) is None
    assert value("container_memory_usage_bytes", WEB_ID) == 64 << 20
    assert value("container_processes", DB_ID) == 0
    assert value("corral_scrape_errors_total", {"source": "processes"}) == 1


def test_a_failing_container_list_still_answers(proc):
    def broken():
        raise RuntimeError("state store unreadable")
    collector = ContainerCollector(broken, FakeDriver({}), None, proc_root=str(proc))
    value = snapshot(collector)
    assert value("corral_containers") == 0
    assert value("corral_scrape_errors_total", {"source": "containers"}) == 1


# -- describe and options --------------------------------------------------------------------

def test_describe_lists_every_family(proc):
    collector = make(proc)[0]
    described = {m.name for m in collector.describe()}
    assert described == {f.base_name for f in FAMILIES}
    assert "container_cpu_usage_seconds" in described   # prometheus_client drops _total


def test_drop_metrics_globs_remove_families(proc):
    options = MetricsOptions(drop_metrics=("container_network_*", "corral_probe_*"))
    collector = make(proc, probes=probes_for_web(), options=options)[0]
    described = {m.name for m in collector.describe()}
    assert not any(n.startswith(("container_network_", "corral_probe_")) for n in described)
    value = scrape(collector).get_sample_value
    assert value("container_network_receive_bytes_total", {**WEB_ID, "interface": "all"}) is None
    assert value("corral_network_receive_bytes_total", WEB_NAME) == 1000


@pytest.mark.parametrize("text", ["some", "top:0", "top:-1", "top:x", "TOP:3", ""])
def test_bad_syscall_metrics_is_refused_with_the_value(text):
    with pytest.raises(InvalidArgument, match="syscall-metrics"):
        MetricsOptions(syscall_metrics=text)


def test_options_from_dict():
    options = MetricsOptions.from_dict({"syscall_metrics": "top:5", "drop_metrics": ["corral_tcp_*"]})
    assert options.syscall_top == 5 and options.drop_metrics == ("corral_tcp_*",)
    with pytest.raises(InvalidArgument, match="unknown field 'drop'"):
        MetricsOptions.from_dict({"drop": ["x"]})
    with pytest.raises(InvalidArgument, match="drop-labels"):
        MetricsOptions(drop_labels=("*",))


# -- the endpoint ----------------------------------------------------------------------------

def test_endpoint_serves_metrics_and_stops(proc):
    server = serve_metrics("127.0.0.1:0", make(proc)[0])
    try:
        body = urllib.request.urlopen(server.url, timeout=5).read().decode()
        assert 'container_memory_usage_bytes{' in body
        assert "corral_containers 2.0" in body
        assert "process_resident_memory_bytes" in body
        request = urllib.request.Request(server.url, headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.headers["Content-Encoding"] == "gzip"
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            assert b"corral_containers 2.0" in gzip.decompress(response.read())
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(server.url.replace("/metrics", "/nope"), timeout=5)
        assert missing.value.code == 404
    finally:
        server.stop()
    server.stop()   # idempotent
    with pytest.raises(OSError):
        socket.create_connection(server.address, timeout=1).close()


def test_endpoint_port_in_use_is_a_conflict(proc):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(Conflict, match=f"127.0.0.1:{port}"):
            serve_metrics(f"127.0.0.1:{port}", make(proc)[0])


def test_metrics_addr_parsing():
    assert parse_addr("127.0.0.1:9750") == ("127.0.0.1", 9750)
    assert parse_addr("[::1]:9750") == ("::1", 9750)
    assert parse_addr(":9750") == ("0.0.0.0", 9750)
    for bad in ("9750", "host:", "host:70000", "::1:9750"):
        with pytest.raises(InvalidArgument, match="metrics-addr"):
            parse_addr(bad)


def test_a_map_entry_of_the_wrong_shape_is_a_counted_decode_error(proc):
    probes = probes_for_web(syscall_counts={1001: {0: "garbage"}})
    value = snapshot(make(proc, probes=probes)[0])
    assert value("corral_scrape_errors_total", {"source": "probes"}) == 1
    assert value("container_memory_usage_bytes", DB_ID) == 64 << 20
    assert value("corral_tcp_connects_total", WEB_NAME) == 5
