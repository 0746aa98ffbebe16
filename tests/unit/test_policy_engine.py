"""The threshold engine on synthetic signal series, signals from snapshots, and merging."""
from __future__ import annotations

import yaml

from agent.cgroups.driver import Limits as CgroupLimits
from agent.metrics.snapshot import ContainerSnapshot
from agent.policy.engine import ContainerRef, Engine
from agent.policy.merge import merge, selecting
from agent.policy.model import Policy
from agent.policy.signals import SignalSample, compute_signals

WEB = ContainerRef(id="c1", name="web-1", image="busybox:latest", labels={"tier": "web"})


def policy(name: str, spec: dict) -> Policy:
    return Policy.from_dict({"apiVersion": "corral/v1", "kind": "Policy", "metadata": {"name": name}, "spec": spec})


def memory_rule(**extra) -> dict:
    rule = {"name": "mem", "signal": "memory_percent_of_limit", "above": 90, "for": "10s",
            "actions": ["alert", "throttle"]}
    rule.update(extra)
    return rule


def series(values, start=0.0, step=1.0, signal="memory_percent_of_limit"):
    return [SignalSample(start + i * step, {signal: v}) for i, v in enumerate(values)]


def run(engine, effective, samples, container=WEB):
    return [engine.evaluate(container, effective, s) for s in samples]


def test_fires_only_after_the_hold_time():
    effective = merge([policy("guard", {"thresholds": [memory_rule()]})])
    engine = Engine()
    results = run(engine, effective, series([95] * 12))
    fired = [i for i, r in enumerate(results) if r.violations]
    assert fired == [10]                       # held from t=0 to t=10: 10 s
    violation = results[10].violations[0]
    assert (violation.policy, violation.rule, violation.since, violation.time) == ("guard", "mem", 0.0, 10.0)
    assert [a.kind for a in results[10].actions] == ["alert", "throttle"]
    assert [s.phase for s in engine.states("c1")] == ["firing"]


def test_a_dip_before_the_hold_time_starts_over():
    effective = merge([policy("guard", {"thresholds": [memory_rule()]})])
    engine = Engine()
    results = run(engine, effective, series([95] * 8 + [50] + [95] * 11))
    assert [i for i, r in enumerate(results) if r.violations] == [19]
    assert not any(r.resolutions for r in results)    # pending that clears records nothing


def test_resolves_when_the_condition_clears_with_resolve_actions():
    effective = merge([policy("guard", {"thresholds": [memory_rule()]})])
    engine = Engine()
    results = run(engine, effective, series([95] * 11 + [80, 80]))
    resolution = results[11].resolutions[0]
    assert resolution.reason == "cleared" and resolution.fired_at == 10.0 and resolution.time == 11.0
    assert [a.kind for a in results[11].actions] == ["restore", "resolve_alert"]
    assert not results[12].actions and engine.states("c1") == []


def test_zero_hold_time_fires_on_the_first_sample_above():
    effective = merge([policy("oom", {"thresholds": [{"signal": "oom_kills", "above": 0}]})])
    results = run(Engine(), effective, series([0, 1], signal="oom_kills"))
    assert not results[0].violations and results[1].violations[0].rule == "thresholds[0]"


def test_unknown_values_leave_the_state_alone():
    effective = merge([policy("guard", {"thresholds": [memory_rule(**{"for": "2s"})]})])
    engine = Engine()
    results = run(engine, effective, series([95, None, None, 95, None]))
    assert [bool(r.violations) for r in results] == [False, False, False, True, False]
    assert not any(r.resolutions for r in results)


def test_audit_mode_records_and_alerts_but_never_enforces():
    effective = merge([policy("guard", {"mode": "audit", "thresholds": [memory_rule(actions=["throttle", "freeze", "kill"])]})])
    results = run(Engine(), effective, series([95] * 11 + [10]))
    violation = results[10].violations[0]
    assert violation.mode == "audit"
    assert violation.actions == ("alert",) and violation.suppressed == ("throttle", "freeze", "kill")
    kinds = [a.kind for r in results for a in r.actions]
    assert kinds == ["alert", "resolve_alert"]


