"""The v2 driver against a fixture cgroup2 tree in a temp dir, and detection of pure v2 hosts.

`FakeCgroupfs` stands in for the kernel's side of cgroupfs, wrapped around `files.os` (the one
place the drivers touch the filesystem to change it): mkdir fills a new cgroup with the files
the kernel would make, rmdir drops them, and writes to files named in `refuse` fail with EINVAL
as the kernel does for values it rejects.
"""
from __future__ import annotations

import os
import subprocess

import pytest

from agent.cgroups import files
from agent.cgroups.detect import cgroup_mode, detect_driver
from agent.cgroups.driver import CgroupPaths, Limits, Pressure
from agent.cgroups.v2 import V2Driver
from agent.errors import Conflict, InvalidArgument, KernelError, NotFound
from tests.unit.cgroup_fakes import FakeCgroupfs

MiB = 1024 * 1024
PSI = "some avg10=0.00 avg60=0.00 avg300=0.00 total={}\nfull avg10=0.00 avg60=0.00 avg300=0.00 total={}\n"


class V2Cgroupfs(FakeCgroupfs):
    def kernel_files(self, path: str) -> dict[str, str]:
        parent = os.path.dirname(path)
        enabled = _read(os.path.join(parent, "cgroup.subtree_control")).replace("+", "").split()
        content = {"cgroup.procs": "", "cgroup.controllers": " ".join(enabled) + "\n",
                   "cgroup.subtree_control": "", "cgroup.events": "populated 0\nfrozen 0\n",
                   "cgroup.freeze": "0\n", "cgroup.kill": "",
                   "cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0\n",
                   "cpu.pressure": PSI.format(0, 0), "memory.pressure": PSI.format(0, 0),
                   "io.pressure": PSI.format(0, 0)}
        if "memory" in enabled:
            content.update({"memory.max": "max\n", "memory.current": "0\n", "memory.peak": "0\n",
                            "memory.stat": "anon 0\nfile 0\ninactive_file 0\n",
                            "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n"})
        if "cpu" in enabled:
            content["cpu.max"] = "max 100000\n"
        if "pids" in enabled:
            content.update({"pids.max": "max\n", "pids.current": "0\n"})
        return content


def _read(path: str) -> str:
    try:
        with open(path) as handle:
            return handle.read()
    except FileNotFoundError:
        return ""


@pytest.fixture
def kernel(monkeypatch):
    fake = V2Cgroupfs(os)
    monkeypatch.setattr(files, "os", fake)
    return fake


@pytest.fixture
def root(tmp_path, kernel):
    """A cgroup2 root offering memory, cpu and pids to its children, as systemd hosts do."""
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("cpu memory pids\n")
    (tmp_path / "cgroup.procs").write_text("1\n")
    return tmp_path


@pytest.fixture
def driver(root):
    return V2Driver(str(root), "corral", freeze_timeout=0.05, remove_timeout=0.5)


def text(path: str) -> str:
    with open(path) as handle:
        return handle.read()


def test_create_enables_controllers_and_writes_limits(driver, root):
    paths = driver.create("web", Limits(memory_bytes=64 * MiB, cpu_quota_us=50_000, pids_max=10))

    assert paths == CgroupPaths(unified=str(root / "corral" / "web"),
                                controllers={c: str(root / "corral" / "web") for c in ("memory", "cpu", "pids")})
    assert text(str(root / "corral" / "cgroup.subtree_control")) == "+memory +cpu +pids"
    assert text(f"{paths.unified}/memory.max") == str(64 * MiB)
    assert text(f"{paths.unified}/cpu.max") == "50000 100000"
    assert text(f"{paths.unified}/pids.max") == "10"
    assert driver.read_limits(paths) == Limits(memory_bytes=64 * MiB, cpu_quota_us=50_000, pids_max=10)
    assert driver.exists(paths)
    assert driver.list_names() == ["web"]


def test_unlimited_is_written_as_max(driver):
    paths = driver.create("web", Limits())
    assert [text(f"{paths.unified}/{f}") for f in ("memory.max", "cpu.max", "pids.max")] == [
        "max", "max 100000", "max"]
    assert driver.read_limits(paths) == Limits()


