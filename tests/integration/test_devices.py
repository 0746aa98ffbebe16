"""Device access control, enforced by the kernel: Docker's default list, --device, both modes.

Attempts are made from inside real containers (the v1 devices controller on this hybrid host)
and from a process placed in a cgroup this test creates in the cgroup2 tree (the
BPF_CGROUP_DEVICE program of probes/devices.c, which pure-v2 hosts use).
"""
from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from agent.cgroups.detect import cgroup_mode
from agent.cgroups.device_program import DeviceProgram
from agent.cgroups.devices import container_rules
from agent.cgroups.driver import Limits
from agent.cgroups.v2 import V2Driver

pytestmark = pytest.mark.privileged

CONTENT = b"corral-device-test-" + uuid.uuid4().hex.encode()


def root_disk() -> tuple[int, int]:
    """major:minor of the block device holding / (from /proc/self/mountinfo)."""
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            fields = line.split()
            if fields[4] == "/":
                major, minor = fields[2].split(":")
                return int(major), int(minor)
    raise AssertionError("no mount of / in /proc/self/mountinfo")


@pytest.fixture
def loop_device(tmp_path):
    """A loop device over a file that starts with CONTENT; detached afterwards."""
    backing = tmp_path / "backing.img"
    backing.write_bytes(CONTENT + bytes(1024 * 1024 - len(CONTENT)))
    device = subprocess.run(["losetup", "-f", "--show", str(backing)], capture_output=True,
                            text=True, check=True).stdout.strip()
    yield device, backing
    subprocess.run(["losetup", "-d", device], check=False)


def numbers(device: str) -> tuple[int, int]:
    rdev = os.stat(device).st_rdev
    return os.major(rdev), os.minor(rdev)


def run(daemon, *args: str) -> subprocess.CompletedProcess:
    return daemon.cli("run", "--rm", *args, check=False)


def test_default_devices_open_and_a_host_disk_made_with_mknod_does_not(daemon):
    major, minor = root_disk()
    script = ("cat /dev/null && echo null-ok; head -c 4 /dev/zero | wc -c; head -c 4 /dev/urandom | wc -c; "
              "echo x > /dev/full; echo full=$?; "
              f"mknod /dev/disk b {major} {minor} && echo mknod-ok; "
              "head -c 512 /dev/disk > /dev/null; echo read=$?")
    result = run(daemon, "busybox", "sh", "-c", script)
    out, err = result.stdout.decode(), result.stderr.decode()
    assert out.splitlines() == ["null-ok", "4", "4", "full=1", "mknod-ok", "read=1"], (out, err)
    assert "/dev/disk: Operation not permitted" in err, err


def test_an_unexposed_loop_device_is_neither_read_nor_written(daemon, loop_device):
    device, backing = loop_device
    major, minor = numbers(device)
    script = (f"mknod /dev/xdisk b {major} {minor} && echo mknod-ok; "
              "head -c 64 /dev/xdisk; echo read=$?; echo overwrite > /dev/xdisk; echo write=$?")
    result = run(daemon, "busybox", "sh", "-c", script)
    out = result.stdout.decode()
    assert out.splitlines() == ["mknod-ok", "read=1", "write=1"], (out, result.stderr.decode())
    assert result.stderr.decode().count("Operation not permitted") == 2
    assert backing.read_bytes().startswith(CONTENT)


def test_an_exposed_device_is_readable_and_its_access_letters_hold(daemon, loop_device):
    device, backing = loop_device
    length = len(CONTENT)
    read_only = run(daemon, "--device", f"{device}:/dev/xdisk:r", "busybox", "sh", "-c",
                    f"head -c {length} /dev/xdisk; echo; echo overwrite > /dev/xdisk; echo write=$?")
    assert read_only.stdout.decode().splitlines() == [CONTENT.decode(), "write=1"], read_only.stderr
    assert backing.read_bytes().startswith(CONTENT)

    writable = run(daemon, "--device", device, "busybox", "sh", "-c",
                   f"printf overwrite | dd of={device} conv=notrunc 2>/dev/null; echo write=$?")
    assert writable.stdout.decode().splitlines() == ["write=0"], writable.stderr
    subprocess.run(["sync"], check=True)
    with open(device, "rb") as handle:
        assert handle.read(9) == b"overwrite"


def test_exec_sessions_get_the_same_device_rules(daemon):
    major, minor = root_disk()
    cid = daemon.out("run", "-d", "busybox", "sleep", "60")
    try:
        result = daemon.cli("exec", cid, "sh", "-c",
                            f"mknod /dev/disk b {major} {minor}; head -c 1 /dev/disk; echo read=$?",
                            check=False)
        assert result.stdout.decode().splitlines() == ["read=1"]
        assert "Operation not permitted" in result.stderr.decode()
    finally:
        daemon.cli("rm", "-f", cid)


