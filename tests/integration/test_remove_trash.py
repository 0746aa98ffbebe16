"""Removal through the trash (agent/runtime/trash.py): `rm` answers once the container's
directory is renamed into <root>/trash, the background deleter deletes it, and what a daemon
killed mid-delete left there (even with a root filesystem still mounted) is deleted at the next
start. Nothing of a removed container stays on the host."""
from __future__ import annotations

import glob
import json
import os

import pytest

from tests.integration import host_state
from tests.integration.corral_daemon import leftovers, until

pytestmark = pytest.mark.privileged


def trash_entries(daemon, container_id: str) -> list[str]:
    trash = daemon.root / "trash"
    return [p.name for p in trash.iterdir() if p.name.startswith(container_id)] if trash.is_dir() else []


def mounts_below(path) -> list[str]:
    prefix = str(path) + "/"
    with open("/proc/self/mountinfo") as handle:
        return [line.split()[4] for line in handle if line.split()[4].startswith(prefix)]


def test_rm_moves_the_files_out_at_once_and_the_deleter_deletes_them(daemon):
    cid = daemon.out("run", "-d", "--net", "none", "busybox", "sh", "-c",
                     "dd if=/dev/zero of=/big bs=1M count=8 2>/dev/null; mkdir -p /d/e; echo x > /d/e/f; sleep 300")
    until(lambda: daemon.inspect(cid)["State"]["Running"], "the container runs")
    until(lambda: (daemon.root / "containers" / cid / "upper" / "d" / "e" / "f").exists(), "it wrote its files")
    daemon.cli("rm", "-f", cid)
    assert not (daemon.root / "containers" / cid).exists(), "rm answered with the directory still in place"
    assert leftovers(cid) == [], "its cgroups and mount go before rm answers"
    until(lambda: trash_entries(daemon, cid) == [], "the deleter emptied the trash of it", timeout=30)
    assert daemon.cli("inspect", cid, check=False).returncode == 125


@pytest.mark.parametrize("net", ["none", "bridge"])
def test_run_rm_leaves_nothing(daemon, net):
    before = host_state.snapshot(daemon.root)
    result = daemon.cli("run", "--rm", "--net", net, "busybox", "sh", "-c", "echo hi > /x; cat /x")
    assert result.stdout.decode().strip() == "hi"
    known = {c["id"] for c in json.loads(daemon.out("ps", "-a", "--format", "json"))}
    assert host_state.leaks_after(before, daemon.root, known) == []
    until(lambda: list((daemon.root / "trash").iterdir()) == [], "the trash is empty", timeout=30)


def test_what_a_crash_left_in_the_trash_is_deleted_at_the_next_start(daemon):
    """A daemon killed after the rename into the trash, even one killed before the unmount (as
    an older daemon or a hand-made move may leave it): the next start unmounts and deletes."""
    cid = daemon.out("create", "--net", "none", "busybox", "true")
    base = daemon.root / "containers" / cid
    (base / "upper" / "written").write_text("x" * 4096)
    assert mounts_below(base), "a created container has its root mounted"
    daemon.kill()
    for cgroup in glob.glob(f"/sys/fs/cgroup/*/corral/{cid}") + glob.glob(f"/sys/fs/cgroup/corral/{cid}"):
        os.rmdir(cgroup)          # as the removal does before it renames
    (daemon.root / "trash").mkdir(exist_ok=True)
    entry = daemon.root / "trash" / f"{cid}.1.0"
    os.rename(base, entry)        # killed here: the directory is in the trash, its root still mounted
    assert mounts_below(entry), "the overlay moved with its directory"
    daemon.start()
    until(lambda: not entry.exists(), "the start emptied the trash", timeout=30)
    assert mounts_below(daemon.root) == []
    assert leftovers(cid) == []
    assert daemon.cli("inspect", cid, check=False).returncode == 125


def test_an_exited_containers_root_is_unmounted_and_mounted_again_with_its_files(daemon):
    """As docker does, the root is unmounted at the exit (so rm need not wait for the overlay's
    sync); a start mounts it again with what the container wrote."""
    cid = daemon.out("run", "-d", "--net", "none", "busybox", "sh", "-c", "cat /kept 2>/dev/null; echo kept > /kept")
    base = daemon.root / "containers" / cid
    until(lambda: daemon.inspect(cid)["State"]["Status"] == "exited", "it exited")
    until(lambda: mounts_below(base) == [], "its root is unmounted after the exit")
    daemon.cli("start", cid)
    assert daemon.out("wait", cid) == "0"
    assert daemon.out("logs", cid) == "kept", "the second run read what the first wrote"
    daemon.cli("rm", cid)
    assert leftovers(cid) == []
