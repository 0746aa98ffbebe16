"""Rate thresholds checked in the kernel, without a kernel: which rules get a limit and which
value (kernel_limits), the probes' validation (shared by ProbeSet and ProbeDouble), writing
limits only when they change, the engine advancing rules on a crossing without clearing others,
and the policy service acting on a RateEvent from the pump's thread, once per breach."""
from __future__ import annotations

import threading

import pytest
from prometheus_client import CollectorRegistry

from agent.catalog.catalog import ContainerCatalog
from agent.catalog.entry import CatalogEntry
from agent.cgroups.double import CgroupDouble
from agent.cgroups.driver import CgroupPaths, Limits
from agent.cgroups.watch_double import WatchDouble
from agent.errors import InvalidArgument
from agent.events import EventLog
from agent.policy.engine import ContainerRef, Engine
from agent.policy.kernel_rates import STALE_SECONDS, KernelRates, crossed_rules, kernel_limits, sampled_because
from agent.policy.library import PolicyLibrary
from agent.policy.merge import merge
from agent.policy.model import Policy
from agent.policy.service import PolicyService
from agent.policy.signals import SignalSample
from agent.probes.double import ProbeDouble
from agent.probes.events import RateEvent
from agent.probes.rate_limits import UNUSED_LEVEL, encode, validate
from agent.probes.structs import RATE_LEVELS, RATE_PER_SYSCALL, RATE_SIGNALS, RATE_SYSCALL_LIMITS
from agent.syscall_table import syscall_name
from tests.unit.test_policy_watches import Clock


def effective(*thresholds: dict, mode: str = "enforce"):
    doc = {"apiVersion": "corral/v1", "kind": "Policy", "metadata": {"name": "p"},
           "spec": {"mode": mode, "thresholds": list(thresholds)}}
    return merge([Policy.from_dict(doc)])


def rate(count: int, signal: str = "syscalls", time: float = 1000.0, limit: int = 0, nr: int | None = None) -> RateEvent:
    return RateEvent(10, 7, "dd", signal, count, limit, 1, time, nr)


NUMBERS = {"read": 0, "write": 1, "openat": 257}.get     # a syscall table of three


# --- which rules the kernel checks ----------------------------------------------------------------

def test_rate_rules_get_a_level_each_of_their_signal_or_syscall_rounded_down():
    policy = effective({"signal": "syscalls_per_second", "above": 5000, "actions": ["kill"]},
                       {"signal": "syscalls_per_second", "above": 1000.5},
                       {"signal": "syscalls_per_second", "above": 1000},     # the same level once
                       {"signal": "syscalls_per_second", "syscall": "read", "above": 10},
                       {"signal": "syscall_errors_per_second", "syscall": "read", "above": 3},
                       {"signal": "tcp_connects_per_second", "above": 20},
                       {"signal": "network_rx_bytes_per_second", "above": "1Mi"},
                       {"signal": "pids", "above": 5},
                       {"signal": "syscalls_per_second", "syscall": "mystery", "above": 10})
    assert kernel_limits(policy, NUMBERS) == {"syscalls": (1000, 5000), ("syscalls", 0): (10,),
                                              ("syscall_errors", 0): (3,), "tcp_connects": (20,),
                                              "net_rx_bytes": (1024 * 1024,)}
    names = [(e.threshold.signal, e.threshold.syscall) for e in crossed_rules(policy, rate(2000), NUMBERS)]
    assert names == [("syscalls_per_second", None)] * 3      # not the per-syscall rules
    of_read = crossed_rules(policy, rate(11, nr=0), NUMBERS)
    assert [(e.threshold.signal, e.threshold.syscall) for e in of_read] == [("syscalls_per_second", "read")]
    assert crossed_rules(policy, rate(11, nr=1), NUMBERS) == ()
    assert [sampled_because(e, policy, NUMBERS) for e in policy.thresholds] == [
        None, None, None, None, None, None, None, None, "syscall mystery has no number on this host"]


