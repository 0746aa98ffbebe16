"""Restart policies as pure logic: docker's back-off and decisions, driven by bus events with an
injected timer (nothing waits)."""
from __future__ import annotations

import pytest

from agent.catalog.bus import ContainerBus, ContainerStarted, ContainerStopped
from agent.catalog.entry import OBSERVED, CatalogEntry
from agent.cgroups.driver import CgroupPaths
from agent.errors import Conflict, InvalidArgument, NotFound
from agent.events import EventLog
from agent.runtime.model import EXITED, RUNNING, Container, ContainerSpec, RestartPolicy
from agent.runtime.restarts import FIRST_DELAY, MAX_DELAY, Backoff, RestartPolicies, should_restart


def test_backoff_doubles_from_100ms_up_to_a_minute():
    backoff = Backoff()
    delays = [backoff.next(ran_for=0.5) for _ in range(12)]
    assert delays[:5] == [0.1, 0.2, 0.4, 0.8, 1.6]
    assert delays[-1] == MAX_DELAY and max(delays) == MAX_DELAY


def test_backoff_starts_over_after_a_run_of_ten_seconds():
    backoff = Backoff()
    for _ in range(4):
        backoff.next(ran_for=1)
    assert backoff.next(ran_for=9.9) == 1.6
    assert backoff.next(ran_for=10) == FIRST_DELAY
    assert backoff.next(ran_for=0) == 0.2


@pytest.mark.parametrize("policy, code, user, count, at_start, expected", [
    ("no", 1, False, 0, False, False),
    ("always", 0, False, 5, False, True),
    ("always", 0, True, 0, False, False),           # a user's stop holds it while the daemon runs
    ("always", 0, True, 0, True, True),             # ... not across the daemon's start (docker)
    ("unless-stopped", 0, False, 0, False, True),
    ("unless-stopped", 0, True, 0, True, False),
    ("on-failure", 0, False, 0, False, False),
    ("on-failure", 1, False, 100, False, True),     # no count: no limit
    ("on-failure:3", 1, False, 2, False, True),
    ("on-failure:3", 1, False, 3, False, False),
    ("on-failure:3", 1, True, 0, False, False),
])
def test_should_restart(policy, code, user, count, at_start, expected):
    assert should_restart(RestartPolicy.parse(policy), code, stopped_by_user=user, restart_count=count,
                          at_daemon_start=at_start) is expected


@pytest.mark.parametrize("text", ["sometimes", "always:2", "on-failure:", "on-failure:x", "no:1"])
def test_bad_policies_name_the_flag(text):
    with pytest.raises(InvalidArgument, match="--restart"):
        RestartPolicy.parse(text)


def test_a_retry_count_belongs_to_on_failure_only():
    with pytest.raises(InvalidArgument, match="maximum_retry_count"):
        ContainerSpec.from_dict({"image": "busybox", "restart_policy": {"name": "always", "maximum_retry_count": 2}})
    with pytest.raises(InvalidArgument, match="conflicting options"):
        ContainerSpec.from_dict({"image": "busybox", "auto_remove": True, "restart_policy": {"name": "always"}})
    assert str(RestartPolicy.parse("on-failure:4")) == "on-failure:4"


class FakeTimer:
    def __init__(self) -> None:
        self.scheduled: list[list] = []     # [delay, action, cancelled]

    def __call__(self, delay, action):
        item = [delay, action, False]
        self.scheduled.append(item)
        return lambda: item.__setitem__(2, True)

    def fire(self) -> float:
        delay, action, cancelled = self.scheduled.pop(0)
        if not cancelled:
            action()
        return delay


