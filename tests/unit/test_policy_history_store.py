"""The policy history on disk: what a restart keeps, what it bounds, what it skips."""
from __future__ import annotations

import os

from agent.policy.engine import ContainerRef
from agent.policy.history import LAST_SEEN_STEP, SignalHistory
from agent.policy.history_store import HistoryStore
from agent.policy.signals import SignalSample

REF = ContainerRef("abc123", "web-1", "busybox:latest", {"tier": "web"})
T0 = 1_700_000_000.0


def sample(t: float) -> SignalSample:
    return SignalSample(T0 + t, {"memory_bytes": 1000.0 + t, "cpu_percent": None}, {"read": (3.0, 0.0)}, False)


def fill(history: SignalHistory, seconds: int) -> None:
    for t in range(seconds):
        history.record(REF, sample(t), syscall_totals={"read": (10 * (t + 1), 0), "openat": (2, 0)},
                       tcp_destinations={("10.0.0.1", 80): 1 + t // 10})


def test_seen_keeps_first_and_last_time_and_counts():
    history = SignalHistory(capacity=100)
    fill(history, 30)
    behaviour = history.behaviour(REF.id)
    assert behaviour is not None
    assert behaviour.syscalls["read"].first == T0 and behaviour.syscalls["read"].last == T0 + 29
    assert behaviour.syscalls["openat"].last == T0              # its total never moved again
    assert behaviour.destinations["tcp 10.0.0.1 80"].count == 3


def test_a_restart_keeps_the_history(tmp_path):
    history = SignalHistory(capacity=100, store=HistoryStore(tmp_path, 100))
    fill(history, 150)
    restored = SignalHistory(capacity=100)
    store = HistoryStore(tmp_path, 100)
    assert store.load(restored, now=T0 + 200) == 1
    before, after = history.behaviour(REF.id), restored.behaviour(REF.id)
    assert after is not None and before is not None
    assert after.container == REF
    assert [s.to_dict() for s in after.samples] == [s.to_dict() for s in before.samples]
    assert after.syscalls["read"].first == T0 and after.syscalls["openat"].count == 2
    # `last` is written when it moved a minute or more: a restart loses less than that.
    assert before.syscalls["read"].last - after.syscalls["read"].last < LAST_SEEN_STEP
    assert after.destinations.keys() == before.destinations.keys()


def test_files_stay_bounded_and_go_with_the_container(tmp_path):
    store = HistoryStore(tmp_path, 10)
    history = SignalHistory(capacity=10, max_containers=1, store=store)
    fill(history, 500)
    lines = (tmp_path / "abc123.jsonl").read_text().splitlines()
    assert len(lines) <= 10 + 64 + 4
    history.record(ContainerRef("other", "db"), sample(0))       # pushes abc123 out
    assert not (tmp_path / "abc123.jsonl").exists()
    history.forget("other")
    assert list(tmp_path.iterdir()) == []


def test_a_torn_line_is_skipped_and_old_files_are_dropped(tmp_path):
    history = SignalHistory(capacity=100, store=HistoryStore(tmp_path, 100))
    fill(history, 5)
    with open(tmp_path / "abc123.jsonl", "a") as handle:
        handle.write('{"sample": {"time": 17')               # a crash mid-write
    (tmp_path / "stale.jsonl").write_text('{"container": {"id": "stale", "name": "x"}}\n')
    os.utime(tmp_path / "stale.jsonl", (T0 - 30 * 86400, T0 - 30 * 86400))
    store = HistoryStore(tmp_path, 100)
    restored = SignalHistory(capacity=100)
    assert store.load(restored, now=T0 + 10) == 1
    assert store.skipped == 1
    assert len(restored.samples(REF.id)) == 5
    assert not (tmp_path / "stale.jsonl").exists()


def test_a_stopped_container_gets_a_last_look_at_its_counters():
    from agent.catalog.bus import ContainerStarted, ContainerStopped
    from agent.catalog.entry import CatalogEntry
    from agent.cgroups.double import CgroupDouble
    from agent.cgroups.driver import CgroupPaths
    from agent.metrics.sampler import Sampler
    from agent.policy.history_follow import record_on_stop
    from agent.probes.double import ProbeDouble

    probes = ProbeDouble.with_readings(syscall_counts={7: {0: (5, 0), 59: (1, 0)}},
                                       tcp_destinations={7: {("10.0.0.1", 80): 2}})
    sampler = Sampler(CgroupDouble(), probes, {0: "read", 59: "execve"}.get)
    history = SignalHistory(capacity=10)
    follow = record_on_stop(history, sampler, clock=lambda: T0)
    entry = CatalogEntry(id="c7", name="short", image="busybox", cgroup=CgroupPaths("/fake/corral/c7"), cgroup_id=7)
    follow(ContainerStarted(entry))
    follow(ContainerStopped(entry, aborted=True))
    assert history.behaviour("c7") is None                    # only a real stop counts
    follow(ContainerStopped(entry))
    behaviour = history.behaviour("c7")
    assert behaviour is not None and set(behaviour.syscalls) == {"read", "execve"}
    assert behaviour.destinations["tcp 10.0.0.1 80"].count == 2 and len(behaviour.samples) == 1
    # A container not counted (known from before a restart) adds nothing.
    other = CatalogEntry(id="c8", name="old", image="busybox", cgroup=CgroupPaths("/fake/corral/c8"), cgroup_id=8)
    follow(ContainerStopped(other))
    assert history.behaviour("c8") is None
