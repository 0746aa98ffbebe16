"""Health checks, pure parts: the config (spec over image, docker's format), the state machine
with an injected clock, one check run against a real local process, the monitor against a
runtime double, the catalogue, the metric, the CLI flags and the policy signal."""
from __future__ import annotations

import json
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from agent.catalog.bus import ContainerBus, ContainerHealth, ContainerRemoved, ContainerStarted, ContainerStopped
from agent.catalog.catalog import ContainerCatalog
from agent.catalog.entry import CatalogEntry
from agent.cgroups.driver import CgroupPaths
from agent.cli import format as fmt
from agent.errors import InvalidArgument, NotFound
from agent.events import EventLog
from agent.health.metrics import HealthCollector
from agent.health.model import HealthCheck, HealthConfig, effective
from agent.health.monitor import HealthMonitor
from agent.health.probe import run_check
from agent.health.state import HEALTHY, NO_EXIT_CODE, STARTING, UNHEALTHY, CheckResult, HealthState
from agent.metrics.snapshot import ContainerSnapshot
from agent.policy.check import load_text
from agent.policy.signals import compute_signals
from agent.runtime.model import Container, ContainerSpec
from agent.runtime.service import ExecProcess
from tests.unit.cli_support import spec_of

CHECK = HealthCheck(command=["true"], interval=1.0, timeout=1.0, start_period=10.0, retries=3)


# The configuration

def test_the_spec_wins_field_by_field_over_the_image():
    image = HealthConfig.from_docker({"Test": ["CMD", "curl", "-f", "localhost"], "Interval": 5_000_000_000,
                                      "Retries": 5, "StartPeriod": 0}, "image")
    assert effective(None, image) == HealthCheck(["curl", "-f", "localhost"], 5.0, 30.0, 0.0, 5)
    spec = HealthConfig(test=["CMD-SHELL", "test -e /ok"], timeout=2.0)
    assert effective(spec, image) == HealthCheck(["/bin/sh", "-c", "test -e /ok"], 5.0, 2.0, 0.0, 5)
    assert effective(HealthConfig(interval=1.0), image).command == ["curl", "-f", "localhost"]
    assert effective(HealthConfig(test=["NONE"]), image) is None
    assert effective(None, None) is None and HealthConfig.from_docker({}, "image") is None


@pytest.mark.parametrize("test, message", [
    (["RUN", "x"], "must be CMD, CMD-SHELL or NONE"),
    (["CMD"], "CMD needs a command"),
    (["CMD-SHELL", "a", "b"], "CMD-SHELL takes one shell command"),
    (["CMD-SHELL", " "], "CMD-SHELL takes one shell command"),
])
def test_a_bad_test_is_refused(test, message):
    with pytest.raises(InvalidArgument, match=message):
        ContainerSpec.checked(image="busybox", healthcheck={"test": test})


def test_an_images_bad_healthcheck_names_the_field():
    with pytest.raises(InvalidArgument, match="Healthcheck.Interval must be nanoseconds"):
        HealthConfig.from_docker({"Test": ["CMD", "true"], "Interval": "5s"}, "image")
    with pytest.raises(InvalidArgument, match="Healthcheck must be an object"):
        HealthConfig.from_docker(["CMD"], "image")


# The state machine

def result(at: float, code: int) -> CheckResult:
    return CheckResult(at, at + 0.1, code, f"exit {code}")


def test_starting_then_healthy_then_unhealthy_after_retries_then_healthy():
    state = HealthState(started_at=100.0)
    assert state.status == STARTING
    assert state.record(result(101, 0), CHECK) == HEALTHY
    assert state.record(result(120, 1), CHECK) is None and state.failing_streak == 1
    assert state.record(result(121, 1), CHECK) is None
    assert state.record(result(122, 1), CHECK) == UNHEALTHY and state.failing_streak == 3
    assert state.record(result(123, 1), CHECK) is None and state.failing_streak == 4
    assert state.record(result(124, 0), CHECK) == HEALTHY and state.failing_streak == 0
    assert [r.start for r in state.log] == [120, 121, 122, 123, 124]        # the last five


