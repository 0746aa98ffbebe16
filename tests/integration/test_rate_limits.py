"""Rate thresholds checked in the kernel (probes/rates.c): a syscall storm crosses the limit the
policy wrote into the container's rate_limits row, the probes send one event, and the daemon
acts on it at once, with `--policy-interval 30` (each test's daemon is new, and every wait is
bounded below the first periodic evaluation, so the sampled path cannot be what acted; the
violation also says `trigger: kernel`). A container under the limit is left alone, and a hot
reload that raises the limit rewrites the row: the same storm then does nothing. Two thresholds
on one signal are two levels of the row: each fires its own rule, with its own actions, from its
own crossing.

The first test drives the probes alone: the row as the kernel holds it, one event per storm."""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.corral_daemon import running_daemon, until
from tests.integration.test_policy_events import policy_events, reloads

pytestmark = pytest.mark.privileged

REPO = Path(__file__).resolve().parents[2]
INTERVAL = "30"
BEFORE_TICK = 25.0      # seconds: a bound below the first periodic evaluation
LIMIT = 20000           # syscalls per second
HIGH = 200000           # a second level: the storm is far above it, the light storm never reaches it
POLICY = """\
apiVersion: corral/v1
kind: Policy
metadata: {name: storm-kill}
spec:
  selector: {names: ["storm-kill-*"]}
  thresholds:
    - {name: storm, signal: syscalls_per_second, above: ABOVE, actions: [alert, kill]}
---
apiVersion: corral/v1
kind: Policy
metadata: {name: storm-alert}
spec:
  selector: {names: ["storm-alert-*"]}
  thresholds:
    - {name: noisy, signal: syscalls_per_second, above: ABOVE, actions: [alert]}
---
apiVersion: corral/v1
kind: Policy
metadata: {name: storm-levels}
spec:
  selector: {names: ["storm-levels-*"]}
  thresholds:
    - {name: busy, signal: syscalls_per_second, above: ABOVE, actions: [alert]}
    - {name: runaway, signal: syscalls_per_second, above: HIGH, actions: [kill]}
    - {name: ppid, signal: syscalls_per_second, syscall: getppid, above: 1000000, actions: [alert]}
"""
# Two syscalls per byte: far above LIMIT per second, for a few seconds; then a mark.
STORM = "dd if=/dev/zero of=/dev/null bs=1 count=4000000 2>/dev/null"
# ~80000 calls in all: whatever the windows, one holds more than LIMIT, none more than HIGH.
LIGHT_STORM = "dd if=/dev/zero of=/dev/null bs=1 count=40000 2>/dev/null"


@pytest.fixture
def unified_cgroup():
    path = Path(f"/sys/fs/cgroup/unified/corral-test-rates-{secrets.token_hex(4)}")
    path.mkdir()
    try:
        yield path
    finally:
        for _ in range(50):
            try:
                path.rmdir()
                break
            except OSError:
                time.sleep(0.1)


def test_the_probes_report_one_crossing_per_storm(unified_cgroup):
    from agent.probes.loader import ProbeOptions, ProbeSet
    cgroup_id = os.stat(unified_cgroup).st_ino
    with ProbeSet(REPO / "probes", ProbeOptions(), pin=False) as probes:
        probes.watch(cgroup_id, str(unified_cgroup))
        assert probes.set_rate_limits(cgroup_id, {"syscalls": LIMIT, "tcp_connects": 5}) == ("syscalls",
                                                                                               "tcp_connects")
        assert probes.rate_limits_in_kernel(cgroup_id) == {"syscalls": (LIMIT,), "tcp_connects": (5,)}
        subprocess.run(["sh", "-c", f'echo $$ > {unified_cgroup}/cgroup.procs && exec "$@"', "sh",
                        "dd", "if=/dev/zero", "of=/dev/null", "bs=1", "count=200000"], check=True,
                       capture_output=True)
        crossings = until(lambda: [e for e in probes.poll_events(100) if type(e).__name__ == "RateEvent"],
                          "the storm's crossing reported", timeout=10)
        assert len(crossings) == 1                      # 400k calls, one event
        event = crossings[0]
        assert (event.cgroup_id, event.signal, event.limit, event.comm) == (cgroup_id, "syscalls", LIMIT, "dd")
        assert event.count == LIMIT + 1
        probes.set_rate_limits(cgroup_id, {})
        assert probes.rate_limits_in_kernel(cgroup_id) == {}
        probes.unwatch(cgroup_id, str(unified_cgroup))


