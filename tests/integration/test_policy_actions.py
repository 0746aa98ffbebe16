"""Policy actions for real: a cgroup made by the host's driver, a busy process in it, and the
executor throttling, restoring, freezing, thawing and killing it; a seccomp filter built from
deny rules installed by the C launcher makes a denied syscall fail with EPERM.

Every cgroup lives under a `corral-test-<random>` parent this module creates and removes.
"""
from __future__ import annotations

import os
import secrets
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from agent.cgroups.detect import detect_driver
from agent.cgroups.driver import Limits
from agent.policy.actions import ActionExecutor
from agent.policy.engine import ContainerRef, Engine
from agent.policy.merge import merge
from agent.policy.model import Policy
from agent.policy.seccomp import export_filter
from agent.policy.signals import SignalSample

try:
    from .launcher_support import Launcher, build_launcher, build_rootfs, wait_until
except ImportError:  # tests/integration is not a package
    from launcher_support import Launcher, build_launcher, build_rootfs, wait_until

pytestmark = pytest.mark.privileged

REPO = Path(__file__).resolve().parents[2]
INSTALLED_LAUNCHER = REPO / ".venv" / "bin" / "corral-launch"
BUSY = ["sh", "-c", "while :; do :; done"]


@pytest.fixture
def driver():
    instance = detect_driver(parent=f"corral-test-{secrets.token_hex(4)}")
    yield instance
    for name in instance.list_names() if hasattr(instance, "list_names") else []:
        instance.remove(instance.paths_for(name))
    if hasattr(instance, "remove_parent"):
        instance.remove_parent()


@pytest.fixture
def busy(driver):
    """A cgroup with a 0.5 CPU quota and a busy loop in it: (paths, process)."""
    paths = driver.create("c1", Limits(cpu_quota_us=50_000, cpu_period_us=100_000))
    process = subprocess.Popen(BUSY)
    try:
        driver.add_process(paths, process.pid)
        yield paths, process
    finally:
        try:
            driver.kill(paths)
        finally:
            process.kill()
            process.wait(timeout=10)
            driver.remove(paths)


def cpu_seconds(driver, paths) -> float:
    return driver.stats(paths).cpu_usage_seconds


def guard(actions: list[str]) -> Policy:
    return Policy.from_dict({"apiVersion": "corral/v1", "kind": "Policy", "metadata": {"name": "guard"},
                             "spec": {"thresholds": [{"name": "cpu", "signal": "cpu_percent", "above": 10,
                                                      "for": "2s", "actions": actions}]}})


def test_throttle_halves_the_quota_and_restore_puts_it_back(driver, busy):
    paths, _ = busy
    executor = ActionExecutor(driver)
    engine, effective, web = Engine(), merge([guard(["alert", "throttle"])]), ContainerRef("c1", "web-1")
    # Held for 2 s (by the timestamps we pass in, not by sleeping), then cleared.
    steps = [engine.evaluate(web, effective, SignalSample(t, {"cpu_percent": 50.0})) for t in (0.0, 1.0, 2.0)]
    results = executor.run(steps[-1], lambda _: paths)
    assert [(r.action, str(r)) for r in results] == [("alert", "ok"), ("throttle", "ok")]
    assert driver.read_limits(paths).cpu_quota_us == 25_000
    if "cpu" in paths.controllers:     # what the kernel shows, read directly
        assert Path(paths.controllers["cpu"], "cpu.cfs_quota_us").read_text().strip() == "25000"
    cleared = engine.evaluate(web, effective, SignalSample(3.0, {"cpu_percent": 1.0}))
    assert [(r.action, str(r)) for r in executor.run(cleared, lambda _: paths)] == [
        ("restore", "ok"), ("resolve_alert", "ok")]
    assert driver.read_limits(paths).cpu_quota_us == 50_000


