"""Life-cycle verbs for real, through the CLI as a docker user types them: pause/unpause (a
counter stops and resumes), update (the cgroup files change live), rename, restart, wait's
conditions, --stop-signal/--stop-timeout, top, and the prunes leaving only what they should."""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.corral_daemon import rootfs_tarball, until

pytestmark = pytest.mark.privileged

COUNTER = ["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /count; sleep 0.02; done"]
SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done"]


def failed(result, *words: bytes) -> bool:
    return result.returncode == 125 and all(word in result.stderr for word in words)


@pytest.fixture(autouse=True)
def nothing_left(daemon):
    """Each test starts from no containers (nor the image one commits), whatever the one before
    left when it failed."""
    yield
    daemon.remove_all()
    daemon.cli("image", "rm", "hup-image:1", check=False)


def test_pause_freezes_and_unpause_resumes(daemon):
    daemon.cli("run", "-d", "--name", "counter", "busybox", *COUNTER)
    count = Path(daemon.inspect("counter")["Rootfs"]["UpperDir"]) / "count"

    def value() -> int:
        text = count.read_text().strip() if count.exists() else ""
        return int(text) if text else 0
    until(lambda: value() > 3, "the counter counting")
    assert daemon.out("pause", "counter") == "counter"
    info = daemon.inspect("counter")
    assert info["State"]["Status"] == "paused" and info["State"]["Paused"] and info["State"]["Running"]
    assert Path(info["Cgroup"]["Paths"]["unified"], "cgroup.freeze").read_text().strip() == "1"
    assert "(Paused)" in daemon.out("ps")
    frozen = value()
    time.sleep(0.5)
    assert value() == frozen
    assert failed(daemon.cli("pause", "counter", check=False), b"counter is already paused")
    assert failed(daemon.cli("exec", "counter", "true", check=False), b"paused")
    daemon.cli("unpause", "counter")
    until(lambda: value() > frozen + 3, "the counter counting again")
    assert daemon.inspect("counter")["State"]["Status"] == "running"
    assert failed(daemon.cli("unpause", "counter", check=False), b"counter is not paused")
    # A paused container stops (the signal waits for the thaw) and cannot be removed without -f.
    daemon.cli("pause", "counter")
    assert failed(daemon.cli("rm", "counter", check=False), b"counter is paused")
    daemon.cli("stop", "-t", "1", "counter")
    assert daemon.inspect("counter")["State"]["Status"] == "exited"
    assert failed(daemon.cli("pause", "counter", check=False), b"container counter is not running")
    assert failed(daemon.cli("pause", "ghost", check=False), b"no such container: ghost")
    daemon.cli("rm", "counter")


def test_update_changes_limits_live_and_keeps_them(daemon):
    daemon.cli("run", "-d", "--name", "limited", "-m", "64m", "--pids-limit", "50", "busybox", *SLEEPER)
    controllers = daemon.inspect("limited")["Cgroup"]["Paths"]["controllers"]
    memory = Path(controllers["memory"], "memory.limit_in_bytes")
    assert int(memory.read_text()) == 64 << 20
    assert daemon.out("update", "-m", "128m", "--cpus", "0.5", "--pids-limit", "80", "limited") == "limited"
    assert int(memory.read_text()) == 128 << 20
    assert int(Path(controllers["cpu"], "cpu.cfs_quota_us").read_text()) == 50000
    assert int(Path(controllers["pids"], "pids.max").read_text()) == 80
    daemon.cli("update", "--memory", "32m", "--restart", "on-failure:2", "limited")
    assert int(memory.read_text()) == 32 << 20
    host = daemon.inspect("limited")["HostConfig"]
    assert host["Memory"] == 32 << 20 and host["NanoCpus"] == 500_000_000 and host["PidsLimit"] == 80
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    for bad, flag in ((["-m", "lots"], b"--memory"), (["--cpus", "0"], b"--cpus"),
                      (["--restart", "maybe"], b"--restart"), ([], b"--memory")):
        assert failed(daemon.cli("update", *bad, "limited", check=False), flag), bad
    assert int(memory.read_text()) == 32 << 20
    # Kept for the next start: stop and start again.
    daemon.cli("stop", "limited")
    daemon.cli("start", "limited")
    assert int(Path(daemon.inspect("limited")["Cgroup"]["Paths"]["controllers"]["memory"],
                    "memory.limit_in_bytes").read_text()) == 32 << 20
    daemon.cli("rm", "-f", "limited")