def test_the_kernel_checks_the_lowest_levels_and_samples_the_rest():
    levels = [100, 200, 300, 400, 500, 600, 700, 800, 900]      # one policy may hold 8: two policies

    def document(name: str, rules: list[dict]) -> Policy:
        return Policy.from_dict({"apiVersion": "corral/v1", "kind": "Policy", "metadata": {"name": name},
                                 "spec": {"thresholds": rules}})
    policy = merge([document("low", [{"name": f"r{above}", "signal": "syscalls_per_second", "above": above}
                                     for above in levels[:5]]),
                    document("high", [{"name": f"r{above}", "signal": "syscalls_per_second", "above": above}
                                      for above in levels[5:]] + [{"name": "hot", "signal": "cpu_percent", "above": 90}])])
    assert kernel_limits(policy, NUMBERS) == {"syscalls": tuple(levels[:RATE_LEVELS])}
    reasons = {e.source.rule: sampled_because(e, policy, NUMBERS) for e in policy.thresholds}
    assert [reasons[f"r{above}"] for above in levels[:8]] == [None] * 8
    assert str(reasons["r900"]).startswith("the kernel checks the lowest 8 levels of a signal; this one is above them")
    assert "cpuacct" in str(reasons["hot"])


def test_per_syscall_limits_beyond_the_kernels_pairs_are_sampled():
    names = [f"call{n}" for n in range(RATE_SYSCALL_LIMITS + 1)]
    policy = effective(*({"signal": "syscalls_per_second", "syscall": name, "above": 5} for name in names))
    number = {name: n for n, name in enumerate(names)}.get
    limits = kernel_limits(policy, number)
    assert sorted(limits) == [("syscalls", n) for n in range(RATE_SYSCALL_LIMITS)]
    reasons = [sampled_because(e, policy, number) for e in policy.thresholds]
    assert reasons[:-1] == [None] * RATE_SYSCALL_LIMITS and "at most 16" in str(reasons[-1])


def test_the_probes_validate_levels_and_encode_one_bit_per_signal():
    with pytest.raises(InvalidArgument, match="'forks'"):
        validate({"forks": 1})
    with pytest.raises(InvalidArgument, match="rate limit of syscalls"):
        validate({"syscalls": -1})
    with pytest.raises(InvalidArgument, match="rate limit of syscalls: expected 1-8 levels, got 9"):
        validate({"syscalls": tuple(range(1, 10))})
    with pytest.raises(InvalidArgument, match="got 'x'"):
        validate({"syscalls": (1, "x")})
    with pytest.raises(InvalidArgument, match="tcp_connects"):
        validate({("tcp_connects", 3): 1})
    with pytest.raises(InvalidArgument, match="expected a syscall number 0-510"):
        validate({("syscalls", 511): 1})
    with pytest.raises(InvalidArgument, match="at most 16 per container, got 17"):
        validate({("syscalls", nr): 1 for nr in range(17)})
    assert validate({"syscalls": (500, 9, 500), "tcp_connects": 3}) == {"syscalls": (9, 500), "tcp_connects": (3,)}
    table, syscalls = encode({"syscalls": (9, 500), "net_tx_bytes": (100,)}, generation=4)
    assert syscalls is None
    assert table.armed == 0b01001 and list(table.limits[0].levels) == [9, 500] + [UNUSED_LEVEL] * 6
    assert table.limits[3].levels[0] == 100 and table.limits[3].levels[1] == UNUSED_LEVEL
    assert table.generation == 4 and encode({}, 4)[0].generation == 0
    assert len(RATE_SIGNALS) == 5


def test_per_syscall_limits_are_encoded_as_entries_named_by_number_and_flagged():
    table, syscalls = encode({("syscalls", 0): (10, 20), ("syscall_errors", 0): (3,), ("syscalls", 257): (7,)}, 2)
    assert table.armed == RATE_PER_SYSCALL and syscalls is not None
    assert (syscalls.calls[0], syscalls.errors[0], syscalls.calls[257], syscalls.calls[1]) == (1, 2, 3, 0)
    assert list(syscalls.limits[0].levels[:3]) == [10, 20, UNUSED_LEVEL]
    assert syscalls.limits[1].levels[0] == 3 and syscalls.limits[2].levels[0] == 7


def test_the_double_arms_only_signals_whose_probe_is_attached():
    probes = ProbeDouble(status={"syscalls": True, "tcp_connect": False, "network": True})
    with pytest.raises(InvalidArgument, match="not watched"):
        probes.set_rate_limits(7, {"syscalls": 1})
    probes.watch(7, "/cg/7")
    assert probes.set_rate_limits(7, {"syscalls": 1, "tcp_connects": 2}) == ("syscalls",)
    assert probes.rate_limits == {7: {"syscalls": (1,)}}
    assert probes.set_rate_limits(7, {("syscalls", 0): 5, "syscalls": 1}) == ("syscalls", ("syscalls", 0))
    probes.unwatch(7, None)
    assert probes.rate_limits == {}