def test_freeze_stops_progress_and_thaw_resumes_it(driver, busy):
    paths, process = busy
    executor = ActionExecutor(driver)
    wait_until(lambda: cpu_seconds(driver, paths) > 0.05, "the busy loop to use some CPU")
    engine, effective, web = Engine(), merge([guard(["freeze"])]), ContainerRef("c1", "web-1")
    for t in (0.0, 1.0, 2.0):
        evaluation = engine.evaluate(web, effective, SignalSample(t, {"cpu_percent": 90.0}))
    assert [str(r) for r in executor.run(evaluation, lambda _: paths)] == ["ok"]
    assert driver.stats(paths).frozen is True
    frozen_at = cpu_seconds(driver, paths)
    time.sleep(0.3)     # a running loop would use ~0.15 s of CPU in this time
    assert cpu_seconds(driver, paths) - frozen_at < 0.01
    assert process.poll() is None
    # `corral unfreeze`: the daemon thaws and tells the engine.
    assert str(executor.execute(_action("thaw"), paths)) == "ok"
    engine.released(web, 3.0)
    wait_until(lambda: cpu_seconds(driver, paths) - frozen_at > 0.05, "the loop to run again")
    assert driver.stats(paths).frozen is False


def test_kill_kills(driver, busy):
    paths, process = busy
    executor = ActionExecutor(driver)
    at_once = Policy.from_dict({"apiVersion": "corral/v1", "kind": "Policy", "metadata": {"name": "guard"},
                                "spec": {"thresholds": [{"signal": "cpu_percent", "above": 10, "actions": ["kill"]}]}})
    evaluation = Engine().evaluate(ContainerRef("c1", "web-1"), merge([at_once]),
                                   SignalSample(0.0, {"cpu_percent": 90.0}))
    assert [str(r) for r in executor.run(evaluation, lambda _: paths)] == ["ok"]
    assert process.wait(timeout=10) == -9
    wait_until(lambda: driver.pids(paths) == [], "the cgroup to empty")


def _action(kind: str):
    from agent.policy.engine import Action, Resolution
    record = Resolution("c1", "web-1", "guard", "cpu", "cpu_percent", None, 0.0, 0.0, "unfrozen", (kind,))
    return Action(kind, "c1", "web-1", "guard", "cpu", record)


# --- seccomp through the launcher -----------------------------------------------------------

@pytest.fixture(scope="module")
def built(tmp_path_factory):
    base = tmp_path_factory.mktemp("policy-launcher")
    binary = INSTALLED_LAUNCHER if os.access(INSTALLED_LAUNCHER, os.X_OK) else build_launcher(base)
    return binary, build_rootfs(base / "rootfs")


@pytest.fixture
def launcher(built, tmp_path):
    binary, rootfs = built
    runner = Launcher(binary=binary, rootfs=rootfs, tmp=tmp_path)
    yield runner
    runner.cleanup()


def test_a_denied_syscall_returns_eperm_in_the_container(launcher, tmp_path):
    policy = Policy.from_dict({"apiVersion": "corral/v1", "kind": "Policy", "metadata": {"name": "no-mkdir"},
                               "spec": {"syscalls": [{"names": ["mkdir", "mkdirat"], "action": "deny"}]}})
    denied = merge([policy]).seccomp_denied()
    path = export_filter(denied, str(tmp_path / "filter.bpf"))
    shim = launcher.run("--seccomp", path, command=["sh", "-c", "mkdir /tmp/x; echo rc=$?"])
    assert shim.exit_code() == 0
    assert "Operation not permitted" in shim.stderr()
    assert shim.stdout() == "rc=1\n"
    # The same command without the filter works: the EPERM came from the policy.
    plain = launcher.run(command=["sh", "-c", "mkdir /tmp/y && echo made"])
    assert plain.exit_code() == 0 and plain.stdout() == "made\n"


def test_the_default_policy_does_not_break_an_ordinary_container(launcher, tmp_path):
    documents = list(yaml.safe_load_all((REPO / "policies" / "default.yaml").read_text()))
    denied = merge([Policy.from_dict(d) for d in documents if d]).seccomp_denied()
    assert "kexec_load" in denied and "bpf" in denied
    path = export_filter(denied, str(tmp_path / "default.bpf"))
    script = ("echo hello; mkdir -p /tmp/a/b && echo x > /tmp/a/b/f && cat /tmp/a/b/f; "
              "ls / >/dev/null; ps >/dev/null; sleep 0.05 & wait; date >/dev/null; id -u; "
              "wc -c /proc/self/status >/dev/null && echo done")
    shim = launcher.run("--seccomp", path, command=["sh", "-c", script])
    assert shim.exit_code() == 0, shim.stderr()
    assert shim.stdout() == "hello\nx\n0\ndone\n"
