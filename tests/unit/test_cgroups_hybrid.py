"""The hybrid driver against fixture v1 hierarchies plus a cgroup2 tree at <root>/unified, and
detection of hybrid, v1-only and cgroup-less hosts.

`FakeCgroupfs` stands in for the kernel's side of cgroupfs, wrapped around `files.os`: mkdir
fills a new cgroup with the files its hierarchy's controller would make (v1 defaults: -1 and
PAGE_COUNTER_MAX for "no limit"), rmdir drops them, writes to files named in `refuse` fail
with EINVAL.
"""
from __future__ import annotations

import os

import pytest

from agent.cgroups import files
from agent.cgroups.detect import cgroup_mode, detect_driver
from agent.cgroups.driver import CgroupPaths, Limits, Pressure
from agent.cgroups.hybrid import HybridDriver
from agent.errors import Conflict, InvalidArgument, KernelError
from tests.unit.cgroup_fakes import FakeCgroupfs

MiB = 1024 * 1024
UNLIMITED = "9223372036854771712\n"
PSI = "some avg10=0.00 avg60=0.00 avg300=0.00 total={}\nfull avg10=0.00 avg60=0.00 avg300=0.00 total={}\n"
V1_FILES = {
    "memory": {"memory.limit_in_bytes": UNLIMITED, "memory.usage_in_bytes": "0\n",
               "memory.max_usage_in_bytes": "0\n", "memory.failcnt": "0\n",
               "memory.stat": "cache 0\nrss 0\ninactive_file 0\ntotal_cache 0\ntotal_rss 0\n"
                              "total_inactive_file 0\n",
               "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"},
    "cpu": {"cpu.cfs_quota_us": "-1\n", "cpu.cfs_period_us": "100000\n",
            "cpu.stat": "nr_periods 0\nnr_throttled 0\nthrottled_time 0\n"},
    "cpuacct": {"cpuacct.usage": "0\n", "cpuacct.stat": "user 0\nsystem 0\n"},
    "pids": {"pids.max": "max\n", "pids.current": "0\n"},
    "freezer": {"freezer.state": "THAWED\n"},
    "unified": {"cgroup.controllers": "", "cgroup.events": "populated 0\nfrozen 0\n",
                "cgroup.freeze": "0\n", "cgroup.kill": "", "cpu.stat": "usage_usec 0\n",
                "cpu.pressure": PSI.format(0, 0), "memory.pressure": PSI.format(0, 0),
                "io.pressure": PSI.format(0, 0)},
}


class HybridCgroupfs(FakeCgroupfs):
    def __init__(self, root: str, real_os) -> None:
        super().__init__(real_os)
        self.root = root

    def kernel_files(self, path: str) -> dict[str, str]:
        mount = os.path.relpath(path, self.root).split(os.sep)[0]
        content = {"cgroup.procs": ""}
        for controller in mount.split(","):
            content.update(V1_FILES.get(controller, {}))
        return content


def make_host(root, mounts=("memory", "cpu", "cpuacct", "pids", "freezer"), unified=True):
    """v1 hierarchy roots (each with cgroup.procs), and a cgroup2 root at unified/."""
    for mount in mounts:
        (root / mount).mkdir()
        (root / mount / "cgroup.procs").write_text("1\n")
    if unified:
        (root / "unified").mkdir()
        (root / "unified" / "cgroup.controllers").write_text("hugetlb\n")
        (root / "unified" / "cgroup.procs").write_text("1\n")
    return root


@pytest.fixture
def kernel(tmp_path, monkeypatch):
    fake = HybridCgroupfs(str(tmp_path), os)
    monkeypatch.setattr(files, "os", fake)
    return fake


@pytest.fixture
def root(tmp_path, kernel):
    return make_host(tmp_path)


@pytest.fixture
def driver(root):
    return HybridDriver(str(root), "corral", user_hz=100, freeze_timeout=0.05, remove_timeout=0.5)


def text(path: str) -> str:
    with open(path) as handle:
        return handle.read()


def write(path: str, content: str) -> None:
    with open(path, "w") as handle:
        handle.write(content)


def test_create_makes_one_directory_per_hierarchy_plus_unified(driver, root):
    paths = driver.create("web", Limits(memory_bytes=64 * MiB, cpu_quota_us=50_000, pids_max=10))

    assert paths.unified == str(root / "unified" / "corral" / "web")
    assert paths.controllers == {c: str(root / c / "corral" / "web")
                                 for c in ("memory", "cpu", "cpuacct", "pids", "freezer")}
    assert text(paths.controllers["memory"] + "/memory.limit_in_bytes") == str(64 * MiB)
    assert text(paths.controllers["cpu"] + "/cpu.cfs_quota_us") == "50000"
    assert text(paths.controllers["cpu"] + "/cpu.cfs_period_us") == "100000"
    assert text(paths.controllers["pids"] + "/pids.max") == "10"
    assert driver.read_limits(paths) == Limits(memory_bytes=64 * MiB, cpu_quota_us=50_000, pids_max=10)
    assert driver.list_names() == ["web"]
    assert CgroupPaths.from_dict(paths.to_dict()) == paths