def test_failures_in_the_start_period_do_not_count_until_healthy():
    state = HealthState(started_at=100.0)
    for at in (101, 102, 103, 104):
        assert state.record(result(at, 1), CHECK) is None
    assert state.status == STARTING and state.failing_streak == 0 and len(state.log) == 4
    assert state.record(result(111, 1), CHECK) is None and state.failing_streak == 1   # the period is over
    healthy = HealthState(started_at=100.0)
    healthy.record(result(101, 0), CHECK)
    for at in (102, 103, 104):
        healthy.record(result(at, 1), CHECK)
    assert healthy.status == UNHEALTHY        # once healthy, the start period no longer shields


def test_state_round_trips_and_shows_as_docker_does():
    state = HealthState(started_at=1714564799.0)            # one second before: in the start period
    state.record(CheckResult(1714564800.0, 1714564800.5, NO_EXIT_CODE, "Health check exceeded timeout (1s)"), CHECK)
    assert HealthState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
    assert state.to_docker() == {"Status": STARTING, "FailingStreak": 0, "Log": [{
        "Start": "2024-05-01T12:00:00Z", "End": "2024-05-01T12:00:00.500000Z", "ExitCode": -1,
        "Output": "Health check exceeded timeout (1s)"}]}
    with pytest.raises(ValueError, match="unknown health status"):
        HealthState.from_dict({**state.to_dict(), "status": "sick"})


# One check, against a real local process standing in for the launcher's exec

def local(*argv: str) -> ExecProcess:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)

    class Local(ExecProcess):
        def wait(self) -> int:
            code = proc.wait()
            return 128 - code if code < 0 else code
    return Local(pid=proc.pid, stdout=proc.stdout, stderr=proc.stderr)


def test_a_check_gives_its_exit_code_and_output_cut_to_4096_bytes():
    done = run_check(lambda: local("sh", "-c", "echo out; echo err >&2; exit 3"), 10.0)
    assert done.exit_code == 3 and sorted(done.output.split()) == ["err", "out"]
    long = run_check(lambda: local("sh", "-c", "head -c 100000 /dev/zero | tr '\\0' x"), 10.0)
    assert long.exit_code == 0 and long.output == "x" * 4096


def test_a_check_past_its_timeout_is_killed_with_its_children(tmp_path):
    pids = tmp_path / "pids"
    slow = run_check(lambda: local("sh", "-c", f"sleep 30 & echo $! > {pids}; sleep 31 & echo $! >> {pids}; wait"),
                     0.5)
    assert slow.exit_code == NO_EXIT_CODE and slow.output == "Health check exceeded timeout (0.5s)"

    def alive(pid: str) -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
        except (OSError, IndexError):
            return False
    wait_for(lambda: not any(alive(pid) for pid in pids.read_text().split()))


def test_a_check_that_cannot_start_is_a_failure_saying_why():
    def broken() -> ExecProcess:
        raise NotFound("container web is not running")
    failed = run_check(broken, 1.0, clock=lambda: 5.0)
    assert failed == CheckResult(5.0, 5.0, NO_EXIT_CODE, "cannot run the health check: container web is not running")


# The monitor, with a runtime double and a real bus, catalogue and event log

@dataclass
class Image:
    config: object


@dataclass
class ImageConfigDouble:
    healthcheck: dict = field(default_factory=dict)


class Images:
    def __init__(self, healthcheck: dict) -> None:
        self.healthcheck = healthcheck

    def get(self, ref: str) -> Image:
        return Image(ImageConfigDouble(self.healthcheck))


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root

    def directory(self, container_id: str) -> Path:
        path = self.root / container_id
        path.mkdir(exist_ok=True)
        return path


