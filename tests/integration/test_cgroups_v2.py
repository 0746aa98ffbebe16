"""The pure cgroup v2 driver on this machine's real cgroup2 tree.

The driver runs on whichever cgroup2 tree the host has: /sys/fs/cgroup on a pure v2 host,
/sys/fs/cgroup/unified on a hybrid one. Everything that needs no v2 controller runs here for
real on either: the cgroup id as BPF sees it, freeze and thaw, kill, cgroup.events (populated,
frozen), PSI, cpu.stat, BPF attachment and removal. Limits need the memory, cpu and pids
controllers, which a hybrid host binds to v1: those tests are marked topology("v2"), and the
fixture trees of tests/unit/test_cgroups_v2.py cover them on every host (docs/testing.md).

Every cgroup is below a parent named corral-test-<random> that the fixture creates and
removes, with every process the test started, even when the test fails.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid

import pytest

from agent.cgroups import files
from agent.cgroups.driver import Limits
from agent.cgroups.v2 import V2Driver
from agent.errors import KernelError
from agent.probes import cgroup_programs
from tests.host import UNIFIED_ROOT
from tests.integration.cgroup_support import WAIT, cgroup_lines, cpu_ticks, wait_until

pytestmark = [pytest.mark.privileged, pytest.mark.topology("v2", "hybrid")]

MiB = 1024 * 1024
BUSY = ("sh", "-c", "while :; do :; done")
# A process that waits for a line on stdin (so the test can move it into the cgroup first),
# then does one thing and prints what happened.
GETPPID_AFTER_A_LINE = "import os, sys; sys.stdin.readline(); print(os.getppid(), flush=True)"
SEND_UDP_AFTER_A_LINE = """
import socket, sys
sys.stdin.readline()
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    try:
        s.sendto(b"x", ("127.0.0.1", 9))
        print("sent", flush=True)
    except PermissionError:
        print("EPERM", flush=True)