def test_unlimited_is_written_the_v1_way_and_reads_back_as_none(driver):
    paths = driver.create("web", Limits())
    assert text(paths.controllers["memory"] + "/memory.limit_in_bytes") == "-1"
    assert text(paths.controllers["cpu"] + "/cpu.cfs_quota_us") == "-1"
    assert text(paths.controllers["pids"] + "/pids.max") == "max"
    assert driver.read_limits(paths) == Limits()
    # What the kernel answers after "-1" on memory is PAGE_COUNTER_MAX in bytes.
    write(paths.controllers["memory"] + "/memory.limit_in_bytes", UNLIMITED)
    assert driver.read_limits(paths).memory_bytes is None


def test_set_limits_on_a_live_cgroup(driver):
    paths = driver.create("web", Limits(memory_bytes=64 * MiB, cpu_quota_us=50_000, pids_max=10))
    new = Limits(memory_bytes=128 * MiB, cpu_quota_us=25_000, cpu_period_us=50_000, pids_max=None)
    driver.set_limits(paths, new)
    assert driver.read_limits(paths) == new


def test_a_refused_limit_removes_every_directory_made(driver, kernel, root):
    kernel.refuse.add("pids.max")
    with pytest.raises(KernelError, match="pids.max"):
        driver.create("web", Limits(memory_bytes=64 * MiB, pids_max=10))
    assert driver.list_names() == []
    assert not driver.exists(driver.paths_for("web"))


def test_an_existing_directory_is_a_conflict_and_is_left_alone(driver, root):
    driver.create("web", Limits())
    (root / "cpu" / "corral" / "db").mkdir()
    with pytest.raises(Conflict, match="db"):
        driver.create("db", Limits())
    assert (root / "cpu" / "corral" / "db").is_dir()        # not ours to remove
    assert not (root / "memory" / "corral" / "db").exists()  # what create made is gone
    assert not (root / "unified" / "corral" / "db").exists()


def test_a_limit_without_its_hierarchy_is_refused_and_nothing_is_made(tmp_path, kernel):
    make_host(tmp_path, mounts=("memory", "cpu", "cpuacct"))
    driver = HybridDriver(str(tmp_path), "corral")
    with pytest.raises(KernelError, match="no v1 pids hierarchy") as caught:
        driver.create("web", Limits(pids_max=10))
    assert "mount -t cgroup -o pids" in caught.value.hint
    assert driver.list_names() == []
    paths = driver.create("web", Limits(memory_bytes=64 * MiB))
    assert set(paths.controllers) == {"memory", "cpu", "cpuacct"}
    assert driver.stats(paths).pids_current is None


def test_a_joint_cpu_cpuacct_mount_is_one_directory(tmp_path, kernel):
    make_host(tmp_path, mounts=("memory", "cpu,cpuacct", "pids"))
    os.symlink("cpu,cpuacct", tmp_path / "cpu")
    os.symlink("cpu,cpuacct", tmp_path / "cpuacct")
    driver = HybridDriver(str(tmp_path), "corral", user_hz=100)

    paths = driver.create("web", Limits(cpu_quota_us=50_000))
    assert paths.controllers["cpu"] == paths.controllers["cpuacct"] == str(tmp_path / "cpu" / "corral" / "web")
    assert len(driver.procs_files(paths)) == 4     # memory, cpu+cpuacct, pids, unified
    write(paths.controllers["cpuacct"] + "/cpuacct.usage", "1500000000\n")
    stats = driver.stats(paths)
    assert stats.cpu_usage_seconds == 1.5 and stats.cpu_quota_us == 50_000
    driver.remove(paths)
    assert driver.list_names() == []


def test_add_process_writes_every_procs_file(driver):
    paths = driver.create("web", Limits())
    procs = driver.procs_files(paths)
    assert procs == [f"{d}/cgroup.procs" for d in paths.controllers.values()] + [f"{paths.unified}/cgroup.procs"]
    driver.add_process(paths, 4242)
    assert [text(p) for p in procs] == ["4242"] * 6
    assert driver.pids(paths) == [4242]
    assert driver.procs(paths) == [4242]


