"""The doubles ContainerCollector's unit tests share: an in-memory cgroup driver, the probe
double with given readings, a /proc tree, two containers and the scrape helpers."""
from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from agent.cgroups.driver import CgroupPaths, CgroupStats, Pressure
from agent.metrics.collector import ContainerCollector
from agent.metrics.model import MetricsOptions, WatchedContainer
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
    """An empty /proc tree the collector reads instead of the host's."""
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