def test_set_limits_changes_and_lifts_limits(driver):
    paths = driver.create("web", Limits(memory_bytes=64 * MiB, cpu_quota_us=50_000, pids_max=10))
    driver.set_limits(paths, Limits(memory_bytes=None, cpu_quota_us=200_000, cpu_period_us=50_000))
    assert driver.read_limits(paths) == Limits(cpu_quota_us=200_000, cpu_period_us=50_000)


def test_create_twice_is_a_conflict(driver):
    driver.create("web", Limits())
    with pytest.raises(Conflict, match="web"):
        driver.create("web", Limits())


def test_a_refused_limit_leaves_nothing_behind(driver, kernel, root):
    kernel.refuse.add("pids.max")
    with pytest.raises(KernelError) as caught:
        driver.create("web", Limits(memory_bytes=64 * MiB, pids_max=10))
    assert "pids.max" in str(caught.value) and "'10'" in str(caught.value)
    assert driver.list_names() == []
    assert not (root / "corral" / "web").exists()


def test_a_limit_whose_controller_the_host_lacks_is_refused_by_name(tmp_path, kernel):
    (tmp_path / "cgroup.controllers").write_text("cpu memory\n")
    (tmp_path / "cgroup.subtree_control").write_text("cpu memory\n")
    driver = V2Driver(str(tmp_path), "corral")
    with pytest.raises(KernelError, match="pids controller") as caught:
        driver.create("web", Limits(pids_max=10))
    assert "subtree_control" in caught.value.hint
    assert driver.list_names() == []
    # Without a pids limit the same host is fine, and pids.max is simply not there.
    paths = driver.create("web", Limits(memory_bytes=64 * MiB))
    assert driver.read_limits(paths) == Limits(memory_bytes=64 * MiB)


def test_names_that_leave_the_parent_are_refused(driver, root):
    with pytest.raises(InvalidArgument):
        driver.create("../escape", Limits())
    foreign = CgroupPaths(unified=str(root / "system.slice"))
    (root / "system.slice").mkdir()
    for action in (driver.remove, driver.kill, driver.freeze, lambda p: driver.add_process(p, 1),
                   lambda p: driver.set_limits(p, Limits())):
        with pytest.raises(InvalidArgument, match="only touches cgroups it created"):
            action(foreign)
    assert (root / "system.slice").is_dir()


def test_add_process_pids_and_procs_files(driver):
    paths = driver.create("web", Limits())
    assert driver.procs_files(paths) == [f"{paths.unified}/cgroup.procs"]
    driver.add_process(paths, 4242)
    assert text(f"{paths.unified}/cgroup.procs") == "4242"
    assert driver.pids(paths) == [4242]


def test_add_process_to_a_missing_cgroup_is_a_kernel_error(driver):
    with pytest.raises(KernelError, match="4242"):
        driver.add_process(driver.paths_for("gone"), 4242)


def test_stats_read_every_figure(driver):
    paths = driver.create("web", Limits(memory_bytes=64 * MiB, cpu_quota_us=50_000, pids_max=10))
    files_ = {
        "cpu.stat": "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n"
                    "nr_periods 40\nnr_throttled 7\nthrottled_usec 350000\n",
        "memory.current": "10485760\n", "memory.peak": "20971520\n",
        "memory.stat": "anon 4194304\nfile 6291456\ninactive_file 2097152\nactive_file 4194304\n",
        "memory.events": "low 0\nhigh 5\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n",
        "pids.current": "3\n", "cgroup.events": "populated 1\nfrozen 1\n",
        "cpu.pressure": PSI.format(1_500_000, 250_000), "memory.pressure": PSI.format(0, 0),
        "io.pressure": PSI.format(3_000_000, 1_000_000),
    }
    for name, content in files_.items():
        with open(f"{paths.unified}/{name}", "w") as handle:
            handle.write(content)

    stats = driver.stats(paths)
    assert (stats.cpu_usage_seconds, stats.cpu_user_seconds, stats.cpu_system_seconds) == (2.5, 2.0, 0.5)
    assert (stats.cpu_periods, stats.cpu_throttled_periods, stats.cpu_throttled_seconds) == (40, 7, 0.35)
    assert (stats.cpu_quota_us, stats.cpu_period_us) == (50_000, 100_000)
    assert (stats.memory_usage_bytes, stats.memory_max_usage_bytes) == (10 * MiB, 20 * MiB)
    assert stats.memory_working_set_bytes == 8 * MiB          # usage - inactive_file
    assert (stats.memory_rss_bytes, stats.memory_cache_bytes) == (4 * MiB, 6 * MiB)
    assert (stats.memory_failcnt, stats.oom_events, stats.oom_kills, stats.memory_high_events) == (12, 2, 1, 5)
    assert stats.memory_limit_bytes == 64 * MiB
    assert (stats.pids_current, stats.pids_limit) == (3, 10)
    assert stats.frozen is True
    assert stats.pressure == {"cpu": Pressure(1.5, 0.25), "memory": Pressure(0.0, 0.0),
                              "io": Pressure(3.0, 1.0)}