def test_placement_is_every_procs_file_unified_last_and_only_our_own(driver, root):
    paths = driver.create("web", Limits())
    assert driver.placement(paths) == driver.procs_files(paths)
    assert driver.placement(paths)[-1] == f"{paths.unified}/cgroup.procs"
    foreign = CgroupPaths(unified=str(root / "unified" / "system.slice"), controllers={})
    with pytest.raises(InvalidArgument, match="only touches cgroups it created"):
        driver.placement(foreign)


def test_oom_kills_reads_only_the_memory_oom_control(driver, kernel):
    paths = driver.create("web", Limits())
    assert driver.oom_kills(paths) == 0
    write(paths.controllers["memory"] + "/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    assert driver.oom_kills(paths) == 2
    os.remove(paths.controllers["memory"] + "/memory.oom_control")
    assert driver.oom_kills(paths) is None


def test_procs_lists_the_unified_cgroup_and_pids_every_hierarchy(driver):
    paths = driver.create("web", Limits())
    write(paths.controllers["memory"] + "/cgroup.procs", "7\n")    # joined only the memory hierarchy
    write(paths.unified + "/cgroup.procs", "8\n9\n")
    assert driver.procs(paths) == [8, 9]
    assert driver.pids(paths) == [7, 8, 9]


def test_stats_with_files_kept_open_follow_the_files(root):
    driver = HybridDriver(str(root), "corral", user_hz=100, keep_files_open=True, remove_timeout=0.5)
    paths = driver.create("web", Limits(memory_bytes=64 * MiB))
    assert driver.stats(paths).memory_usage_bytes == 0
    write(paths.controllers["memory"] + "/memory.usage_in_bytes", f"{10 * MiB}\n")
    assert driver.stats(paths).memory_usage_bytes == 10 * MiB
    driver.remove(paths)
    assert driver.stats(paths).memory_usage_bytes is None
    driver.close()


def test_files_are_kept_open_only_on_cgroupfs(driver):
    assert driver._open_files is None     # a fixture tree in a temp dir


def test_stats_read_v1_figures_and_v2_pressure(driver):
    paths = driver.create("web", Limits(memory_bytes=64 * MiB, cpu_quota_us=50_000, pids_max=10))
    ctl = paths.controllers
    write(ctl["cpu"] + "/cpu.stat", "nr_periods 40\nnr_throttled 7\nthrottled_time 350000000\n"
                                    "nr_bursts 0\nburst_time 0\n")
    write(ctl["cpuacct"] + "/cpuacct.usage", "2500000000\n")
    write(ctl["cpuacct"] + "/cpuacct.stat", "user 200\nsystem 50\n")
    write(ctl["memory"] + "/memory.usage_in_bytes", f"{10 * MiB}\n")
    write(ctl["memory"] + "/memory.max_usage_in_bytes", f"{20 * MiB}\n")
    write(ctl["memory"] + "/memory.failcnt", "12\n")
    write(ctl["memory"] + "/memory.stat", f"cache 1\nrss 1\ninactive_file 1\ntotal_cache {6 * MiB}\n"
                                          f"total_rss {4 * MiB}\ntotal_inactive_file {2 * MiB}\n")
    write(ctl["memory"] + "/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    write(ctl["pids"] + "/pids.current", "3\n")
    write(paths.unified + "/cgroup.events", "populated 1\nfrozen 1\n")
    write(paths.unified + "/cpu.pressure", PSI.format(1_500_000, 250_000))

    stats = driver.stats(paths)
    assert (stats.cpu_usage_seconds, stats.cpu_user_seconds, stats.cpu_system_seconds) == (2.5, 2.0, 0.5)
    assert (stats.cpu_periods, stats.cpu_throttled_periods, stats.cpu_throttled_seconds) == (40, 7, 0.35)
    assert (stats.cpu_quota_us, stats.cpu_period_us) == (50_000, 100_000)
    assert (stats.memory_usage_bytes, stats.memory_max_usage_bytes) == (10 * MiB, 20 * MiB)
    assert stats.memory_working_set_bytes == 8 * MiB      # usage - total_inactive_file
    assert (stats.memory_rss_bytes, stats.memory_cache_bytes) == (4 * MiB, 6 * MiB)
    assert (stats.memory_failcnt, stats.oom_kills, stats.oom_events) == (12, 1, None)
    assert (stats.memory_limit_bytes, stats.pids_current, stats.pids_limit) == (64 * MiB, 3, 10)
    assert stats.frozen is True
    assert stats.pressure["cpu"] == Pressure(1.5, 0.25)
    assert set(stats.pressure) == {"cpu", "memory", "io"}


def test_one_unreadable_file_empties_only_its_fields(driver):
    paths = driver.create("web", Limits(memory_bytes=64 * MiB))
    os.unlink(paths.controllers["memory"] + "/memory.stat")
    write(paths.controllers["cpu"] + "/cpu.stat", "\0\0garbage")
    write(paths.controllers["memory"] + "/memory.usage_in_bytes", f"{10 * MiB}\n")

    stats = driver.stats(paths)
    assert stats.memory_rss_bytes is None and stats.memory_cache_bytes is None
    assert stats.memory_working_set_bytes == 10 * MiB    # nothing inactive known: all of usage
    assert stats.cpu_periods is None and stats.cpu_throttled_periods is None
    assert stats.memory_limit_bytes == 64 * MiB and stats.cpu_usage_seconds == 0.0


def test_without_cpuacct_cpu_time_comes_from_the_unified_cpu_stat(tmp_path, kernel):
    make_host(tmp_path, mounts=("memory", "cpu", "pids"))
    driver = HybridDriver(str(tmp_path), "corral", user_hz=100)
    paths = driver.create("web", Limits())
    write(paths.unified + "/cpu.stat", "usage_usec 3000000\nuser_usec 2000000\nsystem_usec 1000000\n")
    stats = driver.stats(paths)
    assert (stats.cpu_usage_seconds, stats.cpu_user_seconds, stats.cpu_system_seconds) == (3.0, 2.0, 1.0)


def test_freeze_and_thaw_use_the_v2_cgroup_freeze(driver):
    paths = driver.create("web", Limits())
    driver.freeze(paths)
    assert text(paths.unified + "/cgroup.freeze") == "1"
    assert text(paths.controllers["freezer"] + "/freezer.state") == "THAWED\n"
    driver.thaw(paths)
    assert text(paths.unified + "/cgroup.freeze") == "0"


def test_freeze_falls_back_to_the_v1_freezer(driver):
    paths = driver.create("web", Limits())
    os.unlink(paths.unified + "/cgroup.freeze")       # kernels before 5.2
    os.unlink(paths.unified + "/cgroup.events")
    driver.freeze(paths)
    assert text(paths.controllers["freezer"] + "/freezer.state") == "FROZEN"
    assert driver.stats(paths).frozen is True
    driver.thaw(paths)
    assert driver.stats(paths).frozen is False


def test_kill_writes_cgroup_kill(driver):
    paths = driver.create("web", Limits())
    driver.kill(paths)
    assert text(paths.unified + "/cgroup.kill") == "1"


def test_remove_deletes_every_directory_and_ignores_missing_ones(driver, root):
    paths = driver.create("web", Limits())
    files.os.rmdir(paths.controllers["freezer"])      # already gone in one hierarchy
    driver.remove(paths)
    assert not driver.exists(paths)
    driver.remove(paths)
    driver.remove_parent()
    for hierarchy in ("cpu", "cpuacct", "freezer", "memory", "pids"):
        assert os.listdir(root / hierarchy) == ["cgroup.procs"]
    assert sorted(os.listdir(root / "unified")) == ["cgroup.controllers", "cgroup.procs"]


def test_paths_outside_the_parent_are_refused(driver, root):
    (root / "memory" / "system.slice").mkdir()
    foreign = CgroupPaths(unified=str(root / "unified" / "corral" / "web"),
                          controllers={"memory": str(root / "memory" / "system.slice")})
    with pytest.raises(InvalidArgument, match="only touches cgroups it created"):
        driver.remove(foreign)
    with pytest.raises(InvalidArgument):
        driver.add_process(foreign, 1)
    with pytest.raises(InvalidArgument):
        driver.paths_for("..")
    assert (root / "memory" / "system.slice").is_dir()


def test_detects_hybrid_v1_only_and_no_cgroups(tmp_path):
    hybrid, v1, bare = tmp_path / "hybrid", tmp_path / "v1", tmp_path / "bare"
    for path in (hybrid, v1, bare):
        path.mkdir()
    make_host(hybrid)
    make_host(v1, unified=False)

    assert cgroup_mode(str(hybrid)) == "hybrid"
    assert isinstance(detect_driver(str(hybrid)), HybridDriver)
    assert cgroup_mode(str(v1)) == "v1"
    with pytest.raises(KernelError, match="only cgroup v1") as caught:
        detect_driver(str(v1))
    assert f"mount -t cgroup2 none {v1}/unified" in caught.value.hint
    assert cgroup_mode(str(bare)) == "none"
    with pytest.raises(KernelError, match="no cgroup filesystem"):
        detect_driver(str(bare))


def test_kill_thaws_a_v1_frozen_cgroup_so_its_tasks_can_die(driver):
    paths = driver.create("web", Limits())
    os.unlink(paths.unified + "/cgroup.freeze")
    os.unlink(paths.unified + "/cgroup.kill")
    driver.freeze(paths)
    driver.kill(paths)
    assert text(paths.controllers["freezer"] + "/freezer.state") == "THAWED"
