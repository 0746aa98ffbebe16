"""The agent's budget (agent/budget): the shed order, hysteresis on the series count and on CPU
measured over a window (fake clock and CPU time), and the collector shedding per-syscall series
to top:N and latency histograms, then restoring them."""
from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from agent.budget.budget import SHED_ORDER, SHED_TOP, Budget, BudgetOptions, SeriesEstimate
from agent.budget.metrics import BudgetCollector
from agent.cgroups.driver import CgroupPaths
from agent.errors import InvalidArgument
from agent.metrics.collector import ContainerCollector
from agent.metrics.model import WatchedContainer
from agent.probes.double import ProbeDouble


class FakeCpu:
    def __init__(self) -> None:
        self.now = 0.0
        self.cpu = 0.0

    def run(self, seconds: float, cpus: float) -> None:
        self.now += seconds
        self.cpu += seconds * cpus


def cpu_budget(cpu: float = 0.2) -> tuple[Budget, FakeCpu]:
    fake = FakeCpu()
    return Budget(BudgetOptions(cpu=cpu, window=10), clock=lambda: fake.now, cpu_seconds=lambda: fake.cpu), fake


def test_the_options_are_checked():
    with pytest.raises(InvalidArgument, match="--cpu-budget"):
        BudgetOptions(cpu=-1)
    with pytest.raises(InvalidArgument, match="--series-budget"):
        BudgetOptions(series=-5)
    assert not BudgetOptions().enabled and BudgetOptions(series=10).enabled


def test_cpu_over_budget_sheds_one_level_per_window_in_order_and_restores_in_reverse():
    budget, cpu = cpu_budget(0.2)
    seen = []
    for _ in range(4):
        cpu.run(10, 0.5)
        budget.tick()
        seen.append(tuple(w for w, shed in budget.shedding().items() if shed))
    assert seen == [SHED_ORDER[:1], SHED_ORDER[:2], SHED_ORDER[:3], SHED_ORDER[:3]]
    assert budget.cpu_fraction == pytest.approx(0.5)
    cpu.run(10, 0.15)                     # under the budget but above half of it: kept
    budget.tick()
    assert budget.level == 3
    cpu.run(10, 0.05)                     # under half: one level back per window
    budget.tick()
    assert budget.shedding() == {"latency_histograms": True, "syscall_series": True, "exec_events": False}
    cpu.run(10, 0.05)
    budget.tick()
    cpu.run(10, 0.05)
    budget.tick()
    assert budget.level == 0 and not budget.shed("exec_events")


def test_cpu_is_judged_over_a_whole_window_only():
    budget, cpu = cpu_budget(0.2)
    cpu.run(5, 1.0)
    budget.tick()
    assert budget.level == 0 and budget.cpu_fraction is None
    cpu.run(5, 0.0)                       # 5 CPU-seconds over 10 s: 0.5 > 0.2
    budget.tick()
    assert budget.level == 1


def test_series_shed_to_the_lowest_level_that_fits_and_come_back_with_hysteresis():
    changes = []
    budget = Budget(BudgetOptions(series=500), on_change=changes.append)
    storm = SeriesEstimate(base=100, syscalls_all=800, syscalls_top=40, latency=0)
    budget.observe_series(storm, exported=900)
    assert budget.shedding() == {"latency_histograms": True, "syscall_series": True, "exec_events": False}
    assert changes == [SHED_ORDER[:2]]
    budget.observe_series(SeriesEstimate(100, 380, 40, 0), exported=140)     # 480 fits, not 80% of 500
    assert budget.level == 2
    budget.observe_series(SeriesEstimate(100, 290, 40, 0), exported=140)     # 390 < 400: restored
    assert budget.level == 0 and changes[-1] == ()
    assert budget.series == 140


def test_latency_histograms_go_first():
    budget = Budget(BudgetOptions(series=1000))
    budget.observe_series(SeriesEstimate(base=100, syscalls_all=200, syscalls_top=40, latency=3500), exported=3800)
    assert budget.shedding() == {"latency_histograms": True, "syscall_series": False, "exec_events": False}


def test_without_a_budget_nothing_is_shed():
    budget = Budget(BudgetOptions())
    budget.observe_series(SeriesEstimate(10**6, 10**6, 10, 10**6), exported=3 * 10**6)
    budget.tick()
    assert budget.level == 0 and budget.series == 3 * 10**6


# -- the collector sheds --------------------------------------------------------------------

class Driver:
    def stats(self, paths: CgroupPaths):
        raise OSError("no cgroup here")

    def pids(self, paths: CgroupPaths) -> list[int]:
        return []


