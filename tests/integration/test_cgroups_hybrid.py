"""The cgroup drivers on this machine's real kernel: limits, stats, freeze, kill, OOM, remove.

The hybrid driver is tested in full here; the v2 driver on the unified tree is in
test_cgroups_v2.py. Every
cgroup lives below a parent named corral-test-<random> and every process is started by
the test; the fixtures kill them and remove every directory in every hierarchy, even
when a test fails.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from agent.cgroups.driver import Limits
from agent.cgroups.hybrid import HybridDriver
from agent.errors import Conflict, KernelError
from tests.integration.cgroup_support import WAIT, cgroup_lines, cpu_ticks, wait_until

pytestmark = [pytest.mark.privileged, pytest.mark.topology("hybrid")]

MiB = 1024 * 1024


def all_dirs(driver: HybridDriver) -> list[str]:
    found = []
    for parent in driver.parent_dirs():
        if os.path.isdir(parent):
            found.append(parent)
            found.extend(os.path.join(parent, e) for e in os.listdir(parent)
                         if os.path.isdir(os.path.join(parent, e)))
    return found


@pytest.fixture
def driver():
    drv = HybridDriver(parent=f"corral-test-{uuid.uuid4().hex[:8]}")
    yield drv
    # Teardown is the test of cleanliness too: nothing may be left in any hierarchy.
    for name in drv.list_names():
        drv.remove(drv.paths_for(name))
    drv.remove_parent()
    assert all_dirs(drv) == []


def test_create_makes_a_directory_in_every_hierarchy_with_its_limits(driver):
    limits = Limits(memory_bytes=64 * MiB, cpu_quota_us=50_000, cpu_period_us=100_000, pids_max=10)
    paths = driver.create("c1", limits)

    assert set(paths.controllers) == {"memory", "cpu", "cpuacct", "pids", "freezer", "devices", "blkio"}
    for path in [paths.unified, *paths.controllers.values()]:
        assert os.path.isdir(path), path
    assert driver.exists(paths)
    assert driver.read_limits(paths) == limits
    assert driver.cgroup_id(paths) == os.stat(paths.unified).st_ino > 1
    stats = driver.stats(paths)
    assert (stats.memory_limit_bytes, stats.cpu_quota_us, stats.cpu_period_us, stats.pids_limit) == (
        64 * MiB, 50_000, 100_000, 10)
    assert stats.frozen is False
    assert stats.pids_current == 0


def test_unlimited_reads_back_as_none(driver):
    paths = driver.create("c1", Limits())
    assert driver.read_limits(paths) == Limits()
    stats = driver.stats(paths)
    assert (stats.memory_limit_bytes, stats.cpu_quota_us, stats.pids_limit) == (None, None, None)


def test_create_twice_is_a_conflict_and_a_bad_limit_leaves_nothing(driver):
    driver.create("c1", Limits())
    with pytest.raises(Conflict):
        driver.create("c1", Limits())
    # 10us is below the kernel's 1ms minimum quota: the kernel refuses it half-way through.
    with pytest.raises(KernelError, match="cpu.cfs_quota_us"):
        driver.create("c2", Limits(memory_bytes=64 * MiB, cpu_quota_us=10))
    assert driver.list_names() == ["c1"]
    assert not driver.exists(driver.paths_for("c2"))


def test_add_process_joins_every_hierarchy_and_shows_in_stats(driver, spawn):
    paths = driver.create("c1", Limits(memory_bytes=64 * MiB))
    sleeper = spawn("sleep", "1000")
    driver.add_process(paths, sleeper.pid)

    assert driver.pids(paths) == [sleeper.pid]
    where = cgroup_lines(sleeper.pid)
    expected = f"/{driver.parent}/c1"
    for controllers in ("memory", "cpu", "cpuacct", "pids", "freezer", "devices", "blkio", ""):
        assert where[controllers] == expected, (controllers, where)
    assert len(driver.procs_files(paths)) == 8
    stats = driver.stats(paths)
    assert stats.pids_current == 1
    assert stats.memory_usage_bytes is not None
    assert stats.cpu_usage_seconds is not None and stats.cpu_user_seconds is not None
    assert set(stats.pressure) == {"cpu", "memory", "io"}


def test_set_limits_changes_a_live_cgroup(driver, spawn):
    paths = driver.create("c1", Limits(memory_bytes=64 * MiB, cpu_quota_us=50_000, pids_max=10))
    driver.add_process(paths, spawn("sleep", "1000").pid)
    new = Limits(memory_bytes=128 * MiB, cpu_quota_us=None, pids_max=None)
    driver.set_limits(paths, new)
    assert driver.read_limits(paths) == new


def test_freeze_stops_a_busy_process_and_thaw_resumes_it(driver, spawn):
    paths = driver.create("c1", Limits())
    busy = spawn("sh", "-c", "while :; do :; done")
    driver.add_process(paths, busy.pid)

    driver.freeze(paths)
    assert driver.stats(paths).frozen is True
    before = cpu_ticks(busy.pid)
    time.sleep(0.3)
    assert cpu_ticks(busy.pid) == before

    driver.thaw(paths)
    assert driver.stats(paths).frozen is False
    assert wait_until(lambda: cpu_ticks(busy.pid) > before)


def test_kill_sigkills_every_process_and_remove_leaves_no_directory(driver, spawn):
    paths = driver.create("c1", Limits())
    sleepers = [spawn("sleep", "1000") for _ in range(2)]
    for proc in sleepers:
        driver.add_process(paths, proc.pid)

    driver.kill(paths)
    assert [proc.wait(timeout=WAIT) for proc in sleepers] == [-signal.SIGKILL] * 2
    assert wait_until(lambda: driver.pids(paths) == [])

    driver.remove(paths)
    assert not driver.exists(paths)
    assert driver.list_names() == []
    driver.remove(paths)   # missing directories are not an error


def test_remove_kills_what_is_still_running(driver, spawn):
    paths = driver.create("c1", Limits())
    sleeper = spawn("sleep", "1000")
    driver.add_process(paths, sleeper.pid)
    driver.remove(paths)
    assert sleeper.wait(timeout=WAIT) == -signal.SIGKILL
    assert not driver.exists(paths)


def test_a_process_allocating_past_the_memory_limit_is_oom_killed(driver, spawn):
    paths = driver.create("c1", Limits(memory_bytes=32 * MiB))
    hog = spawn(sys.executable, "-c",
                "import sys; sys.stdin.readline(); data = b'x' * (256 << 20); print('survived')",
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    driver.add_process(paths, hog.pid)
    out, _ = hog.communicate("go\n", timeout=WAIT)

    assert hog.returncode == -signal.SIGKILL
    assert "survived" not in out
    stats = driver.stats(paths)
    assert stats.oom_kills == 1
    assert stats.memory_failcnt > 0
    assert stats.memory_max_usage_bytes <= 32 * MiB


def test_the_pids_limit_refuses_forks(driver, spawn):
    paths = driver.create("c1", Limits(pids_max=4))
    script = (
        "import os, sys, time\n"
        "sys.stdin.readline()\n"
        "forked = refused = 0\n"
        "for _ in range(8):\n"
        "    try:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(1000); os._exit(0)\n"
        "        forked += 1\n"
        "    except BlockingIOError:\n"
        "        refused += 1\n"
        "print(forked, refused, flush=True)\n"
        "sys.stdin.readline()\n"
    )
    forker = spawn(sys.executable, "-c", script, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    driver.add_process(paths, forker.pid)
    forker.stdin.write("go\n")
    forker.stdin.flush()
    forked, refused = map(int, forker.stdout.readline().split())

    assert (forked, refused) == (3, 5)
    assert driver.stats(paths).pids_current == 4


def test_a_cpu_quota_throttles_a_busy_process(driver, spawn):
    paths = driver.create("c1", Limits.from_cpus(None, 0.1, None))
    busy = spawn("sh", "-c", "while :; do :; done")
    driver.add_process(paths, busy.pid)

    assert wait_until(lambda: (driver.stats(paths).cpu_throttled_periods or 0) > 0)
    stats = driver.stats(paths)
    assert stats.cpu_periods >= stats.cpu_throttled_periods > 0
    assert stats.cpu_throttled_seconds > 0
    assert (stats.cpu_quota_us, stats.cpu_period_us) == (10_000, 100_000)
