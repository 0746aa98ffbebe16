"""The device rule list: parsing --device, Docker's defaults, the v1 lines and the BPF table,
and how each cgroup driver puts it in force (fixture trees and an in-memory guard)."""
from __future__ import annotations

import ctypes as ct
import os
import re
import stat
from pathlib import Path

import pytest

from agent.cgroups import devices, files
from agent.cgroups.devices import DEFAULT_RULES, DeviceRule, container_rules, encode, rule_for, v1_lines
from agent.cgroups.driver import Limits
from agent.cgroups.hybrid import HybridDriver
from agent.cgroups.v2 import V2Driver
from agent.errors import InvalidArgument
from agent.runtime.model import ContainerSpec, DeviceMapping
from tests.unit import test_cgroups_hybrid as hybrid_fixtures

SOURCE = (Path(__file__).resolve().parents[2] / "probes" / "devices.c").read_text()


class DevicesCgroupfs(hybrid_fixtures.HybridCgroupfs):
    """The hybrid fixture kernel, with a v1 devices hierarchy."""

    def kernel_files(self, path: str) -> dict[str, str]:
        content = super().kernel_files(path)
        if os.path.relpath(path, self.root).split(os.sep)[0] == "devices":
            content.update({"devices.allow": "", "devices.deny": "", "devices.list": "a *:* rwm\n"})
        return content


class MemoryGuard:
    """An in-memory DeviceGuard: directory -> rules in force."""

    def __init__(self) -> None:
        self.applied: dict[str, tuple[DeviceRule, ...]] = {}

    def apply(self, unified_dir: str, rules) -> None:
        self.applied[unified_dir] = tuple(rules)

    def release(self, unified_dir: str) -> None:
        self.applied.pop(unified_dir, None)


@pytest.mark.parametrize("text, expected", [
    ("/dev/loop0", DeviceMapping("/dev/loop0", None, "rwm")),
    ("/dev/loop0:/dev/disk", DeviceMapping("/dev/loop0", "/dev/disk", "rwm")),
    ("/dev/loop0:/dev/disk:r", DeviceMapping("/dev/loop0", "/dev/disk", "r")),
    ("/dev/loop0:wr", DeviceMapping("/dev/loop0", None, "rw")),
])
def test_device_flags_parse_as_docker_reads_them(text, expected):
    assert DeviceMapping.parse(text) == expected
    spec = ContainerSpec.checked(image="busybox", devices=[expected])
    assert ContainerSpec.from_dict(spec.to_dict()).devices == [expected]


def test_a_device_in_a_request_body_is_checked_by_field():
    with pytest.raises(InvalidArgument, match=r"devices\[0\].access"):
        ContainerSpec.from_dict({"image": "busybox", "devices": [{"host": "/dev/x", "access": "x"}]})
    with pytest.raises(InvalidArgument, match=r"devices\[0\].host"):
        ContainerSpec.from_dict({"image": "busybox", "devices": [{"host": "dev/x"}]})


@pytest.mark.parametrize("text", ["", "dev/loop0", "/dev/loop0:/dev/x:rwx", "/dev/loop0:/dev/x:rr",
                                  "/dev/a:/dev/b:r:extra", "/dev/loop0:relative"])
def test_bad_device_flags_are_refused_by_name(text):
    with pytest.raises(InvalidArgument, match="device"):
        DeviceMapping.parse(text)


def test_the_defaults_allow_mknod_of_anything_and_open_of_dockers_list_only():
    lines = v1_lines(DEFAULT_RULES)
    assert lines[:2] == ["c *:* m", "b *:* m"]
    assert sorted(lines[2:]) == sorted(["c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",
                                        "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm"])
    assert not any(line.startswith("b") and line != "b *:* m" for line in lines)