def test_rename_and_restart(daemon):
    cid = daemon.out("run", "-d", "--name", "before", "busybox", *SLEEPER)
    daemon.cli("run", "-d", "--name", "taken", "busybox", *SLEEPER)
    assert daemon.out("rename", "before", "after") == ""
    assert daemon.inspect("after")["Id"] == cid
    assert failed(daemon.cli("inspect", "before", check=False), b"no such container: before")
    assert failed(daemon.cli("rename", "after", "taken", check=False), b"'taken' is already used")
    assert failed(daemon.cli("rename", "after", "bad/name", check=False), b"bad/name")
    pid = daemon.inspect("after")["State"]["Pid"]
    assert daemon.out("restart", "-t", "2", "after") == "after"
    info = daemon.inspect("after")
    assert info["State"]["Running"] and info["State"]["Pid"] != pid and info["RestartCount"] == 0
    events = [json.loads(line) for line in daemon.out("events", "--format", "json").splitlines()]
    actions = [e["action"] for e in events if e["id"] == cid and e["type"] == "container"]
    assert sorted(actions[-4:-2]) == ["die", "stop"] and actions[-2:] == ["start", "restart"], actions
    assert "rename" in actions
    daemon.cli("rm", "-f", "after", "taken")


def test_wait_conditions(daemon, spawn):
    daemon.cli("run", "-d", "--name", "waited", "busybox", "sh", "-c", "exit 7")
    assert daemon.out("wait", "waited") == "7"
    next_exit = spawn(*daemon.cli_command(), "wait", "--condition", "next-exit", "waited",
                      env=daemon.env, stdout=subprocess.PIPE)
    removed = spawn(*daemon.cli_command(), "wait", "--condition", "removed", "waited",
                    env=daemon.env, stdout=subprocess.PIPE)
    time.sleep(1)
    assert next_exit.poll() is None and removed.poll() is None    # the exit before them does not count
    daemon.cli("start", "waited")
    assert next_exit.communicate(timeout=30)[0].decode().strip() == "7"
    assert removed.poll() is None
    daemon.cli("rm", "waited")
    assert removed.communicate(timeout=30)[0].decode().strip() == "7"
    assert failed(daemon.cli("wait", "--condition", "sometime", "x", check=False), b"--condition")


def test_stop_signal_and_stop_timeout(daemon):
    daemon.cli("run", "-d", "--name", "usr1", "--stop-signal", "USR1", "busybox", "sh", "-c",
               "trap 'echo got usr1; exit 0' USR1; while :; do sleep 0.1; done")
    daemon.cli("stop", "usr1")
    info = daemon.inspect("usr1")
    assert info["State"]["ExitCode"] == 0 and info["Config"]["StopSignal"] == "USR1"
    assert daemon.out("logs", "usr1") == "got usr1"
    # Ignores TERM: killed once its --stop-timeout of 1 s is over.
    daemon.cli("run", "-d", "--name", "stubborn", "--stop-timeout", "1", "busybox", "sh", "-c",
               "trap '' TERM; while :; do sleep 0.1; done")
    daemon.cli("stop", "stubborn")
    assert daemon.inspect("stubborn")["State"]["ExitCode"] == 137
    # `stop -s` and `restart -s` send another signal first (docker 28's --signal).
    daemon.cli("run", "-d", "--name", "hup", "busybox", "sh", "-c",
               "trap 'echo got hup; exit 0' HUP; while :; do sleep 0.1; done")
    daemon.cli("restart", "-s", "HUP", "hup")
    daemon.cli("stop", "--signal", "SIGHUP", "hup")
    assert daemon.out("logs", "hup").split("\n") == ["got hup", "got hup"]
    assert daemon.inspect("hup")["State"]["ExitCode"] == 0
    assert failed(daemon.cli("stop", "-s", "NOPE", "hup", check=False), b"--signal")
    # Without --stop-signal, the image's STOPSIGNAL, as docker's.
    daemon.cli("commit", "-c", "STOPSIGNAL SIGHUP", "hup", "hup-image:1")
    daemon.cli("run", "-d", "--name", "hup2", "hup-image:1", "sh", "-c",
               "trap 'echo got hup; exit 0' HUP; while :; do sleep 0.1; done")
    daemon.cli("stop", "-t", "20", "hup2")
    assert daemon.out("logs", "hup2") == "got hup" and daemon.inspect("hup2")["State"]["ExitCode"] == 0
    daemon.cli("rm", "usr1", "stubborn", "hup", "hup2")


