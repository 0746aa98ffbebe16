"""ContainerCollector's cAdvisor-compatible cgroup families, against an in-memory cgroup
driver, the probe double and a /proc tree (tests/unit/collector_fakes.py); the BPF families,
error counts and the endpoint are in test_collector_probes.py.

Every test scrapes through a private CollectorRegistry and reads values the way Prometheus
would see them (`get_sample_value`).
"""
from __future__ import annotations

from agent.cgroups.driver import CgroupStats
from agent.metrics.collector import ContainerCollector
from agent.metrics.model import MetricsOptions, cadvisor_id
from tests.unit.collector_fakes import (
    DB,
    DB_ID,
    SYSCALLS,
    WEB,
    WEB_ID,
    FakeDriver,
    container,
    fake_probes,
    full_stats,
    make,
    probes_for_web,
    proc,  # noqa: F401 (a fixture: pytest finds it by name)
    scrape,
    write_proc,
)


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
