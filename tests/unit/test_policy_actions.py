"""Actions against an in-memory cgroup driver: throttle/restore arithmetic, results, events, alerts."""
from __future__ import annotations

from agent.cgroups.double import CgroupDouble
from agent.cgroups.driver import CgroupPaths, Limits
from agent.events import EventLog
from agent.policy.actions import ActionExecutor, Alert
from agent.policy.engine import ContainerRef, Engine
from agent.policy.merge import merge
from agent.policy.model import Policy
from agent.policy.signals import SignalSample

PATHS = CgroupPaths(unified="/fake/corral/c1")
WEB = ContainerRef("c1", "web-1")


def memory_driver(limits: Limits) -> CgroupDouble:
    """The maintained cgroup double, with the container's limits in force."""
    driver = CgroupDouble()
    driver.limits[PATHS.unified] = limits
    return driver


class Sink:
    def __init__(self):
        self.calls: list[tuple[str, Alert]] = []

    def fire(self, alert): self.calls.append(("fire", alert))
    def resolve(self, alert): self.calls.append(("resolve", alert))


def policy(actions, mode="enforce") -> Policy:
    return Policy.from_dict({"apiVersion": "corral/v1", "kind": "Policy", "metadata": {"name": "guard"},
                             "spec": {"mode": mode, "thresholds": [
                                 {"name": "pids", "signal": "pids", "above": 10, "actions": actions}]}})


def cycle(executor, actions, mode="enforce"):
    """Fire and resolve the rule once; the results of each step."""
    engine, effective = Engine(), merge([policy(actions, mode)])
    fired = executor.run(engine.evaluate(WEB, effective, SignalSample(0, {"pids": 50})), lambda _: PATHS)
    between = executor.driver.read_limits(PATHS), PATHS.unified in executor.driver.frozen
    resolved = executor.run(engine.evaluate(WEB, effective, SignalSample(1, {"pids": 1})), lambda _: PATHS)
    return fired, between, resolved


def test_throttle_halves_the_quota_and_restore_puts_it_back():
    driver = memory_driver(Limits(memory_bytes=1 << 30, cpu_quota_us=50_000, pids_max=64))
    fired, (during, _), resolved = cycle(ActionExecutor(driver), ["throttle"])
    assert [str(r) for r in fired] == ["ok"]
    assert during == Limits(memory_bytes=1 << 30, cpu_quota_us=25_000, pids_max=64)
    assert [(r.action, str(r)) for r in resolved] == [("restore", "ok")]
    assert driver.limits[PATHS.unified].cpu_quota_us == 50_000


def test_throttling_an_unlimited_container_gives_it_half_the_host():
    driver = memory_driver(Limits(cpu_quota_us=None, cpu_period_us=100_000))
    executor = ActionExecutor(driver, host_cpus=4)
    assert executor.throttle("c1", PATHS).ok
    assert driver.limits[PATHS.unified].cpu_quota_us == 200_000
    assert executor.restore("c1", PATHS).ok and driver.limits[PATHS.unified].cpu_quota_us is None
    assert executor.halved(Limits(cpu_quota_us=1500)) == 1000           # the kernel's minimum


def test_live_limits_while_throttled_stay_throttled_and_become_the_restore_value():
    driver = memory_driver(Limits(cpu_quota_us=80_000))
    executor = ActionExecutor(driver)
    executor.throttle("c1", PATHS)
    assert executor.apply_limits("c1", PATHS, Limits(memory_bytes=64 << 20, cpu_quota_us=40_000)).ok
    assert driver.limits[PATHS.unified] == Limits(memory_bytes=64 << 20, cpu_quota_us=20_000)
    executor.restore("c1", PATHS)
    assert driver.limits[PATHS.unified].cpu_quota_us == 40_000


def test_freeze_thaw_and_kill_go_through_the_driver():
    driver = memory_driver(Limits())
    fired, (_, frozen_between), resolved = cycle(ActionExecutor(driver), ["freeze", "kill"])
    assert frozen_between and PATHS.unified in driver.killed
    assert [r.action for r in fired] == ["freeze", "kill"]
    assert resolved == []          # a freeze is undone by the user (`corral unfreeze`)


def test_failures_are_results_not_exceptions(tmp_path):
    driver = memory_driver(Limits(cpu_quota_us=50_000))
    driver.fail = True
    events = EventLog(tmp_path / "events.jsonl")
    executor = ActionExecutor(driver, events=events)
    [result] = executor.run(Engine().evaluate(WEB, merge([policy(["throttle"])]), SignalSample(0, {"pids": 50})),
                            lambda _: PATHS)
    assert result.result == "failed" and str(result) == "failed: cgroup /fake/corral/c1: write refused"
    assert [(e.action, e.attributes.get("result")) for e in events.since(0)] == [
        ("violation", None), ("throttle", "failed: cgroup /fake/corral/c1: write refused")]
    assert executor.restore("c1", PATHS).result == "failed"            # never throttled
    missing = executor.execute(Engine().evaluate(WEB, merge([policy(["kill"])]),
                                                 SignalSample(0, {"pids": 50})).actions[0], None)
    assert str(missing) == "failed: container web-1 has no cgroup"


def test_alerts_reach_the_sink_and_the_event_log(tmp_path):
    sink = Sink()
    events = EventLog(tmp_path / "events.jsonl")
    executor = ActionExecutor(memory_driver(Limits()), events=events, alert_sink=sink)
    fired, _, resolved = cycle(executor, ["alert"], mode="audit")
    assert [str(r) for r in fired + resolved] == ["ok", "ok"]
    (verb1, alert), (verb2, resolved_alert) = sink.calls
    assert (verb1, verb2) == ("fire", "resolve")
    assert alert.key == resolved_alert.key == "c1/guard/pids"
    assert alert.summary == "web-1: pids = 50 above 10 (policy guard, rule pids)"
    assert alert.mode == "audit" and resolved_alert.value == 1
    assert [e.action for e in events.since(0)] == ["violation", "alert", "resolved"]


def test_a_broken_sink_is_a_failed_result():
    class Broken:
        def fire(self, alert): raise ConnectionError("webhook down")
        def resolve(self, alert): pass
    executor = ActionExecutor(memory_driver(Limits()), alert_sink=Broken())
    fired, _, _ = cycle(executor, ["alert"])
    assert str(fired[0]) == "failed: alert sink: ConnectionError: webhook down"
