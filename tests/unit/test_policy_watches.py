"""Event-driven thresholds without a kernel: what is armed for a policy (watch_spec), the arming
bookkeeping (Watches with WatchDouble), the adaptive pace, and PolicyService acting on a fired
watch, re-arming on reload and closing watches when a container goes."""
from __future__ import annotations

import threading

import pytest
from prometheus_client import CollectorRegistry

from agent.catalog.bus import ContainerStarted
from agent.catalog.catalog import ContainerCatalog
from agent.catalog.entry import EXITED, CatalogEntry
from agent.cgroups.double import CgroupDouble
from agent.cgroups.driver import CgroupPaths, Limits
from agent.cgroups.watch import MEMORY, OOM, PressureTrigger, WatchSpec
from agent.cgroups.watch_double import WatchDouble
from agent.events import EventLog
from agent.policy.library import PolicyLibrary
from agent.policy.merge import merge
from agent.policy.model import Policy
from agent.policy.service import PolicyService
from agent.policy.watches import Pace, Watches, near, source_of, watch_spec

MiB = 1024 * 1024


def effective(*thresholds: str, mode: str = "enforce"):
    doc = {"apiVersion": "corral/v1", "kind": "Policy", "metadata": {"name": "p"},
           "spec": {"mode": mode, "thresholds": [eval(t) for t in thresholds]}}  # noqa: S307 - test literals
    return merge([Policy.from_dict(doc)])


def test_memory_thresholds_in_bytes_and_percent_of_the_limit():
    policy = effective('{"signal": "memory_bytes", "above": "32Mi", "actions": ["kill"]}',
                       '{"signal": "memory_percent_of_limit", "above": 50, "actions": ["alert"]}')
    spec = watch_spec(policy, 128 * MiB, own=True)
    assert spec.memory_bytes == (32 * MiB, 64 * MiB)
    assert not spec.memory_high            # a kill rule may not be turned into a throttle
    assert watch_spec(policy, None, own=True).memory_bytes == (32 * MiB,)   # unlimited: no percentage


def test_memory_high_only_where_every_memory_rule_throttles_an_own_container():
    throttle = '{"signal": "memory_bytes", "above": "32Mi", "actions": ["throttle"]}'
    assert watch_spec(effective(throttle), None, own=True).memory_high
    assert not watch_spec(effective(throttle), None, own=False).memory_high       # observed
    assert not watch_spec(effective(throttle, mode="audit"), None, own=True).memory_high
    assert not watch_spec(effective('{"signal": "pids", "above": 5}'), None, own=True).memory_high


def test_oom_and_pressure_triggers():
    spec = watch_spec(effective('{"signal": "oom_kills", "above": 0}',
                                '{"signal": "memory_pressure_some_percent", "above": 10}',
                                '{"signal": "memory_pressure_some_percent", "above": 5}',
                                '{"signal": "cpu_pressure_some_percent", "above": 100}'), None, own=True)
    assert spec.oom
    assert spec.pressure == (PressureTrigger("cpu", "some", 2_000_000), PressureTrigger("memory", "some", 100_000))
    assert spec.pressure[1].line() == b"some 100000 2000000\0"
    assert watch_spec(effective('{"signal": "pids", "above": 5}'), None, own=True).is_empty()
    assert source_of("tcp_connects_per_second") is None and source_of("oom_kills") == OOM


def test_watches_arm_once_rearm_on_change_and_close_when_gone():
    double = WatchDouble()
    watches = Watches(double)
    paths = CgroupPaths("/cg/a", {"memory": "/mem/a"})
    spec = WatchSpec((10,), oom=True)
    assert watches.sync({"a": (paths, spec)}) == ["a"]
    assert watches.sync({"a": (paths, spec)}) == []          # unchanged: not re-armed
    assert double.arms == 1
    assert watches.sync({"a": (paths, WatchSpec((20,)))}) == ["a"]
    assert double.armed["a"].memory_bytes == (20,)
    watches.sync({})
    assert double.open_fds() == 0