def storm_collector(budget: Budget, syscalls: int = 60) -> tuple[ContainerCollector, ProbeDouble]:
    probes = ProbeDouble.with_readings(status={}, syscall_counts={7: {nr: (1000 - nr, 0) for nr in range(syscalls)}},
                                       syscall_latency={7: {nr: [1] * 32 for nr in range(syscalls)}})
    box = WatchedContainer(id="a" * 64, name="storm", image="busybox:latest",
                           cgroup=CgroupPaths(unified="/sys/fs/cgroup/unified/corral/storm"), cgroup_id=7,
                           started_at=1.0)
    return ContainerCollector(lambda: [box], Driver(), probes, syscall_name=lambda nr: f"sys{nr}",
                              budget=budget), probes


def scrape(collector: ContainerCollector, budget: Budget) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(collector)
    registry.register(BudgetCollector(budget))
    return registry


def series_of(registry: CollectorRegistry, family: str) -> int:
    return sum(1 for m in registry.collect() for s in m.samples if s.name == family)


def test_a_syscall_storm_over_the_series_budget_sheds_to_top_n_and_restores_when_it_ends():
    budget = Budget(BudgetOptions(series=100))
    collector, probes = storm_collector(budget)
    registry = scrape(collector, budget)
    assert series_of(registry, "corral_syscalls_total") == 60            # this scrape decides
    assert registry.get_sample_value("corral_budget_shed", {"what": "syscall_series"}) == 1
    assert registry.get_sample_value("corral_budget_shed", {"what": "latency_histograms"}) == 1
    assert registry.get_sample_value("corral_budget_shed", {"what": "exec_events"}) == 0
    reads = probes.reads.get("syscall_latency", 0)
    assert series_of(registry, "corral_syscalls_total") == SHED_TOP
    assert series_of(registry, "corral_syscall_duration_seconds_bucket") == 0
    assert probes.reads["syscall_latency"] == reads                       # shed: not even read
    top = {s.labels["syscall"] for m in registry.collect() for s in m.samples if s.name == "corral_syscalls_total"}
    assert top == {f"sys{nr}" for nr in range(SHED_TOP)}                  # the most called
    probes.counts = {7: {nr: (5, 0) for nr in range(20)}}                  # the storm ends
    assert series_of(registry, "corral_syscalls_total") == SHED_TOP        # this scrape decides
    assert registry.get_sample_value("corral_budget_shed", {"what": "syscall_series"}) == 0
    assert series_of(registry, "corral_syscalls_total") == 20
    # The histograms of 20 syscalls would be 700 series: they stay shed.
    assert registry.get_sample_value("corral_budget_shed", {"what": "latency_histograms"}) == 1


def test_latency_histograms_come_back_when_they_fit():
    budget = Budget(BudgetOptions(series=3000))
    collector, probes = storm_collector(budget, syscalls=100)
    registry = scrape(collector, budget)
    series_of(registry, "corral_syscalls_total")
    assert budget.shedding()["latency_histograms"] and not budget.shedding()["syscall_series"]
    probes.counts = {7: {nr: (5, 0) for nr in range(10)}}
    probes.latency = {7: {nr: [1] * 32 for nr in range(10)}}
    series_of(registry, "corral_syscalls_total")
    assert budget.level == 0
    assert series_of(registry, "corral_syscall_duration_seconds_bucket") == 10 * 33


def test_the_event_pump_counts_exec_events_instead_of_logging_them_while_shed(tmp_path):
    import time

    from agent.catalog.catalog import ContainerCatalog
    from agent.events import EventLog
    from agent.probes.events import ExecEvent, OomEvent
    from agent.probes.pump import ProbeEventPump
    from tests.unit.test_catalog import entry

    catalog, log, probes = ContainerCatalog(), EventLog(tmp_path / "events.jsonl"), ProbeDouble()
    catalog.put(entry("c1", "web", 32))
    shedding = {"exec_events": True}
    pump = ProbeEventPump(probes, log, catalog, shed=lambda what: shedding.get(what, False))

    def actions(count: int, dropped: int) -> list[str]:
        """The event log's actions once `count` are logged and `dropped` execs counted."""
        deadline = time.monotonic() + 10
        while (len(log.since()) < count or pump.dropped_execs < dropped) and time.monotonic() < deadline:
            time.sleep(0.01)
        return [e.action for e in log.since()]

    pump.start()
    try:
        probes.emit(ExecEvent(32, 78, "/bin/sh", 1001.0), OomEvent(32, 77, "tail", 1001.5))
        assert actions(1, 1) == ["oom"] and pump.dropped_execs == 1
        shedding["exec_events"] = False
        probes.emit(ExecEvent(32, 79, "/bin/ls", 1002.0))
        assert actions(2, 1) == ["oom", "exec"] and pump.dropped_execs == 1
    finally:
        pump.stop()
