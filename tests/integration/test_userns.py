"""`--userns auto` for real: container root is an unprivileged host uid from a range of its
own (/etc/subuid, user corral), the image's files are its own, volumes and `exec` work, ranges
are disjoint and survive a daemon restart, and the cgroup stays the host's. The escape
battery runs under --userns auto too (test_escape.py, parametrized)."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.integration.corral_daemon import running_daemon

pytestmark = pytest.mark.privileged

GiB = 1 << 30


@pytest.fixture(scope="module")
def daemon():
    with running_daemon("--userns", "auto") as instance:
        yield instance


@pytest.fixture
def volume():
    """A host directory a container may reach (its parents searchable by others)."""
    path = Path(tempfile.mkdtemp(prefix="corral-userns-", dir="/var/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def inspect(daemon, cid: str) -> dict:
    return json.loads(daemon.out("inspect", cid))[0]


def mapping(info: dict) -> tuple[int, int, int]:
    uid_map = info["HostConfig"]["IDMappings"]["UidMap"][0]
    gid_map = info["HostConfig"]["IDMappings"]["GidMap"][0]
    _, uid, size = map(int, uid_map.split(":"))
    return uid, int(gid_map.split(":")[1]), size


def status_ids(pid: int) -> tuple[int, int]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["Uid"].split()[0]), int(fields["Gid"].split()[0])


def test_root_inside_is_an_unprivileged_uid_on_the_host(daemon):
    cid = daemon.out("run", "-d", "--net", "none", "busybox", "sleep", "60")
    try:
        info = inspect(daemon, cid)
        uid, gid, size = mapping(info)
        assert info["HostConfig"]["UsernsMode"] == "auto" and size == 65536 and uid >= 65536
        assert status_ids(info["State"]["Pid"]) == (uid, gid)
        inside = daemon.out("exec", cid, "sh", "-c", "id -u; id -g; cat /proc/self/uid_map").split()
        assert inside == ["0", "0", "0", str(uid), "65536"]
        assert info["HostConfig"]["IDMappings"]["Ownership"] in ("idmapped", "chown")
    finally:
        daemon.cli("rm", "-f", cid)


def test_the_images_files_are_roots_inside_and_the_ranges_on_the_host(daemon):
    result = daemon.cli("run", "--rm", "--net", "none", "busybox", "sh", "-c",
                        "stat -c '%u %g %n' / /bin/busybox /etc/passwd; head -1 /etc/passwd; "
                        "echo new > /etc/motd && stat -c '%u %g %n' /etc/motd && chown 7:7 /etc/motd && "
                        "stat -c '%u %g' /etc/motd")
    lines = result.stdout.decode().splitlines()
    assert lines[:3] == ["0 0 /", "0 0 /bin/busybox", "0 0 /etc/passwd"]
    assert lines[3].startswith("root:")
    assert lines[4:] == ["0 0 /etc/motd", "7 7"]


def test_what_the_container_writes_belongs_to_its_range_on_the_host(daemon):
    cid = daemon.out("run", "-d", "--net", "none", "busybox", "sh", "-c",
                     "mkdir /data && touch /data/f && chown 33:44 /data/f && sleep 60")
    try:
        info = inspect(daemon, cid)
        uid, gid, _ = mapping(info)
        upper = Path(info["Rootfs"]["UpperDir"])
        for _ in range(100):
            if (upper / "data" / "f").exists() and (upper / "data" / "f").stat().st_uid != uid:
                break
            os.sched_yield()
        made = (upper / "data" / "f").stat()
        assert (made.st_uid, made.st_gid) == (uid + 33, gid + 44)
        assert (upper / "data").stat().st_uid == uid
        rootfs = Path(info["Rootfs"]["Path"]).stat()
        assert (rootfs.st_uid, rootfs.st_gid) == (uid, gid)          # the image's "/" is mapped root's
    finally:
        daemon.cli("rm", "-f", cid)


def test_a_volume_works_with_its_host_owners_mapped(daemon, volume):
    mine = volume / "mine"
    mine.mkdir()
    (volume / "hosts-root").write_text("host\n")
    probe = daemon.out("run", "-d", "--net", "none", "busybox", "sleep", "60")
    try:
        uid, gid, _ = mapping(inspect(daemon, probe))
    finally:
        daemon.cli("rm", "-f", probe)
    # The next container gets the same (lowest free) range: give it the directory.
    os.chown(mine, uid, gid)
    result = daemon.cli("run", "--rm", "--net", "none", "-v", f"{volume}:/v", "busybox", "sh", "-c",
                        "echo hi > /v/mine/f; echo mine=$?; stat -c '%u' /v/mine/f /v/hosts-root; "
                        "cat /v/hosts-root; echo x >> /v/hosts-root; echo host=$?")
    lines = result.stdout.decode().split()
    # Host root's file is nobody's inside (65534): readable, not writable; the mapped dir is root's.
    assert lines == ["mine=0", "0", "65534", "host", "host=1"], result.stderr
    made = (mine / "f").stat()
    assert (made.st_uid, made.st_gid) == (uid, gid) and (volume / "hosts-root").read_text() == "host\n"


def test_exec_joins_the_user_namespace(daemon):
    cid = daemon.out("run", "-d", "--net", "none", "busybox", "sleep", "60")
    try:
        info = inspect(daemon, cid)
        uid, _, _ = mapping(info)
        assert daemon.out("exec", cid, "sh", "-c", "id -u; touch /from-exec; readlink /proc/self/ns/user").split()[0] \
            == "0"
        assert daemon.out("exec", cid, "readlink", "/proc/self/ns/user") == \
            os.readlink(f"/proc/{info['State']['Pid']}/ns/user")
        made = (Path(info["Rootfs"]["UpperDir"]) / "from-exec").stat()
        assert made.st_uid == uid
    finally:
        daemon.cli("rm", "-f", cid)


def test_user_switches_inside_the_range(daemon):
    cid = daemon.out("run", "-d", "--net", "none", "-u", "1000:1001", "busybox", "sleep", "60")
    try:
        info = inspect(daemon, cid)
        uid, gid, _ = mapping(info)
        assert status_ids(info["State"]["Pid"]) == (uid + 1000, gid + 1001)
        assert daemon.out("exec", cid, "id", "-u") == "1000"      # exec runs as the same user
    finally:
        daemon.cli("rm", "-f", cid)


def test_two_containers_get_disjoint_ranges(daemon):
    first = daemon.out("run", "-d", "--net", "none", "busybox", "sleep", "60")
    second = daemon.out("run", "-d", "--net", "none", "busybox", "sleep", "60")
    try:
        a, b = mapping(inspect(daemon, first)), mapping(inspect(daemon, second))
        assert abs(a[0] - b[0]) >= 65536 and abs(a[1] - b[1]) >= 65536
        pids = [inspect(daemon, cid)["State"]["Pid"] for cid in (first, second)]
        assert status_ids(pids[0])[0] == a[0] and status_ids(pids[1])[0] == b[0]
    finally:
        daemon.cli("rm", "-f", first, second)


def test_a_daemon_restart_keeps_the_allocations(daemon):
    first = daemon.out("run", "-d", "--net", "none", "busybox", "sleep", "120")
    created = daemon.out("create", "--net", "none", "busybox", "true")
    try:
        held = {mapping(inspect(daemon, cid)) for cid in (first, created)}
        daemon.stop()
        daemon.start()
        assert {mapping(inspect(daemon, cid)) for cid in (first, created)} == held
        third = daemon.out("run", "-d", "--net", "none", "busybox", "sleep", "60")
        new = mapping(inspect(daemon, third))
        assert all(abs(new[0] - old[0]) >= 65536 for old in held), (new, held)
        daemon.cli("rm", "-f", third)
    finally:
        daemon.cli("rm", "-f", first, created)


def test_removal_frees_the_range(daemon):
    cid = daemon.out("run", "-d", "--net", "none", "busybox", "sleep", "60")
    held = mapping(inspect(daemon, cid))
    daemon.cli("rm", "-f", cid)
    again = daemon.out("run", "-d", "--net", "none", "busybox", "sleep", "60")
    try:
        assert mapping(inspect(daemon, again)) == held
    finally:
        daemon.cli("rm", "-f", again)


def test_the_cgroup_stays_the_hosts_even_with_sys_admin(daemon):
    """Delegation is not given: the container's cgroup files belong to host root, which is
    nobody inside, so even a container allowed to remount its /sys/fs/cgroup rw (SYS_ADMIN,
    no seccomp) cannot write its limits."""
    script = ("stat -c '%u' /sys/fs/cgroup/memory/memory.limit_in_bytes; "
              "mount -o remount,rw,bind /sys/fs/cgroup/memory; "
              f"echo {GiB} > /sys/fs/cgroup/memory/memory.limit_in_bytes; echo write=$?; "
              "echo $$ > /sys/fs/cgroup/memory/cgroup.procs; echo procs=$?; "
              "mkdir /sys/fs/cgroup/memory/child; echo mkdir=$?; echo done; sleep 60")
    cid = daemon.out("run", "-d", "--net", "none", "-m", "64m", "--cap-add", "SYS_ADMIN",
                     "--security-opt", "seccomp=unconfined", "busybox", "sh", "-c", script)
    try:
        info = inspect(daemon, cid)
        for _ in range(200):
            lines = daemon.cli("logs", cid).stdout.decode().split()
            if "done" in lines:
                break
            os.sched_yield()
        assert lines[0] == "65534" and {"write=1", "procs=1", "mkdir=1"} <= set(lines), lines
        directory = Path(info["Cgroup"]["Paths"]["controllers"]["memory"])
        assert int((directory / "memory.limit_in_bytes").read_text()) == 64 << 20
        for path in (directory, directory / "memory.limit_in_bytes", directory / "cgroup.procs"):
            assert path.stat().st_uid == 0 and path.stat().st_gid == 0
        assert not (directory / "child").exists()
    finally:
        daemon.cli("rm", "-f", cid)


def test_the_host_opt_out_and_clear_errors(daemon):
    assert daemon.out("run", "--rm", "--userns", "host", "--net", "none", "busybox", "cat",
                      "/proc/self/uid_map").split() == ["0", "0", "4294967295"]
    for flags, said in ((("--privileged",), "--privileged"), (("--net", "host"), "--net host")):
        result = daemon.cli("run", "--rm", *flags, "busybox", "true", check=False)
        assert result.returncode == 125 and f"{said} cannot be used with the daemon's default --userns auto" \
            in result.stderr.decode()
    result = daemon.cli("run", "--rm", "--userns", "remap", "busybox", "true", check=False)
    assert result.returncode == 125 and "--userns" in result.stderr.decode()
    assert daemon.cli("run", "--rm", "--privileged", "--userns", "host", "--net", "none", "busybox",
                      "true").returncode == 0
    assert daemon.out("ps", "-a", "-q") == ""
