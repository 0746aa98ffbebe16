"""Event-driven thresholds on a real host: the kernel tells the daemon of a memory threshold
crossed (v1 `cgroup.event_control` here; pressure triggers in the unified tree), so a kill or
freeze happens with `--policy-interval 30` long before the first periodic evaluation could have
seen it (each test's daemon is new, and every wait is bounded below those 30 s). The watches'
fds are armed while the container runs and closed when it is removed; a policy reload re-arms
at the new value."""
from __future__ import annotations

import json
import os
import time

import pytest

from tests.integration.corral_daemon import running_daemon, until

pytestmark = pytest.mark.privileged

INTERVAL = "30"
BEFORE_TICK = 25.0      # seconds: a bound below the first periodic evaluation

POLICY = """\
apiVersion: corral/v1
kind: Policy
metadata: {name: mem-kill}
spec:
  selector: {names: ["mem-kill-*"]}
  thresholds:
    - {name: big, signal: memory_bytes, above: ABOVE, actions: [alert, kill]}
    - {name: squeezed, signal: memory_pressure_some_percent, above: 90, for: 10s, actions: [alert]}
---
apiVersion: corral/v1
kind: Policy
metadata: {name: mem-freeze}
spec:
  selector: {names: ["mem-freeze-*"]}
  thresholds:
    - {name: big, signal: memory_bytes, above: 32Mi, actions: [alert, freeze]}
"""
# 64 MiB of page cache written to the container's own /tmp: charged to its memory cgroup.
FILL = "dd if=/dev/zero of=/tmp/fill bs=1M count=64 2>/dev/null; sleep 600"


def watch_fds(pid: int) -> list[str]:
    """The daemon's eventfds and PSI trigger fds (what the kernel watch holds, plus the
    watch's own wake-up eventfd and any other eventfd the daemon keeps)."""
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target == "anon_inode:[eventfd]" or target.endswith(".pressure"):
            found.append(target)
    return sorted(found)


def policy_events(daemon, cid: str, action: str) -> list[dict]:
    events = [json.loads(line) for line in daemon.out("events", "--format", "json").splitlines()]
    return [e for e in events if e["type"] == "policy" and e["action"] == action and e["id"] == cid]


@pytest.fixture
def daemon(tmp_path):
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "mem.yaml").write_text(POLICY.replace("ABOVE", "32Mi"))
    with running_daemon("--policies", str(folder), "--policy-interval", INTERVAL) as running:
        running.policies = folder
        running.started = time.monotonic()
        yield running


def state(daemon, cid: str) -> dict:
    return daemon.inspect(cid)["State"]


def test_a_container_past_its_memory_threshold_is_killed_by_the_event(daemon):
    cid = daemon.out("run", "-d", "--name", "mem-kill-1", "busybox", "sh", "-c", f"sleep 1; {FILL}")
    until(lambda: not state(daemon, cid)["Running"], "the container killed at its memory threshold",
          timeout=BEFORE_TICK - (time.monotonic() - daemon.started))
    violation = until(lambda: policy_events(daemon, cid, "violation"), "the violation recorded", timeout=5)[0]
    assert violation["attributes"]["rule"] == "big"
    assert violation["attributes"]["value"] > 32 * 1024 * 1024


def test_a_container_past_its_memory_threshold_is_frozen_by_the_event(daemon):
    cid = daemon.out("run", "-d", "--name", "mem-freeze-1", "busybox", "sh", "-c", f"sleep 1; {FILL}")
    events = os.path.join(daemon.inspect(cid)["Cgroup"]["Paths"]["unified"], "cgroup.events")

    def frozen() -> bool:
        with open(events) as handle:
            return "frozen 1" in handle.read()
    until(frozen, "the container frozen at its memory threshold",
          timeout=BEFORE_TICK - (time.monotonic() - daemon.started))
    assert state(daemon, cid)["Running"]
    daemon.out("unfreeze", cid)
    until(lambda: not frozen(), "the container thawed by policy unfreeze", timeout=10)


def test_watch_fds_are_armed_while_running_and_closed_after_rm(daemon):
    pid = daemon.process.pid
    before = watch_fds(pid)
    cid = daemon.out("run", "-d", "--name", "mem-kill-2", "busybox", "sleep", "600")
    # Armed one fd at a time: wait for both (the first change alone may be the eventfd only).
    def armed() -> bool:
        fds = watch_fds(pid)
        return (any(f.endswith("memory.pressure") for f in fds)           # the PSI trigger
                and fds.count("anon_inode:[eventfd]") > before.count("anon_inode:[eventfd]"))   # the usage threshold
    until(armed, "the container's watches armed: the PSI trigger and the usage threshold's eventfd", timeout=10)
    daemon.out("rm", "-f", cid)
    until(lambda: watch_fds(pid) == before, "the watches' fds closed after rm", timeout=10)


def reloads(daemon) -> int:
    return len([e for e in map(json.loads, daemon.out("events", "--format", "json").splitlines())
                if e["type"] == "policy" and e["action"] == "reload"])


def edit_policy(daemon, above: str) -> None:
    """Rewrite the folder's policy and wait for the daemon to load it (the folder is checked
    every second, whatever the evaluation interval)."""
    count = reloads(daemon)
    (daemon.policies / "mem.yaml").write_text(POLICY.replace("ABOVE", above))
    until(lambda: reloads(daemon) > count, f"the policy with {above} reloaded", timeout=10)


def test_a_reload_rearms_at_the_new_threshold(daemon, tmp_path):
    edit_policy(daemon, "512Mi")
    trigger = tmp_path / "trigger"
    trigger.mkdir()
    cid = daemon.out("run", "-d", "--name", "mem-kill-3", "-v", f"{trigger}:/trigger", "busybox", "sh", "-c",
                     f"until [ -e /trigger/go ]; do sleep 0.1; done; {FILL}")
    edit_policy(daemon, "32Mi")
    (trigger / "go").touch()
    until(lambda: not state(daemon, cid)["Running"], "the container killed at the reloaded threshold",
          timeout=BEFORE_TICK - (time.monotonic() - daemon.started))
    assert policy_events(daemon, cid, "violation")[0]["attributes"]["value"] > 32 * 1024 * 1024