def test_two_rules_throttle_once_and_restore_when_the_last_resolves():
    cpu = {"name": "cpu", "signal": "cpu_percent", "above": 50, "actions": ["throttle"]}
    effective = merge([policy("a", {"thresholds": [memory_rule(**{"for": 0})]}), policy("b", {"thresholds": [cpu]})])
    engine = Engine()
    both = SignalSample(0, {"memory_percent_of_limit": 95, "cpu_percent": 90})
    first = engine.evaluate(WEB, effective, both)
    assert [a.kind for a in first.actions].count("throttle") == 1 and len(first.violations) == 2
    memory_clears = engine.evaluate(WEB, effective, SignalSample(1, {"memory_percent_of_limit": 10, "cpu_percent": 90}))
    assert [a.kind for a in memory_clears.actions] == ["resolve_alert"]      # cpu still holds the throttle
    assert engine.holding("c1", "throttle")
    all_clear = engine.evaluate(WEB, effective, SignalSample(2, {"memory_percent_of_limit": 10, "cpu_percent": 1}))
    assert [a.kind for a in all_clear.actions] == ["restore"]


def test_a_freeze_holds_until_the_user_unfreezes():
    rule = {"name": "storm", "signal": "syscalls_per_second", "syscall": "openat", "above": 1000,
            "for": "2s", "actions": ["alert", "freeze"]}
    effective = merge([policy("guard", {"thresholds": [rule]})])
    engine = Engine()
    busy = [SignalSample(t, {"syscalls_per_second": 5000}, {"openat": (4000, 0)}) for t in range(3)]
    frozen = [SignalSample(t, {"syscalls_per_second": 0}, {}) for t in range(3, 6)]
    results = run(engine, effective, busy + frozen)
    assert [a.kind for a in results[2].actions] == ["alert", "freeze"]
    assert not any(r.resolutions for r in results[3:])     # zero rates of a frozen container resolve nothing
    released = engine.released(WEB, 6.0)
    assert released.resolutions[0].reason == "unfrozen"
    assert [a.kind for a in released.actions] == ["resolve_alert"]     # the user already thawed it
    again = run(engine, effective, [SignalSample(t, {"syscalls_per_second": 5000}, {"openat": (4000, 0)})
                                    for t in range(7, 10)])
    assert [a.kind for a in again[2].actions] == ["alert", "freeze"]  # still abusive: frozen again after for:


def test_a_rule_removed_on_reload_resolves_and_thaws():
    rule = {"name": "pids", "signal": "pids", "above": 10, "actions": ["freeze"]}
    engine = Engine()
    engine.evaluate(WEB, merge([policy("guard", {"thresholds": [rule]})]), SignalSample(0, {"pids": 50}))
    result = engine.evaluate(WEB, merge([]), SignalSample(1, {"pids": 50}))
    assert result.resolutions[0].reason == "rule removed"
    assert [a.kind for a in result.actions] == ["thaw"]


def test_states_are_per_container():
    effective = merge([policy("guard", {"thresholds": [memory_rule(**{"for": 0})]})])
    engine = Engine()
    other = ContainerRef("c2", "web-2")
    assert engine.evaluate(WEB, effective, SignalSample(0, {"memory_percent_of_limit": 95})).violations
    assert not engine.evaluate(other, effective, SignalSample(0, {"memory_percent_of_limit": 5})).violations
    engine.forget("c1")
    assert engine.states("c1") == [] and not engine.holding("c1", "throttle")


def test_kill_is_an_action_with_nothing_to_undo():
    effective = merge([policy("guard", {"thresholds": [{"signal": "pids", "above": 100, "actions": ["kill"]}]})])
    engine = Engine()
    fired = engine.evaluate(WEB, effective, SignalSample(0, {"pids": 500}))
    assert [a.kind for a in fired.actions] == ["kill"]
    cleared = engine.evaluate(WEB, effective, SignalSample(1, {"pids": 0}))
    assert cleared.resolutions and cleared.actions == []


# --- merging ------------------------------------------------------------------------------