"""


@pytest.fixture
def driver():
    assert UNIFIED_ROOT is not None       # topology("v2", "hybrid") guarantees a cgroup2 tree
    drv = V2Driver(UNIFIED_ROOT, parent=f"corral-test-{uuid.uuid4().hex[:8]}")
    yield drv
    for name in drv.list_names():
        drv.remove(drv.paths_for(name))
    drv.remove_parent()
    assert not os.path.exists(drv.parent_dir)


def events(paths) -> dict[str, int]:
    return files.optional_keyed(os.path.join(paths.unified, "cgroup.events"))


def run_inside(spawn, driver, paths, script: str) -> tuple[int, str]:
    """Start `script` in Python, move it into the cgroup, let it go on: (its pid, its output)."""
    proc = spawn(sys.executable, "-c", script, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    driver.add_process(paths, proc.pid)
    out, _ = proc.communicate("go\n", timeout=WAIT)
    assert proc.returncode == 0
    return proc.pid, out.strip()


def test_a_process_added_is_in_the_cgroup_the_kernel_reports(driver, spawn):
    paths = driver.create("c1", Limits())
    sleeper = spawn("sleep", "1000")
    driver.add_process(paths, sleeper.pid)
    assert cgroup_lines(sleeper.pid)[""] == f"/{driver.parent}/c1"
    assert driver.pids(paths) == driver.procs(paths) == [sleeper.pid]
    assert events(paths)["populated"] == 1
    assert driver.list_names() == ["c1"]


def test_the_cgroup_id_is_the_one_bpf_sees_for_a_process_in_it(driver, spawn):
    bcc = pytest.importorskip("bcc")         # python3-bpfcc: set-up installs it (a failure under CI)
    paths = driver.create("c1", Limits())
    other = driver.create("c2", Limits())
    program = bcc.BPF(text="""
        BPF_HASH(seen, u32, u64);
        TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
            u32 tgid = bpf_get_current_pid_tgid() >> 32;
            u64 id = bpf_get_current_cgroup_id();
            seen.update(&tgid, &id);
            return 0;
        }""")
    try:
        pid, out = run_inside(spawn, driver, paths, GETPPID_AFTER_A_LINE)
        assert int(out) == os.getpid()
        seen = {key.value: value.value for key, value in program["seen"].items()}
        assert seen[pid] == driver.cgroup_id(paths) == os.stat(paths.unified).st_ino
        assert driver.cgroup_id(paths) != driver.cgroup_id(other)
    finally:
        program.cleanup()


def test_freeze_stops_a_busy_process_and_thaw_resumes_it(driver, spawn):
    paths = driver.create("c1", Limits())
    busy = spawn(*BUSY)
    driver.add_process(paths, busy.pid)

    driver.freeze(paths)
    assert driver.stats(paths).frozen is True
    assert events(paths)["frozen"] == 1
    before = cpu_ticks(busy.pid)
    # Frozen means no progress at all: not even one clock tick over a few scheduler periods.
    assert not wait_until(lambda: cpu_ticks(busy.pid) > before, timeout=0.5)

    driver.thaw(paths)
    assert driver.stats(paths).frozen is False
    assert events(paths)["frozen"] == 0
    assert wait_until(lambda: cpu_ticks(busy.pid) > before)


def test_kill_sigkills_the_whole_tree_and_the_cgroup_empties(driver, spawn):
    paths = driver.create("c1", Limits())
    # A shell that forks two children once inside: cgroup.kill reaches processes the driver
    # never saw.
    parent = spawn("sh", "-c", "read x; sleep 1000 & sleep 1000 & wait", stdin=subprocess.PIPE, text=True)
    driver.add_process(paths, parent.pid)
    parent.stdin.write("go\n")
    parent.stdin.flush()
    assert wait_until(lambda: len(driver.pids(paths)) == 3)
    children = [pid for pid in driver.pids(paths) if pid != parent.pid]

    driver.kill(paths)
    assert parent.wait(timeout=WAIT) == -signal.SIGKILL
    assert wait_until(lambda: driver.pids(paths) == [])
    assert wait_until(lambda: events(paths)["populated"] == 0)
    assert wait_until(lambda: all(_is_zombie_or_gone(pid) for pid in children))


def _is_zombie_or_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def test_pressure_and_cpu_figures_come_from_the_cgroup(driver, spawn):
    paths = driver.create("c1", Limits())
    # Two busy loops on one CPU: each waits for the other, which is CPU pressure by definition.
    for _ in range(2):
        driver.add_process(paths, spawn("taskset", "-c", "0", *BUSY).pid)
    assert wait_until(lambda: (driver.stats(paths).pressure["cpu"].some_seconds or 0) > 0)
    stats = driver.stats(paths)
    assert set(stats.pressure) == {"cpu", "memory", "io"}
    assert stats.cpu_usage_seconds > 0 and stats.cpu_user_seconds > 0
    idle = driver.create("c2", Limits())
    assert driver.stats(idle).cpu_usage_seconds == 0
    assert driver.stats(idle).pressure["cpu"].some_seconds == 0


def test_a_cgroup_bpf_program_applies_to_processes_in_the_cgroup_only(driver, spawn):
    bcc = pytest.importorskip("bcc")
    paths = driver.create("c1", Limits())
    program = bcc.BPF(text="int drop_egress(struct __sk_buff *skb) { return 0; }")
    try:
        fn = program.load_func("drop_egress", bcc.BPF.CGROUP_SKB)
        prog_id = cgroup_programs.program_id(fn.fd)
        cgroup_programs.attach(paths.unified, fn.fd, cgroup_programs.CGROUP_INET_EGRESS)
        assert cgroup_programs.attached_programs(paths.unified, cgroup_programs.CGROUP_INET_EGRESS) == [prog_id]

        assert run_inside(spawn, driver, paths, SEND_UDP_AFTER_A_LINE)[1] == "EPERM"
        outside = subprocess.run([sys.executable, "-c", SEND_UDP_AFTER_A_LINE], input="go\n",
                                 capture_output=True, text=True, timeout=WAIT, check=True)
        assert outside.stdout.strip() == "sent"

        assert cgroup_programs.detach(paths.unified, fn.fd, cgroup_programs.CGROUP_INET_EGRESS)
        assert cgroup_programs.attached_programs(paths.unified, cgroup_programs.CGROUP_INET_EGRESS) == []
        assert run_inside(spawn, driver, paths, SEND_UDP_AFTER_A_LINE)[1] == "sent"

        # An attachment goes with its cgroup: removing one with a program on it works.
        cgroup_programs.attach(paths.unified, fn.fd, cgroup_programs.CGROUP_INET_EGRESS)
        driver.remove(paths)
        assert not driver.exists(paths)
        assert cgroup_programs.detach(paths.unified, fn.fd, cgroup_programs.CGROUP_INET_EGRESS) is False
    finally:
        program.cleanup()


def test_remove_kills_what_runs_and_leaves_no_directory(driver, spawn):
    paths = driver.create("c1", Limits())
    sleeper = spawn("sleep", "1000")
    driver.add_process(paths, sleeper.pid)
    driver.remove(paths)
    assert sleeper.wait(timeout=WAIT) == -signal.SIGKILL
    assert not driver.exists(paths)
    assert driver.list_names() == []
    driver.remove(paths)           # a missing directory is not an error


@pytest.mark.topology("hybrid")
def test_a_limit_needs_its_controller_and_a_refusal_leaves_nothing(driver):
    # The unified tree of a hybrid host has no memory controller: refused by name.
    with pytest.raises(KernelError, match="memory controller"):
        driver.create("c1", Limits(memory_bytes=64 * MiB))
    assert driver.list_names() == []


@pytest.mark.topology("v2")
def test_limits_are_written_and_read_back(driver):
    limits = Limits(memory_bytes=64 * MiB, cpu_quota_us=50_000, cpu_period_us=100_000, pids_max=10)
    paths = driver.create("c1", limits)
    assert driver.read_limits(paths) == limits
    driver.set_limits(paths, Limits())
    assert driver.read_limits(paths) == Limits()


@pytest.mark.topology("v2")
def test_the_pids_limit_refuses_forks(driver, spawn):
    paths = driver.create("c1", Limits(pids_max=2))
    shell = spawn("sh", "-c", "read x; for i in 1 2 3 4; do sleep 1000 & done; wait",   # forks once inside
                  stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    driver.add_process(paths, shell.pid)
    shell.stdin.write("go\n")
    shell.stdin.flush()
    assert wait_until(lambda: driver.stats(paths).pids_current == 2)
    assert driver.stats(paths).pids_limit == 2
    assert wait_until(lambda: files.optional_keyed(os.path.join(paths.unified, "pids.events")).get("max", 0) > 0)