def test_limits_are_written_when_they_change_and_cleared_when_gone():
    probes = ProbeDouble()
    probes.watch(10, "/cg/10")
    writes = []
    original = probes.set_rate_limits
    probes.set_rate_limits = lambda cid, limits: (writes.append(dict(limits)), original(cid, limits))[1]  # type: ignore[method-assign]
    rates = KernelRates(probes)
    rates.sync({"a": (10, {"syscalls": (100,)})})
    rates.sync({"a": (10, {"syscalls": (100,)})})
    assert writes == [{"syscalls": (100,)}]
    rule = effective({"signal": "syscalls_per_second", "above": 100}).thresholds[0]
    higher = effective({"signal": "syscalls_per_second", "above": 500}).thresholds[0]
    assert rates.evented("a", rule) and not rates.evented("a", higher)
    rates.sync({"a": (10, {"syscalls": (100, 500)})})
    assert probes.rate_limits[10] == {"syscalls": (100, 500)} and rates.evented("a", higher) and rates.evented("a", rule)
    rates.sync({})
    assert probes.rate_limits == {} and not rates.evented("a", higher)


def test_limits_are_written_again_when_the_slot_is_given_anew():
    probes = ProbeDouble()
    probes.watch(10, "/cg/10")
    rates = KernelRates(probes)
    rates.sync({"a": (10, {"syscalls": (100,), ("syscalls", 0): (5,)})})
    probes.unwatch(10, None)                # a restart in the same cgroup, between two syncs
    probes.watch(10, "/cg/10")
    assert probes.rate_limits == {}
    rates.sync({"a": (10, {"syscalls": (100,), ("syscalls", 0): (5,)})})
    assert probes.rate_limits == {10: {"syscalls": (100,), ("syscalls", 0): (5,)}}


def test_a_container_not_watched_yet_is_retried_at_the_next_sync():
    probes = ProbeDouble()
    rates = KernelRates(probes)
    rates.sync({"a": (10, {"syscalls": (100,)})})
    assert probes.rate_limits == {}
    probes.watch(10, "/cg/10")
    rates.sync({"a": (10, {"syscalls": (100,)})})
    assert probes.rate_limits == {10: {"syscalls": (100,)}}


def test_stale_crossings_are_left_to_sampling():
    rates = KernelRates(None)
    rates.offer("a", rate(10, time=100.0))
    rates.offer("b", rate(10, time=100.0 - STALE_SECONDS - 1))
    assert [cid for cid, _ in rates.take(100.5)] == ["a"]
    assert rates.take(100.5) == []


# --- the engine on a crossing ---------------------------------------------------------------------

def test_a_crossing_fires_the_rules_it_is_above_and_leaves_the_others():
    policy = effective({"name": "low", "signal": "syscalls_per_second", "above": 1000, "actions": ["kill"]},
                       {"name": "high", "signal": "syscalls_per_second", "above": 5000, "for": "60s"},
                       {"name": "held", "signal": "syscalls_per_second", "above": 1000, "for": "10s"})
    engine, ref = Engine(), ContainerRef("c", "web")
    evaluation = engine.cross(ref, crossed_rules(policy, rate(1001), NUMBERS), 1001.0, 1000.0)
    assert [(a.kind, a.rule) for a in evaluation.actions] == [("kill", "low")]
    assert evaluation.violations[0].trigger == "kernel" and evaluation.violations[0].to_dict()["trigger"] == "kernel"
    phases = {s.rule: (s.phase, s.trigger) for s in engine.states("c")}
    assert phases == {"low": ("firing", "kernel"), "held": ("pending", "kernel")}
    assert engine.next_due() == 1010.0                      # the hold runs from the crossing
    again = engine.cross(ref, crossed_rules(policy, rate(9000), NUMBERS), 9000.0, 1000.5)
    assert again.actions == []                              # already firing: no second kill
    assert {s.rule: s.phase for s in engine.states("c")}["high"] == "pending"


def test_a_crossing_below_a_pending_rule_does_not_clear_it():
    policy = effective({"name": "high", "signal": "syscalls_per_second", "above": 5000, "for": "60s"})
    engine, ref = Engine(), ContainerRef("c", "web")
    engine.evaluate(ref, policy, SignalSample(990.0, {"syscalls_per_second": 6000.0}))
    engine.cross(ref, policy.thresholds, 1001.0, 1000.0)
    assert [(s.phase, s.since) for s in engine.states("c")] == [("pending", 990.0)]