def test_several_policies_merge_strictest_limits_and_added_rules():
    a = policy("a", {"limits": {"memory": "512Mi", "cpus": 1, "pids": 100},
                     "syscalls": [{"names": ["ptrace"], "action": "deny"}],
                     "thresholds": [memory_rule()]})
    b = policy("b", {"limits": {"memory": "256Mi", "cpus": 2},
                     "syscalls": [{"names": ["mount"], "action": "deny"}, {"names": ["setns"], "action": "kill"}],
                     "thresholds": [{"name": "p", "signal": "pids", "above": 50}]})
    audit = policy("c", {"mode": "audit", "limits": {"memory": "8Mi"},
                         "syscalls": [{"names": ["chown"], "action": "deny"}]})
    effective = merge([b, audit, a])
    assert effective.memory.value == 256 * 1024 * 1024 and str(effective.memory.source) == "b/limits.memory"
    assert effective.cpus.value == 1 and effective.cpus.source.policy == "a"
    assert effective.pids.value == 100
    assert [(r, v.value) for r, v in effective.audit_limits] == [("memory", 8 * 1024 * 1024)]
    assert effective.seccomp_denied() == ["mount", "ptrace"]          # audit deny is not enforced
    assert effective.killed_syscalls() == {"setns": 9}
    assert [str(s) for s in effective.alerted_syscalls()["chown"]] == ["c/syscalls[0] (audit)"]
    assert [t.key for t in effective.thresholds] == [("a", "mem"), ("b", "p")]
    assert [s.policy for s in effective.policies] == ["a", "b", "c"]
    limits = effective.cgroup_limits(CgroupLimits(memory_bytes=128 * 1024 * 1024, cpu_quota_us=None))
    assert limits == CgroupLimits(memory_bytes=128 * 1024 * 1024, cpu_quota_us=100_000, pids_max=100)
    assert effective.to_dict()["limits"]["memory"] == {"value": 256 * 1024 * 1024, "from": "b/limits.memory"}


def test_egress_is_allowed_only_if_every_enforcing_policy_allows_it():
    web = policy("web", {"network": {"egress": {"rules": [
        {"name": "no-ssh", "action": "deny", "cidr": "203.0.113.0/24", "ports": [22], "protocol": "tcp"}]}}})
    locked = policy("locked", {"network": {"egress": {"default": "deny", "rules": [
        {"action": "allow", "cidr": "203.0.113.0/24"}]}}})
    effective = merge([web, locked])
    assert effective.egress_verdict("203.0.113.5", 80, "tcp") == (True, None)
    allowed, source = effective.egress_verdict("203.0.113.5", 22, "tcp")
    assert not allowed and str(source) == "web/network.no-ssh"
    allowed, source = effective.egress_verdict("198.51.100.1", 80, "tcp")
    assert not allowed and str(source) == "locked/network.egress"
    assert effective.egress_verdict("203.0.113.5", 22, "udp")[0]


def test_selecting_uses_every_selector_field():
    policies = [policy("web", {"selector": {"names": ["web-*"], "labels": {"tier": "web"}}}),
                policy("all", {}), policy("db", {"selector": {"images": ["postgres"]}})]
    assert [p.name for p in selecting(policies, "web-1", "busybox", {"tier": "web"})] == ["all", "web"]
    assert [p.name for p in selecting(policies, "web-1", "busybox", {})] == ["all"]


# --- signals from snapshots ---------------------------------------------------------------

def snap(t, **fields) -> ContainerSnapshot:
    return ContainerSnapshot(id="c1", name="web-1", image="busybox", time=t, **fields)