class Restarter:
    """The runtime as the policies see it: records, and a start that runs for `ran_for` then exits."""

    def __init__(self, bus: ContainerBus) -> None:
        self.bus = bus
        self.containers: dict[str, Container] = {}
        self.fail_start = False

    def add(self, name: str, policy: str, code: int = 1, **fields) -> Container:
        spec = ContainerSpec.checked(image="busybox", restart_policy=RestartPolicy.parse(policy))
        container = Container(id=name * 8, name=name, spec=spec, image_id="sha256:x", created_at=0.0,
                              state=EXITED, exit_code=code, started_at=100.0, finished_at=101.0, **fields)
        self.containers[container.id] = container
        return container

    def get(self, ref: str) -> Container:
        if ref not in self.containers:
            raise NotFound(f"no such container: {ref}")
        return self.containers[ref]

    def start_container(self, container_id: str, *, by_policy: bool = False) -> Container:
        container = self.get(container_id)
        if self.fail_start:
            raise Conflict("no")
        container.state, container.restart_count = RUNNING, container.restart_count + by_policy
        return container

    def exit(self, container: Container, code: int = 1, ran_for: float = 1.0) -> None:
        container.state, container.exit_code = EXITED, code
        container.finished_at = (container.started_at or 0) + ran_for
        self.bus.publish(ContainerStopped(entry(container)))


def entry(container: Container, **changes) -> CatalogEntry:
    return CatalogEntry(id=container.id, name=container.name, image="busybox", cgroup=CgroupPaths("/x"),
                        cgroup_id=7, state=container.state, **changes)


@pytest.fixture
def world(tmp_path):
    bus = ContainerBus()
    runtime = Restarter(bus)
    timer = FakeTimer()
    policies = RestartPolicies(runtime, EventLog(tmp_path / "events.jsonl"), schedule=timer, clock=lambda: 200.0)
    bus.subscribe("restarts", policies.on_container)
    policies.start()
    return runtime, timer, policies


def test_on_failure_restarts_with_a_doubling_delay_and_stops_at_its_count(world):
    runtime, timer, policies = world
    container = runtime.add("a", "on-failure:3")
    runtime.exit(container)
    delays = []
    while timer.scheduled:
        assert policies.pending() == [container.id]
        delays.append(timer.fire())
        if container.state == RUNNING:
            runtime.exit(container)
    assert delays == [0.1, 0.2, 0.4]
    assert container.restart_count == 3 and container.state == EXITED and policies.pending() == []


def test_a_stop_during_the_backoff_cancels_the_restart(world):
    runtime, timer, _ = world
    container = runtime.add("b", "always")
    runtime.exit(container, code=0)
    container.stopped_by_user = True           # `corral stop` while it waits
    timer.fire()
    assert container.state == EXITED and container.restart_count == 0


def test_removed_observed_running_and_aborted_containers_are_left_alone(world):
    runtime, timer, policies = world
    container = runtime.add("c", "always")
    runtime.bus.publish(ContainerStopped(entry(container, origin=OBSERVED)))
    runtime.bus.publish(ContainerStopped(entry(container), aborted=True))
    runtime.bus.publish(ContainerStarted(entry(container)))
    assert timer.scheduled == []
    runtime.exit(container)
    del runtime.containers[container.id]        # removed during the back-off
    timer.fire()
    assert policies.pending() == []


def test_a_failed_restart_is_logged_and_not_retried(world, tmp_path):
    runtime, timer, policies = world
    container = runtime.add("d", "always")
    runtime.fail_start = True
    runtime.exit(container)
    timer.fire()
    assert timer.scheduled == [] and container.state == EXITED
    assert [e.action for e in policies._events.since(0)] == ["restart_failed"]


def test_exits_while_the_daemon_starts_are_weighed_once_it_is_up(tmp_path):
    bus = ContainerBus()
    runtime = Restarter(bus)
    timer = FakeTimer()
    policies = RestartPolicies(runtime, EventLog(tmp_path / "events.jsonl"), schedule=timer)
    bus.subscribe("restarts", policies.on_container)
    always = runtime.add("e", "always", stopped_by_user=True)
    unless = runtime.add("f", "unless-stopped", stopped_by_user=True)
    for container in (always, unless, always):         # the reconciler may publish one twice
        bus.publish(ContainerStopped(entry(container)))
    assert timer.scheduled == []
    policies.start()
    assert len(timer.scheduled) == 1
    timer.fire()
    assert always.state == RUNNING and unless.state == EXITED


def test_close_cancels_what_is_pending(world):
    runtime, timer, policies = world
    container = runtime.add("g", "always")
    runtime.exit(container)
    policies.close()
    timer.fire()
    runtime.exit(container)                   # after close: held, never acted on
    assert container.restart_count == 0 and timer.scheduled == []