def test_a_sampled_firing_is_not_repeated_by_a_crossing():
    policy = effective({"name": "low", "signal": "syscalls_per_second", "above": 1000, "actions": ["alert"]})
    engine, ref = Engine(), ContainerRef("c", "web")
    fired = engine.evaluate(ref, policy, SignalSample(999.0, {"syscalls_per_second": 2000.0}))
    assert fired.violations[0].trigger == "sampled"
    assert engine.cross(ref, policy.thresholds, 1500.0, 1000.0).actions == []


# --- the service ----------------------------------------------------------------------------------

POLICY = """apiVersion: corral/v1
kind: Policy
metadata: {name: storm}
spec:
  selector: {names: ["web-*"]}
  thresholds:
    - {name: storm, signal: syscalls_per_second, above: ABOVE, actions: [alert, kill]}
"""


@pytest.fixture
def world(tmp_path):
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "storm.yaml").write_text(POLICY.replace("ABOVE", "1000"))
    driver, catalog, probes = CgroupDouble(), ContainerCatalog(), ProbeDouble()
    events = EventLog(tmp_path / "events.jsonl")
    service = PolicyService(PolicyLibrary(str(folder), syscall_known=lambda name: True), catalog=catalog,
                            cgroups=driver, events=events, probes=probes, registry=CollectorRegistry(),
                            clock=Clock(), watch=WatchDouble(), syscall_name=syscall_name)
    service.reload()
    entry = CatalogEntry(id="w" * 12, name="web-1", image="busybox", cgroup=CgroupPaths("/fake/corral/web-1"),
                         cgroup_id=10, requested=Limits())
    catalog.put(entry)
    probes.watch(10, "/fake/corral/web-1")
    return service, folder, driver, probes, entry, events


def test_the_limits_follow_the_policy_and_a_reload(world):
    service, folder, driver, probes, entry, events = world
    service._sync_watches()
    assert probes.rate_limits == {10: {"syscalls": (1000,)}}
    (folder / "storm.yaml").write_text(POLICY.replace("ABOVE", "50000"))
    service.reload()
    service._sync_watches()
    assert probes.rate_limits == {10: {"syscalls": (50000,)}}


def test_a_crossing_kills_and_the_violation_says_the_kernel_saw_it(world):
    service, folder, driver, probes, entry, events = world
    service._sync_watches()
    evaluation = service.evaluate_crossing(entry.id, rate(1001, limit=1000))
    assert evaluation is not None and [a.kind for a in evaluation.actions] == ["alert", "kill"]
    assert entry.cgroup.unified in driver.killed
    violation = [e for e in events.since() if e.action == "violation"][0]
    assert violation.attributes["rule"] == "storm" and violation.attributes["trigger"] == "kernel"
    assert service.evaluate_crossing(entry.id, rate(5000, limit=1000)).actions == []


def test_two_levels_on_one_signal_each_fire_their_own_action_from_their_crossing(world):
    service, folder, driver, probes, entry, events = world
    (folder / "storm.yaml").write_text(POLICY.replace("ABOVE", "5000").replace("name: storm, ", "name: kill, ")
                                       .replace("actions: [alert, kill]", "actions: [kill]")
                                       + "    - {name: noisy, signal: syscalls_per_second, above: 1000, "
                                         "actions: [alert]}\n")
    service.reload()
    service._sync_watches()
    assert probes.rate_limits == {10: {"syscalls": (1000, 5000)}}
    low = service.evaluate_crossing(entry.id, rate(1001, limit=1000))
    assert [(a.kind, a.rule) for a in low.actions] == [("alert", "noisy")] and not driver.killed
    high = service.evaluate_crossing(entry.id, rate(5001, limit=5000))
    assert [(a.kind, a.rule) for a in high.actions] == [("kill", "kill")]
    assert entry.cgroup.unified in driver.killed
    violations = [e.attributes for e in events.since() if e.action == "violation"]
    assert [(v["rule"], v["value"], v["trigger"]) for v in violations] == [("noisy", 1001.0, "kernel"),
                                                                          ("kill", 5001.0, "kernel")]


