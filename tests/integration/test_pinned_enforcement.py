"""Enforcement that outlives the daemon (issue 21, item 6), for real: a container with an egress
deny rule and a syscall kill rule; the daemon is killed with SIGKILL; the rules stay in force
(the container's refused connect never reaches the test's loopback server, its `sync` is still
killed); the restarted daemon adopts the pinned generation (one set of attachments, the old
link gone), reports the events lost while it was down, and `rm` leaves nothing under bpffs.
`--no-pin` pins nothing.

The container runs on the host's network (--net host) so the server the test runs on
127.0.0.1 is the destination; it acts when the test drops a file into its bind-mounted folder,
because no `corral exec` reaches it while the daemon is down.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from agent.probes import cgroup_programs, pins
from agent.probes.pins import pin_dir_of
from tests.integration.corral_daemon import CorralDaemon, until
from tests.integration.test_policies import metric

pytestmark = pytest.mark.privileged

EGRESS_TYPES = (cgroup_programs.CGROUP_INET4_CONNECT, cgroup_programs.CGROUP_UDP4_SENDMSG,
                cgroup_programs.CGROUP_INET6_CONNECT, cgroup_programs.CGROUP_UDP6_SENDMSG)
# Runs a round when /out/go appears: a connect to the denied port, one to the allowed port,
# `sync` (killed), then `storm` more refused connects; writes /out/result.
AGENT = """
while true; do
  if [ -e /out/go ]; then
    storm=$(cat /out/go); rm /out/go
    nc -w 2 127.0.0.1 {denied} </dev/null; denied=$?
    nc -w 2 127.0.0.1 {allowed} </dev/null; allowed=$?
    /bin/sync; killed=$?
    i=0; while [ $i -lt $storm ]; do nc -w 1 127.0.0.1 {denied} </dev/null 2>/dev/null; i=$((i+1)); done
    echo "denied=$denied allowed=$allowed killed=$killed" > /out/result.tmp && mv /out/result.tmp /out/result
  fi
  sleep 0.1
done
"""


class Server:
    """A TCP server on 127.0.0.1 that counts the connections it accepts."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def servers():
    made = [Server(), Server()]
    yield made
    for server in made:
        server.close()


