"""Containers run for real through the daemon and the CLI, as a docker user would run them."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.integration.corral_daemon import leftovers

pytestmark = pytest.mark.privileged


def run(daemon, *args, check=False):
    return daemon.cli("run", "--rm", *args, check=check)


def test_exit_codes_are_the_containers(daemon):
    assert run(daemon, "busybox", "true").returncode == 0
    assert run(daemon, "busybox", "sh", "-c", "exit 3").returncode == 3
    # pid 1 ignores SIGKILL from inside its own namespace, as in docker: kill it from outside
    cid = daemon.out("run", "-d", "busybox", "sleep", "60")
    daemon.cli("kill", cid)
    assert daemon.out("wait", cid) == "137"
    daemon.cli("rm", cid)


def test_output_streams_and_identity_inside(daemon):
    result = run(daemon, "--hostname", "pony", "busybox", "sh", "-c",
                 "echo pid=$$; hostname; echo oops >&2", check=True)
    assert result.stdout.decode().splitlines() == ["pid=1", "pony"]
    assert result.stderr.decode().strip() == "oops"


def test_host_processes_are_invisible(daemon):
    result = run(daemon, "busybox", "sh", "-c", "ls /proc | grep -c '^[0-9]'", check=True)
    # the shell and ls (and grep) are the only processes: nothing of the host
    assert int(result.stdout.decode()) <= 3


def test_env_workdir_and_volumes(daemon, tmp_path):
    (tmp_path / "data.txt").write_text("from-host\n")
    result = run(daemon, "-e", "GREETING=hello", "-w", "/srv", "-v", f"{tmp_path}:/data:ro",
                 "busybox", "sh", "-c", "echo $GREETING; pwd; cat /data/data.txt; touch /data/x",
                 check=False)
    lines = result.stdout.decode().splitlines()
    assert lines[:3] == ["hello", "/srv", "from-host"]
    assert result.returncode != 0  # read-only volume refused the write
    assert not (tmp_path / "x").exists()


def test_writes_land_in_the_upper_dir_not_the_image(daemon):
    cid = daemon.out("run", "-d", "busybox", "sh", "-c", "echo new > /etc/marker; sleep 60")
    try:
        info = json.loads(daemon.out("inspect", cid))[0]
        upper = Path(info["Rootfs"]["UpperDir"])
        deadline = time.monotonic() + 10
        while not (upper / "etc/marker").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (upper / "etc/marker").read_text() == "new\n"
        assert all(not (Path(layer) / "etc/marker").exists() for layer in info["Rootfs"]["LowerDirs"])
    finally:
        daemon.cli("rm", "-f", cid)
    assert run(daemon, "busybox", "cat", "/etc/marker").returncode == 1


def test_memory_limit_oom_kills_with_137(daemon):
    cid = daemon.out("run", "-d", "--memory", "16m", "busybox", "sh", "-c",
                     "x=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; while true; do x=$x$x; done")
    try:
        assert daemon.out("wait", cid) == "137"
        state = json.loads(daemon.out("inspect", cid))[0]["State"]
        assert state["OOMKilled"] is True and state["ExitCode"] == 137
    finally:
        daemon.cli("rm", "-f", cid)


def test_pids_limit_refuses_forks(daemon):
    result = run(daemon, "--pids-limit", "5", "busybox", "sh", "-c",
                 "for i in 1 2 3 4 5 6 7 8; do sleep 5 & done; wait", check=False)
    assert b"fork" in result.stderr.lower() or b"resource temporarily unavailable" in result.stderr.lower()


def test_cpu_quota_throttles(daemon):
    cid = daemon.out("run", "-d", "--cpus", "0.1", "busybox", "sh", "-c", "while true; do :; done")
    try:
        info = json.loads(daemon.out("inspect", cid))[0]
        assert info["Limits"]["cpu_quota_us"] == 10000
        cpu_dir = info["Cgroup"]["Paths"]["controllers"]["cpu"]
        deadline = time.monotonic() + 10
        throttled = 0
        while throttled == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
            stat = dict(line.split() for line in Path(cpu_dir, "cpu.stat").read_text().splitlines())
            throttled = int(stat["nr_throttled"])
        assert throttled > 0
    finally:
        daemon.cli("rm", "-f", cid)


def test_detached_run_logs_exec_stop_and_rm_leave_nothing(daemon):
    cid = daemon.out("run", "-d", "--name", "web-1", "--label", "tier=web", "busybox", "sh", "-c",
                     "echo started; trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done")
    assert len(cid) == 64
    ps = json.loads(daemon.out("ps", "--format", "json"))
    assert [c["name"] for c in ps if c["id"] == cid] == ["web-1"]
    time.sleep(0.3)
    assert daemon.out("logs", "web-1") == "started"
    exec_result = daemon.cli("exec", "web-1", "sh", "-c", "echo $$; hostname; ls /proc | grep -c '^[0-9]'")
    lines = exec_result.stdout.decode().split()
    assert lines[1] == cid[:12] and int(lines[2]) >= 2  # sees the container's pid 1 and itself
    assert daemon.cli("exec", "web-1", "sh", "-c", "exit 4", check=False).returncode == 4
    info = json.loads(daemon.out("inspect", "web-1"))[0]
    assert info["State"]["Running"] and info["Cgroup"]["Id"] > 1 and info["Labels"] == {"tier": "web"}
    daemon.cli("stop", "-t", "5", "web-1")
    info = json.loads(daemon.out("inspect", "web-1"))[0]
    assert info["State"]["Status"] == "exited" and info["State"]["ExitCode"] == 0
    assert "bye" in daemon.out("logs", "web-1")
    daemon.cli("rm", "web-1")
    assert leftovers(cid) == []
    assert not (daemon.root / "containers" / cid).exists()
    assert daemon.cli("inspect", "web-1", check=False).returncode == 125


def test_exec_into_a_stopped_container_is_refused(daemon):
    cid = daemon.out("run", "-d", "busybox", "true")
    daemon.cli("wait", cid)
    result = daemon.cli("exec", cid, "ls", check=False)
    assert result.returncode == 125 and b"not running" in result.stderr
    daemon.cli("rm", cid)


@pytest.mark.parametrize("args, message", [
    (["--pull", "never", "nosuchimage:1"], b"nosuchimage"),     # the pull is tested in test_registry.py
    (["--memory", "64x", "busybox", "true"], b"64x"),
    (["busybox", "/no/such/command"], b"/no/such/command"),
    (["-v", "/no/such/dir:/data", "busybox", "true"], b"/no/such/dir"),
])
def test_bad_input_is_named_and_leaves_nothing(daemon, args, message):
    before = set(os.listdir(daemon.root / "containers"))
    mounts_before = Path("/proc/self/mountinfo").read_text().count("corral")
    cgroups_before = set(Path("/sys/fs/cgroup/memory/corral").iterdir()) \
        if Path("/sys/fs/cgroup/memory/corral").exists() else set()
    result = daemon.cli("run", *args, check=False)
    assert result.returncode == 125
    assert message in result.stderr, result.stderr
    assert len(result.stderr.decode().strip().splitlines()) <= 2   # one line (+ a hint)
    assert set(os.listdir(daemon.root / "containers")) == before
    assert Path("/proc/self/mountinfo").read_text().count("corral") == mounts_before
    after = set(Path("/sys/fs/cgroup/memory/corral").iterdir()) \
        if Path("/sys/fs/cgroup/memory/corral").exists() else set()
    assert after == cgroups_before


def test_name_already_used_is_refused(daemon):
    daemon.cli("run", "-d", "--name", "dup", "busybox", "sleep", "30")
    try:
        result = daemon.cli("run", "--name", "dup", "busybox", "true", check=False)
        assert result.returncode == 125 and b"dup" in result.stderr
    finally:
        daemon.cli("rm", "-f", "dup")


def test_daemon_restart_reconciles(daemon):
    survivor = daemon.out("run", "-d", "busybox", "sleep", "300")
    doomed = daemon.out("run", "-d", "busybox", "sleep", "300")
    doomed_pid = json.loads(daemon.out("inspect", doomed))[0]["State"]["Pid"]
    assert daemon.stop() == 0
    os.kill(doomed_pid, 9)                       # dies while nobody watches
    time.sleep(0.3)
    daemon.start()
    try:
        states = {c["id"]: c for c in json.loads(daemon.out("ps", "-a", "--format", "json"))}
        assert states[survivor]["state"] == "running"
        assert states[doomed]["state"] == "exited" and states[doomed]["exit_code"] == 137
        daemon.cli("stop", "-t", "1", survivor)  # still under control after the restart
        assert json.loads(daemon.out("inspect", survivor))[0]["State"]["Status"] == "exited"
    finally:
        daemon.cli("rm", "-f", survivor, doomed, check=False)
