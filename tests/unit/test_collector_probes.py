"""ContainerCollector's BPF families, error counting and the /metrics endpoint, against the
probe double and an in-memory cgroup driver (tests/unit/collector_fakes.py)."""
from __future__ import annotations

import gzip
import socket
import urllib.error
import urllib.request

import pytest

from agent.errors import Conflict, InvalidArgument, KernelError
from agent.metrics.collector import ContainerCollector
from agent.metrics.model import FAMILIES, MetricsOptions
from agent.metrics.server import parse_addr, serve_metrics
from tests.unit.collector_fakes import (
    DB,
    DB_ID,
    READINGS,
    WEB,
    WEB_ID,
    FakeDriver,
    container,
    full_stats,
    make,
    probes_for_web,
    proc,  # noqa: F401 (a fixture: pytest finds it by name)
    scrape,
    snapshot,
)

# -- BPF counters ----------------------------------------------------------------------------

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