def test_a_per_syscall_crossing_fires_the_rule_of_that_syscall_alone(world):
    service, folder, driver, probes, entry, events = world
    (folder / "storm.yaml").write_text(POLICY.replace("ABOVE", "1000") + "    - {name: reads, signal: "
                                       "syscalls_per_second, syscall: read, above: 300, actions: [alert]}\n")
    service.reload()
    service._sync_watches()
    read = service.enforcer.syscall_number("read")
    assert probes.rate_limits == {10: {"syscalls": (1000,), ("syscalls", read): (300,)}}
    assert service.evaluate_crossing(entry.id, rate(301, limit=300, nr=read + 1)) is None   # not a ruled syscall
    evaluation = service.evaluate_crossing(entry.id, rate(301, limit=300, nr=read))
    assert [(a.kind, a.rule) for a in evaluation.actions] == [("alert", "reads")] and not driver.killed
    violation = [e.attributes for e in events.since() if e.action == "violation"][0]
    assert (violation["rule"], violation["syscall"], violation["trigger"]) == ("reads", "read", "kernel")
    detection = {d["rule"]: d for d in service._detections(entry, service.policy_for("web-1", "busybox"))}
    assert detection["storm/reads"]["checked"] == "kernel"
    assert detection["storm/reads"]["detail"] == "syscalls of read above 300 in a 1 s window"


def test_a_rate_event_from_the_pump_wakes_the_policy_thread(world):
    service, folder, driver, probes, entry, events = world
    service.interval = service.pace.interval = service.pace.current = 3600.0   # the tick never comes
    killed = threading.Event()
    original = driver.kill
    driver.kill = lambda paths: (original(paths), killed.set())   # type: ignore[method-assign]
    service.start()
    try:
        service.record_enforcement(entry, rate(1001, time=service._clock(), limit=1000))
        assert killed.wait(10), "a rate crossing did not lead to the kill"
    finally:
        service.stop()


def test_after_a_crossing_the_next_tick_judges_the_rate_since_the_crossing(world):
    service, folder, driver, probes, entry, events = world
    (folder / "storm.yaml").write_text(POLICY.replace("ABOVE", "1000").replace("[alert, kill]", "[alert]"))
    service.reload()
    probes.counts = {10: {0: (0, 0)}}
    service.evaluate()                                  # the tick's snapshot: 0 calls at 1000.0
    service._clock.now = 1004.0
    probes.counts = {10: {0: (1000, 0)}}                # the storm began just now
    assert service.evaluate_crossing(entry.id, rate(1001, time=1004.0, limit=1000)).violations
    service._clock.now = 1005.0
    probes.counts = {10: {0: (2500, 0)}}                # 1500/s since the crossing, 500/s since the tick
    service.evaluate()
    assert [s.phase for s in service.engine.states(entry.id)] == ["firing"]
    assert [e.action for e in events.since() if e.action in ("violation", "resolved")] == ["violation"]
    service._clock.now = 1006.0
    probes.counts = {10: {0: (2600, 0)}}                # the storm is over: resolved by sampling
    service.evaluate()
    assert service.engine.states(entry.id) == []


def test_after_a_per_syscall_crossing_the_next_tick_judges_that_syscalls_rate_since_it(world):
    service, folder, driver, probes, entry, events = world
    (folder / "storm.yaml").write_text(POLICY.replace("ABOVE", "1000").replace("{name: storm, ", "{name: reads, ")
                                       .replace("syscalls_per_second,", "syscalls_per_second, syscall: read,")
                                       .replace("[alert, kill]", "[alert]"))
    service.reload()
    read = service.enforcer.syscall_number("read")
    probes.counts = {10: {read: (0, 0)}}
    service.evaluate()                                  # the tick's snapshot: 0 reads at 1000.0
    service._clock.now = 1004.0
    probes.counts = {10: {read: (1000, 0)}}
    assert service.evaluate_crossing(entry.id, rate(1001, time=1004.0, limit=1000, nr=read)).violations
    service._clock.now = 1005.0
    probes.counts = {10: {read: (2500, 0)}}             # 1500 reads/s since the crossing, 500/s since the tick
    service.evaluate()
    assert [s.phase for s in service.engine.states(entry.id)] == ["firing"]
    service._clock.now = 1006.0
    probes.counts = {10: {read: (2600, 0)}}             # over: resolved by sampling
    service.evaluate()
    assert service.engine.states(entry.id) == []