def test_a_missing_or_malformed_file_empties_only_its_fields(driver):
    paths = driver.create("web", Limits(memory_bytes=64 * MiB))
    os.unlink(f"{paths.unified}/memory.stat")
    os.unlink(f"{paths.unified}/io.pressure")
    with open(f"{paths.unified}/memory.current", "w") as handle:
        handle.write("garbage\n")

    stats = driver.stats(paths)
    assert stats.memory_usage_bytes is None and stats.memory_working_set_bytes is None
    assert stats.memory_rss_bytes is None and stats.memory_cache_bytes is None
    assert stats.memory_limit_bytes == 64 * MiB
    assert stats.cpu_usage_seconds == 0.0 and stats.pids_current == 0
    assert set(stats.pressure) == {"cpu", "memory"}


def test_oom_kills_come_from_memory_events(driver):
    paths = driver.create("web", Limits())
    with open(f"{paths.unified}/memory.events", "w") as handle:
        handle.write("low 0\nhigh 5\nmax 3\noom 2\noom_kill 1\noom_group_kill 0\n")
    assert driver.oom_kills(paths) == 1
    os.remove(f"{paths.unified}/memory.events")
    assert driver.oom_kills(paths) is None         # gone with its cgroup: not an error


def test_stats_of_a_removed_cgroup_are_empty_not_an_error(driver):
    stats = driver.stats(driver.paths_for("gone"))
    assert stats.cpu_usage_seconds is None and stats.frozen is None and stats.pressure == {}
    assert driver.pids(driver.paths_for("gone")) == []
    with pytest.raises(NotFound):
        driver.read_limits(driver.paths_for("gone"))


def test_freeze_thaw_and_kill_write_the_v2_files(driver):
    paths = driver.create("web", Limits())
    driver.freeze(paths)
    assert text(f"{paths.unified}/cgroup.freeze") == "1"
    driver.thaw(paths)
    assert text(f"{paths.unified}/cgroup.freeze") == "0"
    driver.kill(paths)
    assert text(f"{paths.unified}/cgroup.kill") == "1"


def test_kill_without_cgroup_kill_signals_each_process(driver):
    paths = driver.create("web", Limits())
    os.unlink(f"{paths.unified}/cgroup.kill")        # kernels before 5.14
    sleeper = subprocess.Popen(["sleep", "1000"])
    try:
        with open(f"{paths.unified}/cgroup.procs", "w") as handle:
            handle.write(f"{sleeper.pid}\n")
        driver.kill(paths)
        assert sleeper.wait(timeout=30) == -9
    finally:
        sleeper.kill()
        sleeper.wait()


def test_remove_deletes_the_directory_and_ignores_a_missing_one(driver, root):
    paths = driver.create("web", Limits())
    driver.remove(paths)
    assert not driver.exists(paths)
    assert driver.list_names() == []
    driver.remove(paths)
    driver.remove_parent()
    assert not (root / "corral").exists()
    assert (root / "cgroup.procs").exists()


def test_cgroup_id_is_the_directory_inode(driver):
    paths = driver.create("web", Limits())
    assert driver.cgroup_id(paths) == os.stat(paths.unified).st_ino


def test_detects_a_pure_v2_host(root):
    assert cgroup_mode(str(root)) == "v2"
    driver = detect_driver(str(root), parent="corral-x")
    assert isinstance(driver, V2Driver) and driver.mode == "v2"
    assert driver.parent_dir == str(root / "corral-x")