def test_a_device_rule_comes_from_the_host_node_and_plain_files_are_refused(tmp_path):
    null = rule_for("/dev/null", "r")
    assert null == DeviceRule("c", 1, 3, "r")
    (tmp_path / "f").write_text("")
    with pytest.raises(InvalidArgument, match="not a character or block device"):
        rule_for(str(tmp_path / "f"))
    with pytest.raises(InvalidArgument, match="No such file"):
        rule_for(str(tmp_path / "missing"))
    block = os.stat_result((stat.S_IFBLK | 0o600, 0, 0, 1, 0, 0, 0, 0, 0, 0))
    fake = type("S", (), {"st_mode": block.st_mode, "st_rdev": os.makedev(7, 3)})
    assert rule_for("/dev/loop3", "rwm", lambda _p: fake) == DeviceRule("b", 7, 3, "rwm")


def test_too_many_devices_are_refused():
    extra = [DeviceRule("c", 10, n) for n in range(devices.MAX_RULES)]
    with pytest.raises(InvalidArgument, match="at most"):
        container_rules(extra)


def test_the_bpf_table_mirrors_probes_devices_c():
    assert int(re.search(r"#define DEVICE_MAX_RULES (\d+)", SOURCE).group(1)) == devices.MAX_RULES
    assert int(re.search(r"#define DEVICE_ANY (0x[0-9A-F]+)", SOURCE).group(1), 16) == devices.ANY
    assert ct.sizeof(devices.DeviceTableC) == 8 + 16 * devices.MAX_RULES
    table = encode([DeviceRule("c", 1, 3, "rw"), DeviceRule("b", None, None, "m"), DeviceRule("a", 7, None, "rwm")])
    assert table.count == 3
    assert [(r.type, r.access, r.major, r.minor) for r in table.rules[:4]] == [
        (2, 6, 1, 3), (1, 1, devices.ANY, devices.ANY), (3, 7, 7, devices.ANY), (0, 0, 0, 0)]


def test_the_hybrid_driver_writes_deny_all_then_each_allow_line(tmp_path, monkeypatch):
    kernel = DevicesCgroupfs(str(tmp_path), os)
    monkeypatch.setattr(files, "os", kernel)
    hybrid_fixtures.make_host(tmp_path, mounts=("memory", "cpu", "cpuacct", "pids", "freezer", "devices"))
    driver = HybridDriver(str(tmp_path), "corral", user_hz=100, remove_timeout=0.5)
    paths = driver.create("web", Limits())
    written: list[tuple[str, str]] = []
    real_write = files.write_value
    monkeypatch.setattr(files, "write_value", lambda path, value, **kw: (
        written.append((os.path.relpath(path, tmp_path), str(value))), real_write(path, value, **kw)))
    rules = container_rules([DeviceRule("b", 7, 0, "r")])
    driver.set_devices(paths, rules)
    assert written[0] == ("devices/corral/web/devices.deny", "a")
    assert written[1:] == [("devices/corral/web/devices.allow", line) for line in v1_lines(rules)]


def test_without_a_v1_devices_hierarchy_the_hybrid_driver_uses_the_bpf_guard(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "os", hybrid_fixtures.HybridCgroupfs(str(tmp_path), os))
    hybrid_fixtures.make_host(tmp_path)
    guard = MemoryGuard()
    driver = HybridDriver(str(tmp_path), "corral", user_hz=100, remove_timeout=0.5, devices=guard)
    paths = driver.create("web", Limits())
    driver.set_devices(paths, DEFAULT_RULES)
    assert guard.applied == {paths.unified: DEFAULT_RULES}
    driver.remove(paths)
    assert guard.applied == {}


def test_the_v2_driver_puts_rules_on_the_containers_directory_and_takes_them_off(tmp_path, monkeypatch):
    from tests.unit.test_cgroups_v2 import V2Cgroupfs
    monkeypatch.setattr(files, "os", V2Cgroupfs(os))
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("cpu memory pids\n")
    (tmp_path / "cgroup.procs").write_text("1\n")
    guard = MemoryGuard()
    driver = V2Driver(str(tmp_path), "corral", remove_timeout=0.5, devices=guard)
    paths = driver.create("web", Limits())
    driver.set_devices(paths, DEFAULT_RULES)
    assert guard.applied == {paths.unified: DEFAULT_RULES}
    with pytest.raises(InvalidArgument, match="Corral only touches"):
        driver.set_devices(paths.__class__(unified=str(tmp_path / "elsewhere")), DEFAULT_RULES)
    driver.remove(paths)
    assert guard.applied == {}
