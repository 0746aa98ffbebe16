"""Block I/O figures from fixture cgroup trees (agent/cgroups/io.py): v1 blkio through the
hybrid driver, v2 io.stat, the no-op throttle rule that makes v1 count, and Docker's shape."""
from __future__ import annotations

import os

from agent.cgroups import files, io
from agent.cgroups.driver import CgroupPaths, Limits
from agent.cgroups.hybrid import HybridDriver
from agent.dockerapi.stats import stats_of
from agent.runtime.model import Container, ContainerSpec
from tests.unit.test_cgroups_hybrid import V1_FILES, HybridCgroupfs, make_host

V1_TEXT = """254:0 Read 4096
254:0 Write 1052672
254:0 Sync 1052672
254:0 Async 4096
254:0 Discard 0
254:0 Total 1056768
Total 1056768
"""


def test_v1_lines_become_dockers_entries_and_the_total_line_is_left_out():
    entries = io.parse_v1(V1_TEXT)
    assert [(e.major, e.minor, e.op, e.value) for e in entries][:2] == [(254, 0, "Read", 4096), (254, 0, "Write", 1052672)]
    assert len(entries) == 6
    assert io.parse_v1("Total 0\n") == []


def test_v2_io_stat_becomes_read_and_write_as_dockerd_names_them(tmp_path):
    (tmp_path / "io.stat").write_text("8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n")
    block = io.read_v2(files.read_bytes, str(tmp_path))
    assert [(e.op, e.value) for e in block.serviced] == [("read", 1), ("write", 2)]
    assert [(e.op, e.value) for e in block.service_bytes] == [("read", 10), ("write", 20)]
    assert io.read_v2(files.read_bytes, str(tmp_path / "gone")) == io.BlockIo()
    entries = io.parse_v2("8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n259:1 rbytes=5 wbytes=0\n")
    assert [e.to_docker() for e in entries] == [
        {"major": 8, "minor": 0, "op": "read", "value": 10}, {"major": 8, "minor": 0, "op": "write", "value": 20},
        {"major": 259, "minor": 1, "op": "read", "value": 5}, {"major": 259, "minor": 1, "op": "write", "value": 0}]


def test_a_partition_is_accounted_on_its_disk(tmp_path):
    disk = tmp_path / "devices" / "vda"
    (disk / "vda1").mkdir(parents=True)
    (disk / "dev").write_text("254:0\n")
    (disk / "vda1" / "dev").write_text("254:1\n")
    (disk / "vda1" / "partition").write_text("1\n")
    (tmp_path / "dev" / "block").mkdir(parents=True)
    os.symlink(disk / "vda1", tmp_path / "dev" / "block" / "254:1")
    os.symlink(disk, tmp_path / "dev" / "block" / "254:0")
    assert io.whole_disk(os.makedev(254, 1), str(tmp_path)) == "254:0"
    assert io.whole_disk(os.makedev(254, 0), str(tmp_path)) == "254:0"
    assert io.whole_disk(os.makedev(0, 42), str(tmp_path)) is None        # tmpfs, overlay


def test_the_hybrid_driver_joins_blkio_writes_the_noop_rule_once_and_reads_the_file(tmp_path, monkeypatch):
    kernel = HybridCgroupfs(str(tmp_path), os)
    monkeypatch.setattr(files, "os", kernel)
    monkeypatch.setitem(V1_FILES, "blkio", {io.V1_FILE: V1_TEXT, io.V1_COUNT_FILE: "254:0 Write 17\nTotal 17\n",
                                            io.V1_RULE_FILE: ""})
    make_host(tmp_path, mounts=("memory", "cpu", "cpuacct", "pids", "freezer", "blkio"))
    monkeypatch.setattr(io, "disks_under", lambda paths: ["254:0"] if paths == ["/var/lib/corral"] else [])
    driver = HybridDriver(str(tmp_path), "corral", user_hz=100, remove_timeout=0.5, io_paths=["/var/lib/corral"])
    paths = driver.create("web", Limits())
    assert paths.controllers["blkio"] == str(tmp_path / "blkio" / "corral" / "web")
    assert str(tmp_path / "blkio" / "corral" / "web" / "cgroup.procs") in driver.procs_files(paths)
    rule = tmp_path / "blkio" / "corral" / io.V1_RULE_FILE
    assert rule.read_text() == "254:0 0"
    rule.write_text("")
    driver.create("db", Limits())
    assert rule.read_text() == ""                   # once per driver: the disk keeps it
    block = driver.block_io(paths)
    assert [(e.op, e.value) for e in block.service_bytes][:2] == [("Read", 4096), ("Write", 1052672)]
    assert block.serviced == (io.IoEntry(254, 0, "Write", 17),)
    old = CgroupPaths(unified=paths.unified, controllers={k: v for k, v in paths.controllers.items() if k != "blkio"})
    assert driver.block_io(old) == io.BlockIo()     # a container made before Corral joined blkio


def test_docker_stats_carry_the_entries(tmp_path):
    from agent.cgroups.double import CgroupDouble
    cgroups = CgroupDouble()
    paths = cgroups.create("web", Limits())
    cgroups.io_by_dir[paths.unified] = io.BlockIo(tuple(io.parse_v1(V1_TEXT)), (io.IoEntry(254, 0, "Write", 3),))
    container = Container(id="a" * 64, name="web", spec=ContainerSpec(image="busybox", command=["true"]),
                          image_id="", created_at=0.0, cgroup=paths.to_dict())
    shaped = stats_of(container, cgroups, None)
    service = shaped["blkio_stats"]["io_service_bytes_recursive"]
    assert {"major": 254, "minor": 0, "op": "Write", "value": 1052672} in service
    assert shaped["blkio_stats"]["io_serviced_recursive"] == [{"major": 254, "minor": 0, "op": "Write", "value": 3}]
    cgroups.io_by_dir[paths.unified] = io.BlockIo()
    empty = stats_of(container, cgroups, None)["blkio_stats"]
    assert empty["io_service_bytes_recursive"] is None and empty["io_serviced_recursive"] is None