def test_each_level_of_a_signal_is_reported_once_at_its_own_count(unified_cgroup):
    from agent.probes.loader import ProbeOptions, ProbeSet
    cgroup_id = os.stat(unified_cgroup).st_ino
    with ProbeSet(REPO / "probes", ProbeOptions(), pin=False) as probes:
        probes.watch(cgroup_id, str(unified_cgroup))
        assert probes.set_rate_limits(cgroup_id, {"syscalls": (100000, LIMIT)}) == ("syscalls",)
        assert probes.rate_limits_in_kernel(cgroup_id) == {"syscalls": (LIMIT, 100000)}
        subprocess.run(["sh", "-c", f'echo $$ > {unified_cgroup}/cgroup.procs && exec "$@"', "sh",
                        "dd", "if=/dev/zero", "of=/dev/null", "bs=1", "count=200000"], check=True,
                       capture_output=True)
        seen: list = []

        def both() -> list:
            seen.extend(e for e in probes.poll_events(100) if type(e).__name__ == "RateEvent")
            return seen if len(seen) >= 2 else []
        until(both, "a crossing of each level", timeout=10)
        time.sleep(0.5)                                 # a third report would be here by now
        seen.extend(e for e in probes.poll_events(100) if type(e).__name__ == "RateEvent")
        assert sorted((e.limit, e.count) for e in seen) == [(LIMIT, LIMIT + 1), (100000, 100001)]
        probes.unwatch(cgroup_id, str(unified_cgroup))


@contextlib.contextmanager
def policy_daemon(tmp_path: Path, file: str, text: str):
    """A daemon with one policy file, at `--policy-interval 30`; `started` for BEFORE_TICK."""
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / file).write_text(text)
    with running_daemon("--policies", str(folder), "--policy-interval", INTERVAL) as running:
        running.policies = folder
        running.started = time.monotonic()
        yield running


@pytest.fixture
def daemon(tmp_path):
    with policy_daemon(tmp_path, "storm.yaml", POLICY.replace("ABOVE", str(LIMIT)).replace("HIGH", str(HIGH))) as d:
        yield d


# Ten connects to a listener of its own, then 1 MiB through one of them: all over loopback, in
# the test's cgroup (so both the sending and the receiving socket are the container's).
TRAFFIC = """
import socket
server = socket.create_server(("127.0.0.1", 0))
port = server.getsockname()[1]
clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(10)]
peers = [server.accept()[0] for _ in clients]
clients[0].sendall(b"x" * (1 << 20))
got = 0
while got < 1 << 20:
    got += len(peers[0].recv(1 << 16))
"""