@pytest.fixture
def workdir():
    if os.geteuid() != 0:
        pytest.skip("needs root: runs a real daemon")
    path = Path(tempfile.mkdtemp(prefix="corral-pin-", dir="/var/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Daemons:
    """Daemons of this test; each is killed, its containers removed and its pins checked gone."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.made: list[CorralDaemon] = []

    def start(self, name: str, *extra: str, daemon: CorralDaemon | None = None) -> CorralDaemon:
        if daemon is None:
            policies = self.workdir / f"{name}-policies"
            policies.mkdir(exist_ok=True)
            daemon = CorralDaemon(self.workdir / name, "--policies", str(policies), "--policy-interval", "0.5",
                                  "--no-observe", *extra)
            self.made.append(daemon)
        daemon.start()
        return daemon

    def close(self) -> None:
        for daemon in self.made:
            try:
                if daemon.process is None:
                    daemon.start()
                daemon.remove_all()
            finally:
                daemon.stop()
                leftover = pin_dir_of(daemon.root)
                if leftover.exists():         # never leave a program on every syscall of the host
                    subprocess.run(["rm", "-rf", str(leftover)], check=False)


@pytest.fixture
def daemons(workdir):
    made = Daemons(workdir)
    yield made
    made.close()


def write_policy(daemon: CorralDaemon, denied: int) -> None:
    policies = Path(daemon.extra[daemon.extra.index("--policies") + 1])
    (policies / "pinned.yaml").write_text(f"""apiVersion: corral/v1
kind: Policy
metadata:
  name: pinned
spec:
  selector: {{names: ["pinned-*"]}}
  syscalls:
    - {{name: no-sync, names: [sync], action: kill}}
  network:
    egress:
      default: allow
      rules:
        - {{name: no-server, action: deny, cidr: 127.0.0.1/32, ports: [{denied}], protocol: tcp}}
""")
    subprocess.run([*daemon.cli_command(), "policy", "check", str(policies)], check=True)
    until(lambda: "pinned" in daemon.out("policy", "ls"), what="the policy to load")


def run_agent(daemon: CorralDaemon, name: str, out: Path, denied: int, allowed: int) -> str:
    out.mkdir(exist_ok=True)
    daemon.cli("run", "-d", "--name", name, "--net", "host", "-v", f"{out}:/out", "busybox", "sh", "-c",
               AGENT.format(denied=denied, allowed=allowed))
    return daemon.inspect(name)["Id"]


def round_trip(out: Path, storm: int = 0) -> dict[str, int]:
    """One round of the container's agent: its exit codes."""
    (out / "result").unlink(missing_ok=True)
    (out / "go").write_text(str(storm))
    until(lambda: (out / "result").exists(), what="the container to run its round", timeout=120)
    return {k: int(v) for k, v in (part.split("=") for part in (out / "result").read_text().split())}


def unified_dir(container_id: str) -> str:
    found = [p for p in (f"/sys/fs/cgroup/unified/corral/{container_id}", f"/sys/fs/cgroup/corral/{container_id}")
             if os.path.isdir(p)]
    assert found, f"no cgroup v2 directory for {container_id}"
    return found[0]


def egress_programs(directory: str) -> dict[int, list[int]]:
    return {kind: cgroup_programs.attached_programs(directory, kind) for kind in EGRESS_TYPES}


def generations(daemon: CorralDaemon) -> list[str]:
    directory = pin_dir_of(daemon.root)
    return sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []


def program_exists(prog_id: int) -> bool:
    return subprocess.run(["bpftool", "prog", "show", "id", str(prog_id)], capture_output=True).returncode == 0


def test_rules_stay_in_force_while_the_daemon_is_killed_and_are_adopted_at_restart(daemons, servers, workdir):
    denied, allowed = servers
    daemon = daemons.start("pinned")
    if not json.loads(daemon.out("info", "--format", "json"))["probes"].get("syscalls"):
        pytest.fail("the daemon's probes are not loaded: pinned enforcement cannot be tested")
    write_policy(daemon, denied.port)
    out = workdir / "out"
    ident = run_agent(daemon, "pinned-1", out, denied.port, allowed.port)
    directory = unified_dir(ident)
    until(lambda: all(egress_programs(directory).values()), what="the egress programs to be attached")

    before = round_trip(out)
    assert before["denied"] != 0 and before["allowed"] == 0 and before["killed"] == 137, before
    assert denied.accepted == 0 and allowed.accepted == 1
    [generation] = until(lambda: generations(daemon), what="the enforcement to be pinned")
    old_programs = egress_programs(directory)

    daemon.process.kill()                     # SIGKILL: nothing of the daemon's shutdown runs
    daemon.process.wait()
    daemon.process = None
    time.sleep(2.5)                           # past CONSUMER_GONE_NS: later losses are "daemon_down"
    # More refused connects than the ring buffer holds reports for (64 KiB, 80 bytes each).
    during = round_trip(out, storm=1200)
    assert during["denied"] != 0 and during["allowed"] == 0 and during["killed"] == 137, during
    assert denied.accepted == 0 and allowed.accepted == 2
    assert generations(daemon) == [generation]

    daemons.start("pinned", daemon=daemon)
    new_generation = until(lambda: [g for g in generations(daemon) if g != generation] or None,
                           what="the restarted daemon to pin its own generation")
    assert generations(daemon) == new_generation         # the old one retired
    # Unpinned, the old link and its program go (the kernel frees them after a grace period).
    until(lambda: not program_exists(int(generation.removeprefix("gen-"))), what="the old sys_exit program to go")
    programs = egress_programs(directory)
    assert all(len(ids) == 1 for ids in programs.values()), programs      # no duplicate attachments
    assert all(programs[kind] != old_programs[kind] for kind in EGRESS_TYPES)
    assert metric(daemon, "corral_events_lost_total", reason="daemon_down") > 0
    after = round_trip(out)
    assert after["denied"] != 0 and after["allowed"] == 0 and after["killed"] == 137, after
    assert denied.accepted == 0 and allowed.accepted == 3

    daemon.cli("rm", "-f", "pinned-1")
    until(lambda: not pin_dir_of(daemon.root).exists(), what="rm to remove the pins")


def test_no_pin_leaves_nothing_under_bpffs(daemons, servers, workdir):
    denied, allowed = servers
    daemon = daemons.start("unpinned", "--no-pin")
    write_policy(daemon, denied.port)
    out = workdir / "out-unpinned"
    run_agent(daemon, "pinned-2", out, denied.port, allowed.port)
    result = round_trip(out)
    assert result["denied"] != 0 and result["killed"] == 137, result
    assert not pin_dir_of(daemon.root).exists()
    assert metric(daemon, "corral_events_lost_total", reason="daemon_down") == 0


def test_generations_whose_root_is_gone_are_swept(workdir):
    """What a deleted root left pinned (a test daemon's, say) goes at the next daemon's start."""
    base = Path(f"/sys/fs/bpf/corral-test-{os.getpid()}")
    try:
        gone, kept = base / "a" / "gen-1", base / "b" / "gen-2"
        for generation, root in ((gone, "/nonexistent/corral-root"), (kept, str(workdir))):
            generation.mkdir(parents=True)
            pins.pin_owner(generation / pins.OWNER, root)
        ownerless = base / "c" / "gen-3"
        ownerless.mkdir(parents=True)
        assert pins.read_owner(kept / pins.OWNER) == str(workdir)
        assert pins.sweep_orphans(base) == [gone]             # the ownerless one is too young
        assert not (base / "a").exists() and (kept / pins.OWNER).exists()
        assert pins.sweep_orphans(base, now=time.time() + 2 * pins.OWNERLESS_AGE) == [ownerless]
        assert (kept / pins.OWNER).exists()
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=False)