def test_a_source_the_host_refuses_is_not_evented():
    double = WatchDouble(mode="v2")             # v2 without memory.high: memory is sampled
    double.refused.add(OOM)
    watches = Watches(double)
    policy = effective('{"signal": "memory_bytes", "above": "1Mi", "actions": ["kill"]}',
                       '{"signal": "oom_kills", "above": 0}')
    watches.sync({"a": (CgroupPaths("/cg/a"), watch_spec(policy, None, own=True))})
    assert not any(watches.evented("a", entry) for entry in policy.thresholds)
    assert MEMORY not in double.arm("b", CgroupPaths("/cg/b"), WatchSpec((1,))).sources


def test_near_and_pace():
    assert near(60, 100, 0.5) and not near(40, 100, 0.5)
    assert not near(None, 100, 0.5)
    assert not near(0, 0, 0.5) and near(1, 0, 0.5)          # a zero threshold: only a crossing
    pace = Pace(1.0, slow_factor=5)
    assert pace.settle(close=False) == 5.0
    assert pace.settle(close=True) == 1.0


# --- the service with a watch double --------------------------------------------------------------

POLICY = """apiVersion: corral/v1
kind: Policy
metadata: {name: mem}
spec:
  selector: {names: ["web-*"]}
  thresholds:
    - {name: big, signal: memory_bytes, above: ABOVE, actions: [alert, kill]}
"""


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def world(tmp_path):
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "mem.yaml").write_text(POLICY.replace("ABOVE", "10Mi"))
    driver, catalog, double = CgroupDouble(), ContainerCatalog(), WatchDouble()
    service = PolicyService(PolicyLibrary(str(folder), syscall_known=lambda name: True), catalog=catalog,
                            cgroups=driver, events=EventLog(tmp_path / "events.jsonl"),
                            registry=CollectorRegistry(), clock=Clock(), watch=double)
    service.reload()
    entry = CatalogEntry(id="w" * 12, name="web-1", image="busybox", cgroup=CgroupPaths("/fake/corral/web-1"),
                         cgroup_id=10, requested=Limits())
    catalog.put(entry)
    return service, folder, driver, catalog, double, entry


def test_a_fired_watch_evaluates_that_container_and_acts(world):
    service, folder, driver, catalog, double, entry = world
    driver.memory[entry.cgroup.unified] = 1 * MiB
    service.evaluate()                                    # the tick arms it
    assert double.armed[entry.id].memory_bytes == (10 * MiB,)
    driver.memory[entry.cgroup.unified] = 20 * MiB        # the kernel would now fire
    evaluation = service.evaluate_container(entry.id)
    assert evaluation is not None and [a.kind for a in evaluation.actions] == ["alert", "kill"]
    assert entry.cgroup.unified in driver.killed


def test_the_thread_wakes_on_the_watch_not_the_interval(world):
    service, folder, driver, catalog, double, entry = world
    service.interval = service.pace.interval = service.pace.current = 3600.0   # the tick never comes
    killed = threading.Event()
    original = driver.kill
    driver.kill = lambda paths: (original(paths), killed.set())   # type: ignore[method-assign]
    driver.memory[entry.cgroup.unified] = 1 * MiB
    service.start()
    try:
        service.on_container(ContainerStarted(entry))
        for _ in range(200):
            if entry.id in double.armed:
                break
            killed.wait(0.01)
        assert entry.id in double.armed
        driver.memory[entry.cgroup.unified] = 20 * MiB
        double.fire(entry.id)
        assert killed.wait(10), "a fired watch did not lead to the kill"
    finally:
        service.stop()
    assert double.closed


def test_reload_rearms_and_a_stopped_container_is_disarmed(world):
    service, folder, driver, catalog, double, entry = world
    service.evaluate()
    (folder / "mem.yaml").write_text(POLICY.replace("ABOVE", "50Mi"))
    service.reload()
    service._sync_watches()
    assert double.armed[entry.id].memory_bytes == (50 * MiB,)
    catalog.put(CatalogEntry(**{**entry.__dict__, "state": EXITED}))
    service._sync_watches()
    assert double.open_fds() == 0


def test_an_already_breaching_container_is_evaluated_when_armed(world):
    service, folder, driver, catalog, double, entry = world
    driver.memory[entry.cgroup.unified] = 20 * MiB      # above before any crossing could be seen
    assert service._sync_watches() == [entry.id]        # the loop evaluates what was newly armed
    service.evaluate_container(entry.id)
    assert entry.cgroup.unified in driver.killed