class RuntimeDouble:
    """What the monitor uses of the Runtime; each exec answers with the next exit code."""

    def __init__(self, root: Path, containers: dict[str, Container], codes: list[int], image: dict) -> None:
        self.store = Store(root)
        self.images = Images(image)
        self.containers = containers
        self.codes = codes
        self.execs: list[tuple[str, list[str], bool]] = []
        self.ran = threading.Event()

    def get(self, ref: str) -> Container:
        return self.containers[ref]

    def exec(self, ref: str, command: list[str], *, announce: bool = True) -> ExecProcess:
        self.execs.append((ref, command, announce))
        code = self.codes.pop(0) if self.codes else 0
        process = local("sh", "-c", f"echo check {code}; exit {code}")
        self.ran.set()
        return process


def entry(container_id: str, **changes) -> CatalogEntry:
    return CatalogEntry(id=container_id, name=f"name-{container_id}", image="busybox",
                        cgroup=CgroupPaths(""), cgroup_id=7, **changes)


def container(container_id: str, healthcheck: dict | None = None) -> Container:
    spec = ContainerSpec.checked(image="busybox", healthcheck=healthcheck)
    return Container(id=container_id, name=f"name-{container_id}", spec=spec, image_id="sha256:" + "0" * 64,
                     created_at=1.0, started_at=50.0)


@pytest.fixture
def parts(tmp_path):
    bus = ContainerBus()
    catalog = ContainerCatalog()
    bus.subscribe("catalogue", catalog.apply)
    events = EventLog(tmp_path / "events.jsonl")
    return bus, catalog, events


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_the_monitor_checks_publishes_changes_and_stops(tmp_path, parts):
    bus, catalog, events = parts
    containers = {"c1": container("c1", {"test": ["CMD", "probe"], "interval": 0.05, "retries": 2}),
                  "c2": container("c2")}
    runtime = RuntimeDouble(tmp_path, containers, [0, 1, 1, 0], {})
    monitor = HealthMonitor(runtime, events, bus, clock=time.time)
    seen: list[tuple[str, str]] = []
    bus.subscribe("health", monitor.on_container)
    bus.subscribe("test", lambda e: seen.append((e.status, e.previous)) if isinstance(e, ContainerHealth) else None)
    try:
        for container_id in ("c1", "c2"):
            bus.publish(ContainerStarted(entry(container_id)))
        assert catalog.get("c1").health == STARTING and catalog.get("c2").health == ""
        assert monitor.status("c2") is None and monitor.describe("c2") is None
        wait_for(lambda: len(seen) >= 4)
        assert seen[:4] == [(STARTING, ""), (HEALTHY, STARTING), (UNHEALTHY, HEALTHY), (HEALTHY, UNHEALTHY)]
        assert runtime.execs[0] == ("c1", ["probe"], False)         # not an announced exec
        logged = [e.attributes["status"] for e in events.since() if e.action == "health_status"]
        assert logged[:3] == [HEALTHY, UNHEALTHY, HEALTHY]
        assert monitor.describe("c1")["Status"] in (HEALTHY, UNHEALTHY)
        saved = json.loads((tmp_path / "c1" / "health.json").read_text())
        assert saved["started_at"] == 50.0
        bus.publish(ContainerStopped(entry("c1", state="exited")))
        assert monitor.status("c1") is None
        assert monitor.describe("c1")["Log"]                       # an exited container keeps its last results
        count = len(runtime.execs)
        time.sleep(0.3)
        assert len(runtime.execs) <= count + 1                       # a check under way may finish
        # Started again after a daemon restart (same start time): the saved state comes back.
        runtime.codes[:] = [1] * 100
        bus.publish(ContainerStarted(entry("c1")))
        assert monitor.status("c1") == saved["status"]
        bus.publish(ContainerRemoved(entry("c1")))
        assert monitor.status("c1") is None
    finally:
        monitor.close()


def test_the_image_check_applies_and_observed_containers_are_left_alone(tmp_path, parts):
    bus, catalog, events = parts
    runtime = RuntimeDouble(tmp_path, {"c1": container("c1")}, [], {"Test": ["CMD", "true"], "Interval": 10**9})
    monitor = HealthMonitor(runtime, events, bus)
    try:
        monitor.on_container(ContainerStarted(entry("c1")))
        assert monitor.status("c1") == STARTING
        monitor.on_container(ContainerStarted(entry("x", origin="observed")))
        assert monitor.status("x") is None
    finally:
        monitor.close()
    broken = RuntimeDouble(tmp_path, {"c1": container("c1")}, [], {"Test": ["RUN"]})
    monitor = HealthMonitor(broken, events, bus)
    monitor.on_container(ContainerStarted(entry("c1")))       # a bad image check is ignored, logged
    assert monitor.status("c1") is None


