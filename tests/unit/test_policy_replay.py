"""`policy replay`: a proposed policy against the kept history, without acting."""
from __future__ import annotations

from agent.policy.engine import ContainerRef
from agent.policy.history import SignalHistory
from agent.policy.model import Policy
from agent.policy.replay import replay
from agent.policy.signals import SignalSample

WEB = ContainerRef("c1", "web-1", "busybox:latest", {"tier": "web"})
DB = ContainerRef("c2", "db-1", "postgres:16", {})


def proposed(mode: str = "audit", **spec) -> Policy:
    body = {"mode": mode, "selector": {"names": ["web-*"]},
            "thresholds": [{"name": "mem", "signal": "memory_percent_of_limit", "above": 90, "for": "3s",
                            "actions": ["alert", "throttle"]}]}
    body.update(spec)
    return Policy.from_dict({"apiVersion": "corral/v1", "kind": "Policy", "metadata": {"name": "try"}, "spec": body})


def history_with(values_web, values_db=()) -> SignalHistory:
    history = SignalHistory(capacity=100)
    for t, v in enumerate(values_web):
        history.record(WEB, SignalSample(1000.0 + t, {"memory_percent_of_limit": v}))
    for t, v in enumerate(values_db):
        history.record(DB, SignalSample(1000.0 + t, {"memory_percent_of_limit": v}))
    return history


def test_replay_says_what_would_have_happened_and_when():
    history = history_with([50, 95, 95, 95, 95, 40, 40], [99] * 7)
    report = replay(proposed(), history)
    assert report.containers == ("web-1",)            # db-1 is not selected
    assert report.samples == 7
    assert [(e.time, e.kind, e.rule, e.actions) for e in report.events] == [
        (1004.0, "fire", "mem", ("alert", "throttle")),   # above from 1001, held 3 s
        (1005.0, "resolve", "mem", ("restore", "resolve_alert")),
    ]
    assert report.mode == "audit"                      # reported as written, evaluated as enforcing
    assert "not applied" in report.note


def test_replay_honours_since():
    history = history_with([95] * 10)
    report = replay(proposed(), history, since=1005.0)
    assert report.samples == 5
    assert [e.time for e in report.events] == [1008.0]


def test_replay_of_syscall_rules_reports_the_first_call():
    history = SignalHistory()
    for t, calls in enumerate([0, 0, 30, 40]):
        history.record(WEB, SignalSample(float(t), {"syscalls_per_second": 100.0},
                                         {"ptrace": (float(calls), 0.0)} if calls else {}))
    report = replay(proposed(syscalls=[{"names": ["ptrace"], "action": "deny"}], thresholds=[]), history)
    assert [(e.time, e.kind, e.actions, e.detail) for e in report.events] == [
        (2.0, "syscall", ("deny",), "ptrace called (30/s)")]


def test_replay_never_touches_anything_and_reports_nothing_for_a_quiet_history():
    report = replay(proposed(), history_with([10] * 5))
    assert report.events == ()
    assert report.to_dict()["events"] == []


def test_history_is_bounded_per_container_and_in_containers():
    history = SignalHistory(capacity=3, max_containers=2)
    for t in range(5):
        history.record(WEB, SignalSample(float(t), {}))
    assert [s.time for s in history.samples("c1")] == [2.0, 3.0, 4.0]
    history.record(DB, SignalSample(0.0, {}))
    history.record(ContainerRef("c3", "x"), SignalSample(0.0, {}))
    assert [c.id for c in history.containers()] == ["c2", "c3"]
    assert history.latest("c3").time == 0.0 and history.latest("c1") is None
