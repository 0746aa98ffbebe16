"""The cgroup watcher's cost: an event re-examines only the directory it names, Corral's own
parent is never walked nor watched, and the periodic rescan still finds what inotify missed.
Fixture trees in tmp dirs (no root, no real cgroups)."""
from __future__ import annotations

import threading
from pathlib import Path

from agent.discovery.inotify import DirEvent, Inotify
from agent.discovery.watcher import CgroupTrees, CgroupWatcher, scan

ID = "ab" * 32
OTHER = "cd" * 32
DOCKER = f"/system.slice/docker-{ID}.scope"
CORRALS = f"/corral/{OTHER}"


def hybrid_trees(tmp_path: Path) -> CgroupTrees:
    mounts = {c: tmp_path / c for c in ("memory", "cpu", "pids", "freezer")}
    for mount in [tmp_path / "unified", *mounts.values()]:
        mount.mkdir()
    return CgroupTrees(unified=str(tmp_path / "unified"), controllers={c: str(m) for c, m in mounts.items()})


def make(trees: CgroupTrees, path: str) -> None:
    for mount in trees.mounts():
        Path(mount, path.strip("/")).mkdir(parents=True, exist_ok=True)


def remove(trees: CgroupTrees, path: str) -> None:
    for mount in trees.mounts():
        Path(mount, path.strip("/")).rmdir()


def busy_host(trees: CgroupTrees) -> None:
    """Twenty slices of five services each: 121 directories per tree that no event should walk."""
    for s in range(20):
        for u in range(5):
            make(trees, f"/busy-{s}.slice/unit-{u}.mount")


class Scans:
    def __init__(self) -> None:
        self.seen: list[list[str]] = []
        self._changed = threading.Condition()

    def __call__(self, found) -> None:
        with self._changed:
            self.seen.append(sorted(found))
            self._changed.notify_all()

    def wait_for(self, expected: list[str]) -> None:
        with self._changed:
            assert self._changed.wait_for(lambda: self.seen and self.seen[-1] == expected, timeout=10), self.seen


def test_an_event_walks_only_the_directory_it_names(tmp_path):
    trees = hybrid_trees(tmp_path)
    busy_host(trees)
    make(trees, "/system.slice")
    scans = Scans()
    watcher = CgroupWatcher(trees, scans)         # not started: events are handed in by the test
    watcher.rescan()
    after_full_walk = watcher.walked
    assert after_full_walk > 5 * 121

    make(trees, DOCKER)
    changed = watcher.apply([DirEvent((m, "/system.slice"), f"docker-{ID}.scope") for m in trees.mounts()])
    assert changed and scans.seen[-1] == [DOCKER]
    assert watcher.walked - after_full_walk == 5           # the new directory, once in each tree

    remove(trees, DOCKER)
    before = watcher.walked
    assert watcher.apply([DirEvent((m, "/system.slice"), f"docker-{ID}.scope") for m in trees.mounts()])
    assert scans.seen[-1] == [] and watcher.walked == before    # gone: nothing to walk


def test_a_new_subtree_is_walked_whole_and_a_removed_one_forgets_its_containers(tmp_path):
    trees = hybrid_trees(tmp_path)
    busy_host(trees)
    scans = Scans()
    watcher = CgroupWatcher(trees, scans)
    watcher.rescan()
    pod = "/kubepods/burstable/pod1234"
    make(trees, f"{pod}/{ID}")
    make(trees, f"{pod}/{OTHER}")
    start = watcher.walked
    watcher.apply([DirEvent((m, "/"), "kubepods") for m in trees.mounts()])
    assert scans.seen[-1] == sorted([f"{pod}/{ID}", f"{pod}/{OTHER}"])
    assert watcher.walked - start == 5 * 5                 # kubepods, burstable, pod, two containers

    for mount in trees.mounts():                           # as if the whole pod went at once
        for name in (ID, OTHER):
            Path(mount, pod.strip("/"), name).rmdir()
        Path(mount, pod.strip("/")).rmdir()
    watcher.apply([DirEvent((m, "/kubepods/burstable"), "pod1234") for m in trees.mounts()])
    assert scans.seen[-1] == []


def test_corrals_own_parent_is_never_walked_nor_reported(tmp_path):
    trees = hybrid_trees(tmp_path)
    make(trees, CORRALS)
    make(trees, f"/corral/system.slice/docker-{OTHER}.scope")   # would classify as docker elsewhere
    make(trees, "/corral-observe-test/system.slice")            # only the exact parent is Corral's
    found, walked = scan(trees)
    assert found == {}
    assert not any("/corral/" in w or w.endswith("/corral") for w in walked)
    assert any(w.endswith("/corral-observe-test/system.slice") for w in walked)

    scans = Scans()
    watcher = CgroupWatcher(trees, scans)
    watcher.rescan()
    start = watcher.walked
    events = [DirEvent((m, "/"), "corral") for m in trees.mounts()]
    events += [DirEvent((m, "/corral"), OTHER) for m in trees.mounts()]
    assert watcher.apply(events) is False and watcher.walked == start


def test_a_corral_run_fires_no_walk_but_a_foreign_container_does(tmp_path):
    trees = hybrid_trees(tmp_path)
    busy_host(trees)
    make(trees, "/corral")
    make(trees, "/system.slice")
    scans = Scans()
    watcher = CgroupWatcher(trees, scans, rescan_interval=600)    # only inotify can report in time
    watcher.start()
    try:
        scans.wait_for([])
        start = watcher.walked
        make(trees, CORRALS)                      # what `corral run` does in every tree
        remove(trees, CORRALS)
        make(trees, DOCKER)
        scans.wait_for([DOCKER])
        assert watcher.walked - start == 5
        remove(trees, DOCKER)
        scans.wait_for([])
    finally:
        watcher.stop()


def test_the_rescan_finds_what_inotify_could_not_watch(tmp_path, monkeypatch):
    # As when fs.inotify.max_user_watches is reached: no watch is ever added.
    monkeypatch.setattr(Inotify, "add", lambda self, directory, tag: False)
    trees = hybrid_trees(tmp_path)
    make(trees, "/system.slice")
    scans = Scans()
    watcher = CgroupWatcher(trees, scans, rescan_interval=0.1)
    watcher.start()
    try:
        scans.wait_for([])
        make(trees, DOCKER)
        scans.wait_for([DOCKER])
        remove(trees, DOCKER)
        scans.wait_for([])
    finally:
        watcher.stop()