def test_connects_and_bytes_cross_their_limits_once(unified_cgroup):
    from agent.probes.loader import ProbeOptions, ProbeSet
    cgroup_id = os.stat(unified_cgroup).st_ino
    with ProbeSet(REPO / "probes", ProbeOptions(), pin=False) as probes:
        probes.watch(cgroup_id, str(unified_cgroup))
        limits = {"tcp_connects": 5, "net_tx_bytes": 100_000, "net_rx_bytes": 100_000}
        assert set(probes.set_rate_limits(cgroup_id, limits)) == set(limits)
        subprocess.run(["sh", "-c", f'echo $$ > {unified_cgroup}/cgroup.procs && exec "$@"', "sh",
                        "python3", "-c", TRAFFIC], check=True, capture_output=True, timeout=60)

        def crossings() -> dict:
            seen.extend(e for e in probes.poll_events(100) if type(e).__name__ == "RateEvent")
            return {e.signal: e for e in seen} if len(seen) >= 3 else {}
        seen: list = []
        found = until(crossings, "three crossings: connects, bytes out, bytes in", timeout=10)
        assert sorted(e.signal for e in seen) == ["net_rx_bytes", "net_tx_bytes", "tcp_connects"]   # once each
        assert (found["tcp_connects"].count, found["tcp_connects"].comm) == (6, "python3")
        assert found["net_tx_bytes"].count > 100_000 and found["net_tx_bytes"].pid == 0
        probes.unwatch(cgroup_id, str(unified_cgroup))


def running(daemon, cid: str) -> bool:
    return daemon.inspect(cid)["State"]["Running"]


def killed_before_the_tick(daemon, name: str, workload: str) -> dict:
    """Run `workload` in a new container `name`; its kill (exit 137) must come before the first
    periodic evaluation. The violation's attributes."""
    cid = daemon.out("run", "-d", "--name", name, "busybox", "sh", "-c", f"sleep 1; {workload}; sleep 600")
    until(lambda: not running(daemon, cid), f"{name} killed", timeout=BEFORE_TICK - (time.monotonic() - daemon.started))
    violation = until(lambda: policy_events(daemon, cid, "violation"), "the violation recorded", timeout=5)[0]
    assert daemon.inspect(cid)["State"]["ExitCode"] == 137
    return violation["attributes"]


def test_a_syscall_storm_is_killed_from_the_kernel_crossing(daemon):
    attributes = killed_before_the_tick(daemon, "storm-kill-1", STORM)
    assert (attributes["rule"], attributes["policy"], attributes["trigger"]) == ("storm", "storm-kill", "kernel")
    assert attributes["value"] > LIMIT and attributes["actions"] == ["alert", "kill"]
    assert "syscalls crossed in the kernel" in daemon.log.read_text()