def test_top_lists_the_containers_processes(daemon):
    daemon.cli("run", "-d", "--name", "topped", "busybox", "sh", "-c", "sleep 300 & sleep 301 & wait")
    lines = until(lambda: (out := daemon.out("top", "topped").splitlines()) and len(out) >= 4 and out,
                  "three processes listed")
    assert lines[0].split()[:3] == ["UID", "PID", "PPID"] and lines[0].split()[-1] == "CMD"
    assert sorted(line.split(None, 7)[-1] for line in lines[1:]) == ["sh -c sleep 300 & sleep 301 & wait",
                                                                     "sleep 300", "sleep 301"], lines
    custom = daemon.out("top", "topped", "-o", "pid,comm").splitlines()
    assert custom[0].split() == ["PID", "COMMAND"] and sorted(line.split()[1] for line in custom[1:]) == \
        ["sh", "sleep", "sleep"]
    assert failed(daemon.cli("top", "topped", "-o", "comm", check=False), b"PID")
    daemon.cli("stop", "-t", "0", "topped")
    assert failed(daemon.cli("top", "topped", check=False), b"container topped is not running")
    daemon.cli("rm", "topped")


@pytest.fixture
def tiny_image(tmp_path):
    return rootfs_tarball(tmp_path / "tiny.tar")


def test_prunes_leave_only_what_they_should(daemon, tiny_image):
    keep = daemon.out("run", "-d", "--name", "keep", "busybox", *SLEEPER)
    labelled = daemon.out("run", "-d", "--label", "prune=me", "busybox", "sh", "-c", "echo x > /data")
    plain = daemon.out("create", "busybox", "true")
    daemon.cli("wait", labelled)
    pruned = daemon.out("container", "prune", "-f", "--filter", "label=prune=me").split("\n")
    assert pruned[:3] == ["Deleted Containers:", labelled, ""] and len(pruned) == 4
    assert pruned[3].startswith("Total reclaimed space: ") and pruned[3] != "Total reclaimed space: 0B"
    assert failed(daemon.cli("container", "prune", "-f", "--filter", "colour=red", check=False), b"colour")
    # Without -f it asks; anything but y keeps everything.
    asked = daemon.cli("container", "prune", input=b"n\n")
    assert b"Are you sure you want to continue? [y/N]" in asked.stdout
    assert {c["id"] for c in json.loads(daemon.out("ps", "-a", "--format", "json"))} == {keep, plain}

    daemon.cli("network", "create", "unused-net")
    daemon.cli("image", "import", str(tiny_image), "--name", "tiny:1")
    df = daemon.out("system", "df").splitlines()
    assert df[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert df[1].split()[:3] == ["Images", "2", "1"] and df[2].split()[:3] == ["Containers", "2", "1"]
    out = daemon.out("system", "prune", "-a", "-f")
    assert f"Deleted Containers:\n{plain}\n" in out and "Deleted Networks:\nunused-net\n" in out
    assert "untagged: tiny:1" in out and "Total reclaimed space:" in out
    assert [c["id"] for c in json.loads(daemon.out("ps", "-a", "--format", "json"))] == [keep]
    networks = [n["name"] for n in json.loads(daemon.out("network", "ls", "--format", "json"))]
    assert len(networks) == 1 and "unused-net" not in networks        # the default network stays
    images = json.loads(daemon.out("images", "--format", "json"))
    assert [f"{i['name']}:{i['tag']}" for i in images] == ["busybox:latest"]   # in use by `keep`
    daemon.cli("rm", "-f", keep)
    assert not os.path.exists(Path(daemon.root, "containers", plain))
