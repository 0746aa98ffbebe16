"""KernelWatch without root: cgroup files faked in a tmp dir (regular files, which the epoll
refuses, so a source over one is reported, not armed), fds closed at disarm, wake-ups. The
kernel firing is tested for real in tests/integration/test_policy_events.py."""
from __future__ import annotations

import os
import threading

from agent.cgroups.driver import CgroupPaths
from agent.cgroups.watch import MEMORY, OOM, PressureTrigger, V1Watch, V2Watch, WatchSpec


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def fake_cgroup(tmp_path, *names: str) -> str:
    tmp_path.mkdir(exist_ok=True)
    for name in names:
        (tmp_path / name).write_text("0\n")
    return str(tmp_path)


def test_v1_arms_eventfds_through_event_control_and_closes_them(tmp_path):
    memory = fake_cgroup(tmp_path / "memory", "memory.usage_in_bytes", "memory.oom_control", "cgroup.event_control")
    watch = V1Watch()
    before = open_fds()
    armed = watch.arm("c1", CgroupPaths(str(tmp_path / "unified"), {"memory": memory}),
                      WatchSpec((10, 20), oom=True))
    assert armed.sources == {MEMORY, OOM}
    assert watch.open_fds() == 3                          # one eventfd per threshold, one for OOM
    last = (tmp_path / "memory" / "cgroup.event_control").read_text().split()
    assert len(last) == 2 and all(n.isdigit() for n in last)       # the OOM's "<eventfd> <fd>"
    watch.disarm("c1")
    assert watch.open_fds() == 0 and open_fds() == before
    watch.close()


def test_a_missing_file_is_a_problem_not_an_error(tmp_path):
    watch = V1Watch()
    before = open_fds()
    armed = watch.arm("c1", CgroupPaths(str(tmp_path), {"memory": str(tmp_path / "gone")}), WatchSpec((10,)))
    assert armed.sources == frozenset() and "memory" in armed.problems[0]
    assert open_fds() == before
    watch.close()


def test_an_unpollable_pressure_file_is_reported_and_its_fd_closed(tmp_path):
    unified = fake_cgroup(tmp_path, "memory.pressure")
    watch = V2Watch()
    before = open_fds()
    armed = watch.arm("c1", CgroupPaths(unified), WatchSpec(pressure=(PressureTrigger("memory", "some", 1000),)))
    assert armed.sources == frozenset() and armed.problems
    assert (tmp_path / "memory.pressure").read_bytes() == b"some 1000 2000000\0"   # the trigger written
    assert open_fds() == before and watch.open_fds() == 0
    watch.close()


def test_v2_memory_high_is_set_only_when_allowed_and_restored(tmp_path):
    unified = fake_cgroup(tmp_path, "memory.events")
    (tmp_path / "memory.high").write_text("max\n")
    watch = V2Watch()
    assert watch.arm("c1", CgroupPaths(unified), WatchSpec((64,))).sources == frozenset()
    assert (tmp_path / "memory.high").read_text() == "max\n"             # not allowed: untouched
    watch.arm("c1", CgroupPaths(unified), WatchSpec((64, 32), memory_high=True))
    assert (tmp_path / "memory.high").read_text() == "32"                 # at the lowest threshold
    watch.disarm("c1")
    assert (tmp_path / "memory.high").read_text() == "max"
    watch.close()


def test_wake_ends_a_wait_from_another_thread():
    watch = V1Watch()
    threading.Timer(0.05, watch.wake).start()
    assert watch.wait(30) == set()
    watch.close()