def test_signals_from_two_snapshots():
    before = snap(10.0, cpu_seconds=1.0, memory_bytes=50, memory_limit_bytes=200, pids=3, oom_kills=1,
                  net_rx_bytes=1000, net_tx_bytes=0, tcp_connects=5, syscalls=100, syscall_errors=10,
                  by_syscall={"openat": (80, 10), "read": (20, 0)})
    after = snap(12.0, cpu_seconds=2.5, memory_bytes=150, memory_limit_bytes=200, pids=4, oom_kills=1,
                 net_rx_bytes=3000, net_tx_bytes=4096, tcp_connects=9, syscalls=300, syscall_errors=12,
                 by_syscall={"openat": (260, 12), "read": (20, 0), "write": (20, 0)})
    sample = compute_signals(before, after)
    assert sample.values == {
        "memory_bytes": 150.0, "memory_percent_of_limit": 75.0, "pids": 4.0, "oom_kills": 1.0,
        "cpu_percent": 75.0, "syscalls_per_second": 100.0, "syscall_errors_per_second": 1.0,
        "tcp_connects_per_second": 2.0, "network_tx_bytes_per_second": 2048.0,
        "network_rx_bytes_per_second": 1000.0, "unhealthy": None,    # no health check: unknown
        "memory_growth_bytes_per_second": 50.0,
        # No PSI and no CFS figures in these snapshots (a host without them): unknown.
        "memory_pressure_some_percent": None, "memory_pressure_full_percent": None,
        "cpu_pressure_some_percent": None, "cpu_throttled_percent": None}
    assert sample.syscalls == {"openat": (90.0, 1.0), "write": (10.0, 0.0)}   # read was idle
    assert sample.value("syscalls_per_second", "openat") == 90.0
    assert sample.value("syscall_errors_per_second", "openat") == 1.0
    assert sample.value("syscalls_per_second", "read") == 0.0


def test_pressure_throttling_and_growth_signals():
    before = snap(10.0, memory_bytes=400, memory_pressure_some_seconds=1.0, memory_pressure_full_seconds=0.5,
                  cpu_pressure_some_seconds=2.0, cpu_periods=100, cpu_throttled_periods=10)
    after = snap(12.0, memory_bytes=100, memory_pressure_some_seconds=1.5, memory_pressure_full_seconds=0.6,
                 cpu_pressure_some_seconds=6.0, cpu_periods=120, cpu_throttled_periods=15)
    values = compute_signals(before, after).values
    assert values["memory_growth_bytes_per_second"] == -150.0          # freed memory: a negative slope
    assert values["memory_pressure_some_percent"] == 25.0 and round(values["memory_pressure_full_percent"], 6) == 5.0
    assert values["cpu_pressure_some_percent"] == 100.0                # capped: several tasks stalled at once
    assert values["cpu_throttled_percent"] == 25.0                     # 5 of 20 periods throttled
    idle = compute_signals(after, snap(13.0, cpu_periods=120, cpu_throttled_periods=15)).values
    assert idle["cpu_throttled_percent"] == 0.0


def test_rates_are_unknown_without_a_previous_snapshot_or_after_a_counter_reset():
    first = compute_signals(None, snap(1.0, cpu_seconds=5.0, memory_bytes=10))
    assert first.values["cpu_percent"] is None and first.values["memory_bytes"] == 10.0
    assert first.values["memory_percent_of_limit"] is None        # no limit
    assert first.value("syscalls_per_second", "openat") is None
    reset = compute_signals(snap(1.0, syscalls=500), snap(2.0, syscalls=3))
    assert reset.values["syscalls_per_second"] is None
    same_time = compute_signals(snap(1.0, syscalls=1), snap(1.0, syscalls=5))
    assert same_time.values["syscalls_per_second"] is None


def test_the_web_guardrails_example_runs_through_the_engine():
    docs = list(yaml.safe_load_all(open("policies/web-guardrails.yaml")))
    effective = merge([Policy.from_dict(docs[0])])
    engine = Engine()
    samples = [SignalSample(t, {"syscalls_per_second": 60000, "memory_percent_of_limit": 10},
                            {"openat": (55000, 0)}) for t in range(7)]
    fired = [a.kind for r in run(engine, effective, samples) for a in r.actions]
    assert fired == ["alert", "freeze"]


def test_next_due_is_when_the_earliest_pending_rule_has_held_for_its_time():
    effective = merge([policy("guard", {"thresholds": [memory_rule(), memory_rule(name="slow", **{"for": "30s"})]})])
    engine = Engine()
    assert engine.next_due() is None
    run(engine, effective, series([95] * 3, start=100.0))
    assert engine.next_due() == 110.0                  # pending since t=100, for: 10s
    results = run(engine, effective, series([95], start=110.0))
    assert results[0].violations and engine.next_due() == 130.0   # "mem" fired; "slow" still pending
