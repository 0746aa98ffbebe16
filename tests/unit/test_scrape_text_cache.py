"""Text kept between scrapes (syscall series, unchanged lines, raw counter memo) never changes
what a scrape says: every render equals prometheus_client's own encoder, scrape after scrape,
while counters move, syscalls appear and vanish, and containers go."""
from __future__ import annotations

import ctypes as ct

from prometheus_client import CollectorRegistry, generate_latest

from agent.cgroups.driver import CgroupPaths
from agent.metrics.collector import ContainerCollector
from agent.metrics.model import MetricsOptions, WatchedContainer
from agent.metrics.server import LabelTexts, render, scrape_body
from agent.metrics.syscall_series import SyscallText
from agent.metrics.text import TextMetric
from agent.probes import readings
from agent.probes.double import ProbeDouble
from agent.probes.structs import NR_SYSCALLS, SyscallCount
from tests.unit.test_metric_names import Driver


def _container(index: int, name: str | None = None) -> WatchedContainer:
    cid = f"{index:04x}" * 16
    return WatchedContainer(id=cid, name=name or f"svc-{index}", image="busybox", cgroup_id=100 + index,
                            cgroup=CgroupPaths(unified=f"/sys/fs/cgroup/unified/corral/{cid}"),
                            started_at=1.7e9)


def _setup(options: MetricsOptions | None = None):
    containers = [_container(0), _container(1)]
    probes = ProbeDouble(max_containers=4)
    for container in containers:
        probes.watch(container.cgroup_id, container.cgroup.unified)
    probes.counts = {100: {0: (10, 1), 1: (20, 0), 59: (3, 0)}, 101: {0: (5, 0)}}
    shown = list(containers)
    collector = ContainerCollector(lambda: shown, Driver(), probes, options,
                                   syscall_name={0: "read", 1: "write", 59: "execve"}.get,
                                   clock=lambda: 1.7e9)
    registry = CollectorRegistry()
    registry.register(collector)
    return registry, probes, shown


def _same_as_stock(registry: CollectorRegistry, texts: LabelTexts) -> bytes:
    ours = render(registry, texts)
    assert ours == generate_latest(registry)
    return ours


def test_every_scrape_matches_the_stock_encoder_while_counters_move():
    registry, probes, shown = _setup()
    texts = LabelTexts()
    first = _same_as_stock(registry, texts)
    assert b'corral_syscalls_total{name="svc-0",syscall="read"} 10.0' in first
    # A value moves, a syscall appears, another vanishes.
    probes.counts = {100: {0: (11, 1), 1: (20, 0), 2: (1, 1)}, 101: {0: (5, 0)}}
    second = _same_as_stock(registry, texts)
    assert b'syscall="read"} 11.0' in second and b'syscall="execve"' not in second
    assert b'corral_syscall_errors_total{name="svc-0",syscall="2"} 1.0' in second
    # A container goes and another with a reused name comes.
    shown[:] = [_container(0), _container(2, name="svc-1")]
    probes.watch(102, shown[1].cgroup.unified)
    probes.counts = {100: probes.counts[100], 102: {1: (7, 7)}}
    third = _same_as_stock(registry, texts)
    assert b'corral_syscalls_total{name="svc-1",syscall="write"} 7.0' in third
    assert b'syscall="read"} 5.0' not in third


def test_top_n_and_a_dropped_family_stay_exact():
    registry, probes, _shown = _setup(MetricsOptions(syscall_metrics="top:1",
                                                     drop_metrics=("corral_syscall_errors_total",)))
    texts = LabelTexts()
    body = _same_as_stock(registry, texts)
    assert b"corral_syscall_errors_total" not in body
    assert body.count(b'corral_syscalls_total{name="svc-0"') == 1
    probes.counts = {100: {0: (10, 1), 1: (30, 0)}, 101: {0: (5, 0)}}
    body = _same_as_stock(registry, texts)
    assert b'corral_syscalls_total{name="svc-0",syscall="write"} 30.0' in body


def test_the_syscall_series_rewrite_only_lines_whose_value_moved():
    series = SyscallText("web", {}, None, {0: "read", 1: "write"}.get)
    counts = {0: (1, 0), 1: (2, 0)}
    series.chosen(counts)
    calls, errors = TextMetric("corral_syscalls", "", "counter"), None
    series.add_to(calls, errors)
    kept_line = series._lines[1][1]
    series.chosen({0: (2, 0), 1: (2, 0)})
    assert series._lines[1][1] is kept_line           # write did not move: the same string
    assert series._lines[0][1] == 'corral_syscalls_total{name="web",syscall="read"} 2.0\n'
    assert [s.value for s in calls.samples] == [1, 2]  # the chunk made earlier keeps its values


def test_the_served_body_is_gzipped_only_when_asked():
    import gzip
    registry, _probes, _shown = _setup()
    plain = scrape_body(registry, LabelTexts(), False)
    assert gzip.decompress(scrape_body(registry, LabelTexts(), True)) == plain


class _Table:
    map_fd = 3


class _Compiled:
    ncpus = 2

    def table(self, name: str) -> _Table:
        return _Table()


def test_unchanged_raw_counters_give_back_the_same_figures_without_summing(monkeypatch):
    rows: dict[int, ct.Array] = {}

    def lookup_range(table, ctype, ncpus, start, count):
        return rows[start // NR_SYSCALLS]

    monkeypatch.setattr(readings.percpu, "lookup_range", lookup_range)
    values = (SyscallCount * (NR_SYSCALLS * 2))()
    # Key-major, one value per CPU: read counted on both CPUs; write only failed (no calls).
    values[0].calls, values[1].calls, values[2].errors = 4, 5, 1
    rows[0] = values
    memo: readings.SyscallMemo = {}
    first = readings.syscall_counts(_Compiled(), {7: 0}, memo)
    assert first == {7: {0: (9, 0)}}
    again = readings.syscall_counts(_Compiled(), {7: 0}, memo)
    assert again[7] is first[7]            # the very same dict: the renderer keeps its text
    values[0].calls = 6
    moved = readings.syscall_counts(_Compiled(), {7: 0}, memo)
    assert moved[7] is not first[7] and moved[7][0][0] == 11
    readings.syscall_counts(_Compiled(), {}, memo)
    assert memo == {}                      # a container gone is forgotten