def test_an_alert_rule_alerts_once_and_the_container_keeps_running(daemon, tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    cid = daemon.out("run", "-d", "--name", "storm-alert-1", "-v", f"{marks}:/marks", "busybox", "sh", "-c",
                     f"sleep 1; {STORM}; touch /marks/done; sleep 600")
    violation = until(lambda: policy_events(daemon, cid, "violation"), "the alert's violation",
                      timeout=BEFORE_TICK - (time.monotonic() - daemon.started))[0]
    assert (violation["attributes"]["rule"], violation["attributes"]["trigger"]) == ("noisy", "kernel")
    assert violation["attributes"]["actions"] == ["alert"]
    until(lambda: (marks / "done").exists(), "the storm finished", timeout=60)
    assert running(daemon, cid)
    assert len(policy_events(daemon, cid, "violation")) == 1


def test_a_container_under_the_limit_is_untouched(daemon, tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    # ~100 calls per round, a few rounds a second: far under LIMIT.
    cid = daemon.out("run", "-d", "--name", "storm-kill-2", "-v", f"{marks}:/marks", "busybox", "sh", "-c",
                     "i=0; while [ $i -lt 20 ]; do dd if=/dev/zero of=/dev/null bs=1 count=50 2>/dev/null; "
                     "sleep 0.1; i=$((i+1)); done; touch /marks/done; sleep 600")
    until(lambda: (marks / "done").exists(), "the light workload finished", timeout=60)
    assert running(daemon, cid)
    assert policy_events(daemon, cid, "violation") == []


def test_a_reload_that_raises_the_limit_rewrites_it(daemon, tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    cid = daemon.out("run", "-d", "--name", "storm-kill-3", "-v", f"{marks}:/marks", "busybox", "sh", "-c",
                     f"until [ -e /marks/go ]; do sleep 0.1; done; {STORM}; touch /marks/done; sleep 600")
    count = reloads(daemon)
    (daemon.policies / "storm.yaml").write_text(POLICY.replace("ABOVE", "100000000").replace("HIGH", "200000000"))
    until(lambda: reloads(daemon) > count, "the raised limit reloaded", timeout=10)
    (marks / "go").touch()
    until(lambda: (marks / "done").exists(), "the storm finished under the raised limit", timeout=60)
    assert running(daemon, cid)
    assert policy_events(daemon, cid, "violation") == []


def test_two_thresholds_on_one_signal_each_fire_their_action_from_the_kernel(daemon):
    cid = daemon.out("run", "-d", "--name", "storm-levels-1", "busybox", "sh", "-c",
                     f"sleep 1; {STORM}; sleep 600")
    until(lambda: not running(daemon, cid), "the storming container killed at the higher level",
          timeout=BEFORE_TICK - (time.monotonic() - daemon.started))
    def both() -> list:
        found = policy_events(daemon, cid, "violation")
        return found if len(found) >= 2 else []
    violations = until(both, "both violations recorded", timeout=5)
    fired = {v["attributes"]["rule"]: v["attributes"] for v in violations}
    assert sorted(fired) == ["busy", "runaway"] and len(violations) == 2
    assert (fired["busy"]["trigger"], fired["busy"]["actions"]) == ("kernel", ["alert"])
    assert (fired["runaway"]["trigger"], fired["runaway"]["actions"]) == ("kernel", ["kill"])
    assert LIMIT < fired["busy"]["value"] <= HIGH < fired["runaway"]["value"]   # each at its own crossing
    assert daemon.inspect(cid)["State"]["ExitCode"] == 137


def test_a_storm_between_the_levels_only_alerts(daemon, tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    cid = daemon.out("run", "-d", "--name", "storm-levels-2", "-v", f"{marks}:/marks", "busybox", "sh", "-c",
                     f"sleep 1; {LIGHT_STORM}; touch /marks/done; sleep 600")
    violation = until(lambda: policy_events(daemon, cid, "violation"), "the lower level's violation",
                      timeout=BEFORE_TICK - (time.monotonic() - daemon.started))[0]
    assert (violation["attributes"]["rule"], violation["attributes"]["trigger"]) == ("busy", "kernel")
    until(lambda: (marks / "done").exists(), "the light storm finished", timeout=60)
    assert running(daemon, cid)
    assert [v["attributes"]["rule"] for v in policy_events(daemon, cid, "violation")] == ["busy"]


def test_explain_and_prove_show_which_thresholds_the_kernel_checks(daemon):
    cid = daemon.out("run", "-d", "--name", "storm-levels-3", "busybox", "sleep", "600")

    def detection() -> dict:
        answer = json.loads(daemon.out("policy", "explain", cid, "--format", "json"))
        return {d["rule"]: d for d in answer["detection"]}
    def written() -> dict:
        found = detection()
        return found if found["storm-levels/busy"]["checked"] == "kernel" else {}
    seen = until(written, "the levels written", timeout=10)
    assert (seen["storm-levels/runaway"]["checked"], seen["storm-levels/runaway"]["by"]) == ("kernel", "rate_limits")
    assert seen["storm-levels/runaway"]["detail"] == f"syscalls above {HIGH} in a 1 s window"
    assert (seen["storm-levels/ppid"]["checked"], seen["storm-levels/ppid"]["detail"]) == (
        "kernel", "syscalls of getppid above 1000000 in a 1 s window")
    text = daemon.out("policy", "explain", cid)
    assert f"    checked: kernel (rate_limits: syscalls above {LIMIT} in a 1 s window)" in text.splitlines()
    rows = sorted(line.split()[2:5] for line in daemon.out("policy", "prove", cid).splitlines()[1:])
    assert rows == [["busy", "threshold", "kernel"], ["ppid", "threshold", "kernel"],
                    ["runaway", "threshold", "kernel"]]