def test_the_catalogue_keeps_health_of_running_entries_only():
    catalog = ContainerCatalog()
    catalog.put(entry("c1"))
    catalog.apply(ContainerHealth(entry("c1"), UNHEALTHY, HEALTHY, 3))
    assert catalog.get("c1").health == UNHEALTHY and catalog.get("name-c1").health == UNHEALTHY
    assert catalog.by_cgroup_id(7).health == UNHEALTHY
    catalog.put(entry("c1", state="exited"))
    catalog.apply(ContainerHealth(entry("c1"), HEALTHY, UNHEALTHY))
    assert catalog.get("c1").health == ""                   # a late result does not revive it
    catalog.apply(ContainerHealth(entry("gone"), HEALTHY, ""))
    assert catalog.by_id("gone") is None


def test_the_metric_has_one_series_per_status():
    registry = CollectorRegistry()
    registry.register(HealthCollector(lambda: [entry("c1", health=UNHEALTHY), entry("c2"),
                                               entry("c3", health=HEALTHY, state="exited")]))
    value = registry.get_sample_value
    assert value("corral_container_health", {"name": "name-c1", "status": "unhealthy"}) == 1
    assert value("corral_container_health", {"name": "name-c1", "status": "healthy"}) == 0
    assert value("corral_container_health", {"name": "name-c1", "status": "starting"}) == 0
    assert value("corral_container_health", {"name": "name-c2", "status": "healthy"}) is None
    assert value("corral_container_health", {"name": "name-c3", "status": "healthy"}) is None


# The CLI and the policies

def test_health_flags_reach_the_spec():
    spec = spec_of("--health-cmd", "curl -f localhost", "--health-interval", "10s", "--health-timeout", "500ms",
                   "--health-start-period", "1m", "--health-retries", "5", "busybox")
    assert spec.healthcheck == HealthConfig(["CMD-SHELL", "curl -f localhost"], 10.0, 0.5, 60.0, 5)
    assert spec_of("--health-interval", "5s", "busybox").healthcheck == HealthConfig(interval=5.0)
    assert spec_of("--no-healthcheck", "busybox").healthcheck == HealthConfig(test=["NONE"])
    assert spec_of("busybox").healthcheck is None
    with pytest.raises(InvalidArgument, match="--no-healthcheck conflicts with --health-retries"):
        spec_of("--no-healthcheck", "--health-retries", "2", "busybox")


def test_ps_shows_the_health_as_docker_does():
    now = 1000.0
    running = {"state": "running", "started_at": now - 120}
    assert fmt.container_status({**running, "health": "healthy"}, now) == "Up 2 minutes (healthy)"
    assert fmt.container_status({**running, "health": "starting"}, now) == "Up 2 minutes (health: starting)"
    assert fmt.container_status({**running, "health": None}, now) == "Up 2 minutes"


def test_the_unhealthy_signal():
    base = ContainerSnapshot(id="c", name="n", image="i", time=1.0)
    assert compute_signals(None, base).values["unhealthy"] is None
    sick = ContainerSnapshot(id="c", name="n", image="i", time=2.0, unhealthy=1)
    assert compute_signals(base, sick).values["unhealthy"] == 1.0
    policy = """apiVersion: corral/v1
kind: Policy
metadata: {name: web}
spec:
  thresholds:
    - {signal: unhealthy, above: %s, actions: [alert, kill]}
"""
    assert load_text(policy % "0", "p.yaml").problems == ()
    problems = load_text(policy % "1", "p.yaml").problems
    assert [p.message for p in problems] == ["unhealthy is 1 while it holds and 0 otherwise: use above: 0, got 1"]
