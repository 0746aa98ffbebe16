"""Restart policies for real: a command that fails N times, containers coming back after the
daemon (and their shim) went away or the host "rebooted" (cgroup and overlay gone), and a
user's stop that keeps `unless-stopped` down."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.corral_daemon import running_daemon, until

pytestmark = pytest.mark.privileged

# Counts its runs in its own root (the upper directory outlives each run) and fails each time.
FAILING = ["sh", "-c", "n=$(cat /runs 2>/dev/null || echo 0); n=$((n+1)); echo $n > /runs; "
                       "echo run $n; exit 3"]
# Fails twice, then succeeds.
FLAKY = ["sh", "-c", "n=$(cat /runs 2>/dev/null || echo 0); n=$((n+1)); echo $n > /runs; "
                     "[ $n -ge 3 ] && exit 0; exit 1"]
SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done"]


@pytest.fixture(scope="module")
def daemon():
    with running_daemon() as instance:
        yield instance


def settled(daemon, ref: str, restarts: int) -> dict:
    """The container once it has exited after `restarts` restarts (and is not waiting for another)."""
    def done():
        info = daemon.inspect(ref)
        return info if info["State"]["Status"] == "exited" and info["RestartCount"] == restarts else None
    return until(done, f"{ref} exited after {restarts} restarts")


def test_on_failure_n_stops_after_n_restarts(daemon):
    daemon.cli("run", "-d", "--name", "fails", "--restart", "on-failure:3", "busybox", *FAILING)
    info = settled(daemon, "fails", 3)
    assert info["State"]["ExitCode"] == 3
    assert info["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert daemon.out("logs", "fails").split("\n") == ["run 1", "run 2", "run 3", "run 4"]
    # Given the time of one more back-off (0.8 s) and more, it stays down.
    time.sleep(2)
    info = daemon.inspect("fails")
    assert (info["State"]["Status"], info["RestartCount"]) == ("exited", 3)
    events = [json.loads(line) for line in daemon.out("events", "--format", "json").splitlines()]
    restarts = [e["attributes"]["restartCount"] for e in events
                if e["action"] == "restart" and e["name"] == "fails"]
    assert restarts == [1, 2, 3]
    daemon.cli("rm", "fails")


def test_on_failure_stops_restarting_once_it_succeeds(daemon):
    daemon.cli("run", "-d", "--name", "flaky", "--restart", "on-failure", "busybox", *FLAKY)
    info = settled(daemon, "flaky", 2)
    assert info["State"]["ExitCode"] == 0
    daemon.cli("rm", "flaky")


def test_always_restarts_after_a_clean_exit_and_a_user_stop_holds_it(daemon):
    daemon.cli("run", "-d", "--name", "again", "--restart", "always", "busybox", "sh", "-c", "sleep 0.2")
    until(lambda: daemon.inspect("again")["RestartCount"] >= 2, "two restarts of an always container")
    daemon.cli("stop", "-t", "1", "again")
    stopped = daemon.inspect("again")
    time.sleep(1.5)
    after = daemon.inspect("again")
    assert after["State"]["Status"] == "exited" and after["RestartCount"] == stopped["RestartCount"]
    # The user's start begins a new count, as docker's does.
    daemon.cli("start", "again")
    assert daemon.inspect("again")["RestartCount"] == 0
    daemon.cli("rm", "-f", "again")


def test_bad_restart_policies_are_refused_by_name(daemon):
    for bad in ("sometimes", "always:3", "on-failure:x", "on-failure:-1"):
        result = daemon.cli("run", "-d", "--restart", bad, "busybox", "true", check=False)
        assert result.returncode == 125 and b"--restart" in result.stderr, (bad, result.stderr)
    result = daemon.cli("run", "--rm", "--restart", "always", "busybox", "true", check=False)
    assert result.returncode == 125 and b"conflicting options" in result.stderr
    result = daemon.cli("run", "-d", "--stop-signal", "NOPE", "busybox", "true", check=False)
    assert result.returncode == 125 and b"stop_signal" in result.stderr
    assert json.loads(daemon.out("ps", "-a", "--format", "json")) == []


def records(daemon) -> dict[str, dict]:
    return {c["name"]: c for c in json.loads(daemon.out("ps", "-a", "--format", "json"))}


def _kill_shim(record: dict) -> None:
    """As a crash or reboot does: the shim and the container's processes die with the daemon down."""
    os.kill(record["shim_pid"], signal.SIGKILL)
    procs = Path(record["cgroup"]["unified"], "cgroup.procs")
    for pid in procs.read_text().split():
        os.kill(int(pid), signal.SIGKILL)
    until(lambda: not procs.read_text().split(), "the container's processes gone")


def test_always_and_unless_stopped_come_back_when_the_daemon_starts_again(tmp_path):
    with running_daemon() as daemon:
        daemon.cli("run", "-d", "--name", "always", "--restart", "always", "busybox", *SLEEPER)
        daemon.cli("run", "-d", "--name", "unless", "--restart", "unless-stopped", "busybox", *SLEEPER)
        daemon.cli("run", "-d", "--name", "stopped-unless", "--restart", "unless-stopped", "busybox", *SLEEPER)
        daemon.cli("run", "-d", "--name", "stopped-always", "--restart", "always", "busybox", *SLEEPER)
        daemon.cli("run", "-d", "--name", "never", "busybox", *SLEEPER)
        daemon.cli("stop", "stopped-unless", "stopped-always")
        pids = {name: daemon.inspect(name)["State"]["Pid"] for name in ("always", "unless")}
        known = records(daemon)

        assert daemon.stop() == 0
        for name in ("always", "unless", "never"):
            _kill_shim(known[name])
        daemon.start()

        for name in ("always", "unless"):
            info = until(lambda name=name: (i := daemon.inspect(name))["State"]["Running"] and i, f"{name} back")
            assert info["State"]["Pid"] != pids[name] and info["RestartCount"] == 1
        # docker: `always` comes back at the daemon's start even after a user's stop; unless-stopped not.
        until(lambda: daemon.inspect("stopped-always")["State"]["Running"], "stopped-always back")
        time.sleep(1)
        assert daemon.inspect("stopped-unless")["State"]["Status"] == "exited"
        assert daemon.inspect("never")["State"]["Status"] == "exited"
        assert daemon.out("exec", "always", "echo", "alive") == "alive"


def test_always_comes_back_after_a_host_reboot():
    """A reboot takes the shim, the cgroup and the overlay mount: the daemon's start makes them again."""
    with running_daemon() as daemon:
        daemon.cli("run", "-d", "--name", "boot", "--restart", "always", "busybox", "sh", "-c",
                   "echo boot >> /boots; trap 'exit 0' TERM; while :; do sleep 0.1; done")
        info = daemon.inspect("boot")
        known = records(daemon)
        assert daemon.stop() == 0
        _kill_shim(known["boot"])
        for directory in {*info["Cgroup"]["Paths"]["controllers"].values(), info["Cgroup"]["Paths"]["unified"]}:
            os.rmdir(directory)
        subprocess.run(["umount", info["Rootfs"]["Path"]], check=True)
        daemon.start()
        back = until(lambda: (i := daemon.inspect("boot"))["State"]["Running"] and i, "boot back")
        assert back["Cgroup"]["Id"] != info["Cgroup"]["Id"]
        assert daemon.out("exec", "boot", "cat", "/boots").split() == ["boot", "boot"]
