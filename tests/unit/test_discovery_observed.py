"""The cgroup scan, the watcher, the observed registry and the foreign cgroup driver, on fixture
trees in tmp dirs (no root, no real cgroups)."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest

from agent.cgroups.double import CgroupDouble
from agent.cgroups.driver import CgroupPaths, Limits
from agent.discovery.classify import HostState
from agent.discovery.foreign_cgroups import ForeignCgroups, HostCgroups
from agent.discovery.observed import NO_UNIFIED, ObservedContainers
from agent.discovery.watcher import CgroupTrees, CgroupWatcher, check_observe_root, scan
from agent.errors import InvalidArgument, NotFound
from agent.probes.double import ProbeDouble

ID = "ab" * 32
OTHER = "cd" * 32
DOCKER = f"/system.slice/docker-{ID}.scope"


def hybrid_trees(tmp_path: Path) -> CgroupTrees:
    mounts = {c: tmp_path / c for c in ("memory", "cpu", "pids", "freezer")}
    for mount in [tmp_path / "unified", *mounts.values()]:
        mount.mkdir()
    return CgroupTrees(unified=str(tmp_path / "unified"), controllers={c: str(m) for c, m in mounts.items()})


def make(trees: CgroupTrees, path: str, *, unified: bool = True, v1: bool = True) -> None:
    mounts = ([trees.unified] if unified else []) + (list(trees.controllers.values()) if v1 else [])
    for mount in mounts:
        Path(mount, path.strip("/")).mkdir(parents=True, exist_ok=True)


def test_detect_finds_a_pure_v2_tree(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    assert CgroupTrees.detect(str(tmp_path)) == CgroupTrees(unified=str(tmp_path))


def test_detect_finds_hybrid_trees(tmp_path):
    (tmp_path / "unified").mkdir()
    (tmp_path / "unified/cgroup.controllers").write_text("")
    (tmp_path / "memory").mkdir()
    (tmp_path / "memory/cgroup.procs").write_text("")
    trees = CgroupTrees.detect(str(tmp_path))
    assert trees.unified == str(tmp_path / "unified") and trees.controllers == {"memory": str(tmp_path / "memory")}


def test_scan_joins_the_v1_and_unified_directories_of_each_container(tmp_path):
    trees = hybrid_trees(tmp_path)
    make(trees, DOCKER)
    make(trees, "/system.slice/ssh.service", unified=False)       # v1 only: no BPF
    make(trees, "/system.slice/docker.socket")                    # not a container
    make(trees, DOCKER + "/nested")                               # the container's own child
    found, walked = scan(trees)
    assert sorted(found) == [DOCKER, "/system.slice/ssh.service"]
    docker = found[DOCKER]
    assert docker.unified == str(tmp_path / "unified" / DOCKER.strip("/"))
    assert docker.controllers["memory"] == str(tmp_path / "memory" / DOCKER.strip("/"))
    assert found["/system.slice/ssh.service"].unified == ""
    assert str(tmp_path / "unified/system.slice") in walked
    assert not any("nested" in w for w in walked)


def test_scan_below_an_observe_root_classifies_paths_relative_to_it(tmp_path):
    trees = hybrid_trees(tmp_path)
    make(trees, "/corral-test/kubepods/burstable/pod1234/" + ID)
    make(trees, DOCKER)                                           # outside the root: ignored
    found, _ = scan(trees, "/corral-test")
    assert list(found) == ["/corral-test/kubepods/burstable/pod1234/" + ID]


def test_a_v2_host_has_one_directory_for_every_controller(tmp_path):
    trees = CgroupTrees(unified=str(tmp_path))
    make(trees, DOCKER)
    paths = scan(trees)[0][DOCKER]
    assert set(paths.controllers.values()) == {paths.unified}


@pytest.mark.parametrize("bad", ["relative", "/a/../b", ""])
def test_observe_root_must_be_an_absolute_cgroup_path(bad):
    with pytest.raises(InvalidArgument, match="--observe-root"):
        check_observe_root(bad)


def test_observe_root_is_normalised():
    assert check_observe_root("/a//b/") == "/a/b" and check_observe_root("/") == "/"


def test_the_watcher_reports_created_and_removed_containers(tmp_path):
    trees = hybrid_trees(tmp_path)
    make(trees, "/system.slice")
    scans: list[list[str]] = []
    changed = threading.Condition()

    def on_scan(found):
        with changed:
            scans.append(sorted(found))
            changed.notify_all()

    def wait_for(expected):
        with changed:
            assert changed.wait_for(lambda: scans and scans[-1] == expected, timeout=10), scans

    # A long rescan interval: only inotify can report the changes in time.
    watcher = CgroupWatcher(trees, on_scan, rescan_interval=600)
    watcher.start()
    try:
        wait_for([])
        make(trees, DOCKER)
        wait_for([DOCKER])
        for mount in [trees.unified, *trees.controllers.values()]:
            Path(mount, DOCKER.strip("/")).rmdir()
        wait_for([])
    finally:
        watcher.stop()


# --- the registry ------------------------------------------------------------------------------

def probe_double(fail: bool = False) -> ProbeDouble:
    """The maintained probe double; `fail`: no slot left, so watching is refused."""
    return ProbeDouble(max_containers=0 if fail else 128)


def registry(tmp_path, probes=None, events=None):
    """The registry on a bus with what the daemon subscribes: the probes and the event log."""
    from agent.catalog.bus import ContainerBus
    from agent.catalog.followers import log_observed, probes_follow
    from agent.events import EventLog
    bus = ContainerBus()
    if probes is not None:
        bus.subscribe("probes", probes_follow(probes))
    if events is not None:
        log = EventLog(tmp_path / "events.jsonl")
        log.subscribe(lambda event: events.append((event.action, event.name)))
        bus.subscribe("event log", log_observed(log))
    return ObservedContainers(bus=bus, probes=probes is not None, state=HostState(root=str(tmp_path / "host")),
                              clock=lambda: 1000.0)


def test_new_containers_get_the_probes_and_vanished_ones_lose_them(tmp_path):
    trees = hybrid_trees(tmp_path)
    make(trees, DOCKER)
    probes, events = probe_double(), []
    observed = registry(tmp_path, probes, events)
    observed.update(scan(trees)[0])
    [container] = observed.list()
    assert container.observed and container.probes and container.cgroup_id
    assert probes.watched == {container.cgroup_id: container.cgroup.unified}
    assert (container.name, container.container.runtime) == (ID[:12], "docker")
    assert events == [("observe", ID[:12])]
    assert observed.get(ID[:6]) == container and observed.get(DOCKER) == container
    observed.update({})
    assert observed.list() == [] and probes.watched == {}
    assert events[-1] == ("vanish", ID[:12])
    with pytest.raises(NotFound, match="ps --all-cgroups"):
        observed.get(ID)


def test_a_container_without_a_unified_directory_is_observed_without_probes(tmp_path):
    trees = hybrid_trees(tmp_path)
    make(trees, "/system.slice/ssh.service", unified=False)
    probes = probe_double()
    observed = registry(tmp_path, probes)
    observed.update(scan(trees)[0])
    [container] = observed.list()
    assert not container.probes and container.cgroup_id == 0 and container.note == NO_UNIFIED
    assert probes.watched == {}
    # Its unified directory appears later (runtimes make v1 ones first): the probes follow.
    make(trees, "/system.slice/ssh.service")
    observed.update(scan(trees)[0])
    [container] = observed.list()
    assert container.probes and probes.watched == {container.cgroup_id: container.cgroup.unified}


def test_probes_refusing_a_container_leave_it_observed_with_the_reason(tmp_path):
    trees = hybrid_trees(tmp_path)
    make(trees, DOCKER)
    observed = registry(tmp_path, probe_double(fail=True))
    observed.update(scan(trees)[0])
    [container] = observed.list()
    assert not container.probes and "probe slots" in container.note


def test_names_of_observed_containers_are_unique(tmp_path):
    trees = hybrid_trees(tmp_path)
    make(trees, DOCKER)
    make(trees, f"/docker/{ID}")             # the same id under both docker layouts
    observed = registry(tmp_path)
    observed.update(scan(trees)[0])
    names = [c.name for c in observed.list()]
    assert len(set(names)) == 2


def test_to_dict_marks_observed_and_seccomp_not_applicable(tmp_path):
    trees = hybrid_trees(tmp_path)
    make(trees, DOCKER)
    observed = registry(tmp_path)
    observed.update(scan(trees)[0])
    data = observed.list()[0].to_dict()
    assert data["observed"] is True and data["not_applicable"] == ["seccomp"] and data["runtime"] == "docker"


# --- acting on foreign cgroups -----------------------------------------------------------------

def fixture_files(paths: CgroupPaths) -> None:
    for controller, directory in paths.controllers.items():
        files = {"memory": ["memory.limit_in_bytes"], "cpu": ["cpu.cfs_period_us", "cpu.cfs_quota_us"],
                 "pids": ["pids.max"], "freezer": ["freezer.state"]}[controller]
        for name in files:
            Path(directory, name).write_text("-1\n" if name != "freezer.state" else "THAWED\n")
    Path(paths.unified, "cgroup.procs").write_text("")


def test_foreign_cgroups_act_only_on_observed_containers_and_never_create_or_remove(tmp_path):
    trees = hybrid_trees(tmp_path)
    make(trees, DOCKER)
    observed = registry(tmp_path)
    observed.update(scan(trees)[0])
    paths = observed.list()[0].cgroup
    fixture_files(paths)
    foreign = ForeignCgroups("hybrid", observed.owns, root=str(tmp_path), keep_files_open=False)
    foreign.set_limits(paths, Limits(memory_bytes=64 << 20, cpu_quota_us=50_000, pids_max=100))
    assert Path(paths.controllers["memory"], "memory.limit_in_bytes").read_text() == str(64 << 20)
    assert foreign.read_limits(paths).pids_max == 100
    stranger = CgroupPaths(unified=str(tmp_path / "unified/system.slice"),
                           controllers={"memory": str(tmp_path / "memory/system.slice")})
    with pytest.raises(InvalidArgument, match="not the cgroup of an observed container"):
        foreign.set_limits(stranger, Limits(memory_bytes=1 << 20))
    with pytest.raises(InvalidArgument, match="never creates"):
        foreign.remove(paths)
    with pytest.raises(InvalidArgument, match="never creates"):
        foreign.create("x", Limits())
    with pytest.raises(InvalidArgument, match="never creates"):
        foreign.add_process(paths, 1)
    assert Path(paths.unified).is_dir()


def test_host_cgroups_route_observed_paths_to_the_foreign_driver(tmp_path):
    own, foreign = CgroupDouble(mode="hybrid"), CgroupDouble(mode="hybrid")
    mine = CgroupPaths(unified="/cg/unified/corral/x")
    theirs = CgroupPaths(unified="/cg/unified/system.slice/a.service")
    host = HostCgroups(own, foreign, lambda p: p is theirs)
    host.set_limits(mine, Limits(pids_max=1))
    host.set_limits(theirs, Limits(pids_max=2))
    assert own.limits == {mine.unified: Limits(pids_max=1)}
    assert foreign.limits == {theirs.unified: Limits(pids_max=2)}
    host.close()
    assert foreign.closed and not own.closed