def test_a_bad_device_is_refused_before_anything_is_made(daemon, tmp_path):
    (tmp_path / "plain").write_text("not a device")
    result = run(daemon, "--device", str(tmp_path / "plain"), "busybox", "true")
    assert result.returncode != 0
    assert b"not a character or block device" in result.stderr
    assert daemon.out("ps", "-a", "-q") == ""


# --- the cgroup v2 BPF program, on a cgroup this test creates in the cgroup2 tree -------------

@pytest.fixture
def v2_driver():
    if cgroup_mode() not in ("hybrid", "v2"):
        pytest.skip(f"no cgroup2 tree here ({cgroup_mode()})")
    root = "/sys/fs/cgroup/unified" if cgroup_mode() == "hybrid" else "/sys/fs/cgroup"
    program = DeviceProgram()
    driver = V2Driver(root, parent=f"corral-test-{uuid.uuid4().hex[:8]}", devices=program)
    yield driver, program
    for name in driver.list_names():
        driver.remove(driver.paths_for(name))
    driver.remove_parent()
    driver.close()
    assert not os.path.exists(driver.parent_dir)


def attempt_in(driver, paths, script: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run `script` in a shell that is in the cgroup before it does anything."""
    shell = subprocess.Popen(["sh", "-c", f"read go; {script}"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd)
    try:
        driver.add_process(paths, shell.pid)
        out, err = shell.communicate(b"go\n", timeout=30)
    finally:
        if shell.poll() is None:
            shell.kill()
            shell.wait()
    return subprocess.CompletedProcess(shell.args, shell.returncode, out, err)


def test_the_v2_device_program_refuses_a_host_disk_and_allows_the_defaults(v2_driver, tmp_path):
    driver, program = v2_driver
    major, minor = root_disk()
    paths = driver.create("c1", Limits())
    driver.set_devices(paths, container_rules())
    result = attempt_in(driver, paths,
                        "cat /dev/null && echo null-ok; head -c 4 /dev/zero | wc -c; "
                        f"mknod disk b {major} {minor} && echo mknod-ok; head -c 1 disk; echo read=$?",
                        tmp_path)
    assert result.stdout.decode().split() == ["null-ok", "4", "mknod-ok", "read=1"], result.stderr
    assert b"Operation not permitted" in result.stderr
    assert program.tables() == 1

    driver.remove(paths)
    assert program.tables() == 0            # the table entry goes with the container


def test_the_v2_device_program_allows_an_exposed_device(v2_driver, tmp_path, loop_device):
    from agent.cgroups.devices import rule_for
    driver, _program = v2_driver
    device, _backing = loop_device
    paths = driver.create("c2", Limits())
    driver.set_devices(paths, container_rules([rule_for(device, "r")]))
    result = attempt_in(driver, paths, f"head -c {len(CONTENT)} {device}; echo; "
                                       f"echo x > {device} || echo write-refused", tmp_path)
    assert result.stdout.decode().splitlines() == [CONTENT.decode(), "write-refused"], result.stderr
    assert b"Operation not permitted" in result.stderr


LOAD_AND_REPORT = """
import json, sys, uuid
from pathlib import Path
from agent.cgroups.device_program import DeviceProgram
from agent.cgroups.devices import container_rules
from agent.cgroups.driver import Limits
from agent.cgroups.v2 import V2Driver
program = DeviceProgram(cache_dir=Path(sys.argv[2]))
driver = V2Driver(sys.argv[1], parent=f"corral-test-{uuid.uuid4().hex[:8]}", devices=program)
try:
    paths = driver.create("c3", Limits())
    driver.set_devices(paths, container_rules())
    loaded = program.tables()
    driver.remove(paths)
finally:
    driver.remove_parent()
    driver.close()
print(json.dumps({"from_cache": program.from_cache, "tables": loaded, "after": program.tables(),
                  "bcc": any(name == "bcc" or name.startswith("bcc.") for name in sys.modules)}))
"""


def test_the_v2_device_program_is_compiled_in_a_child_once_and_then_loaded_from_its_cache(v2_driver, tmp_path):
    """A daemon on pure v2 puts it on every container: it must not map libbcc (~85 MiB) for it,
    nor compile it again at each start."""
    import json
    import sys
    driver, _program = v2_driver
    root = os.path.dirname(driver.parent_dir)
    cache = tmp_path / "device-cache"
    runs = [json.loads(subprocess.run([sys.executable, "-c", LOAD_AND_REPORT, root, str(cache)], check=True,
                                      capture_output=True, text=True, timeout=180).stdout) for _ in range(2)]
    assert [r["from_cache"] for r in runs] == [False, True]
    assert all(r["tables"] == 1 and r["after"] == 0 and not r["bcc"] for r in runs), runs
    [kept] = list(cache.glob("*.json"))
    assert kept.stat().st_mode & 0o777 == 0o600
