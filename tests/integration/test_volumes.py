"""Volumes for real, through the CLI of a real daemon: named volumes keep data across
containers and a daemon restart, a new volume is filled from the image, a volume in use cannot
be removed, `rm -v` and `--rm` take anonymous volumes along, prune, `--mount` and its errors,
and `corral_volume_bytes` on /metrics."""
from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest

from tests.integration.corral_daemon import running_daemon

pytestmark = pytest.mark.privileged


def run(daemon, *args: str, check: bool = True):
    return daemon.cli("run", "--net", "none", *args, check=check)


def volume_names(daemon) -> set[str]:
    return set(daemon.out("volume", "ls", "-q").split())


def test_a_named_volume_keeps_data_across_containers_and_a_daemon_restart(tmp_path):
    with running_daemon() as daemon:
        run(daemon, "--rm", "-v", "keep:/data", "busybox", "sh", "-c", "echo kept > /data/file")
        assert "keep" in volume_names(daemon)
        assert run(daemon, "--rm", "-v", "keep:/other:ro", "busybox", "cat", "/other/file").stdout == b"kept\n"
        daemon.stop()
        daemon.start()
        assert "keep" in volume_names(daemon)
        assert run(daemon, "--rm", "-v", "keep:/data", "busybox", "cat", "/data/file").stdout == b"kept\n"
        denied = run(daemon, "--rm", "-v", "keep:/data:ro", "busybox", "sh", "-c", "echo x > /data/file", check=False)
        assert denied.returncode != 0 and b"Read-only" in denied.stderr


def test_a_new_volume_is_filled_from_the_image_once(daemon):
    run(daemon, "--rm", "-v", "etcfill:/etc", "busybox", "true")
    shown = run(daemon, "--rm", "-v", "etcfill:/mnt", "busybox", "cat", "/mnt/passwd").stdout.decode()
    assert shown.startswith("root:")
    # Not empty any more: a later container's image content does not overwrite what is there.
    run(daemon, "--rm", "-v", "etcfill:/mnt", "busybox", "sh", "-c", "echo mine > /mnt/passwd")
    assert run(daemon, "--rm", "-v", "etcfill:/etc", "busybox", "cat", "/etc/passwd").stdout == b"mine\n"
    # nocopy: a new volume stays empty.
    listed = run(daemon, "--rm", "-v", "etcnocopy:/etc:nocopy", "busybox", "/bin/ls", "-A", "/etc")
    assert listed.stdout == b""
    inspected = json.loads(daemon.out("volume", "inspect", "etcfill"))[0]
    assert inspected["Name"] == "etcfill" and inspected["Driver"] == "local"
    assert Path(inspected["Mountpoint"], "passwd").read_text() == "mine\n"
    daemon.cli("volume", "rm", "etcfill", "etcnocopy")


def test_a_volume_in_use_is_not_removed_and_names_the_container(daemon):
    daemon.cli("volume", "create", "--label", "team=web", "busy")
    run(daemon, "-d", "--name", "holder", "-v", "busy:/data", "busybox", "sleep", "300")
    try:
        refused = daemon.cli("volume", "rm", "busy", check=False)
        assert refused.returncode == 125 and b"holder" in refused.stderr and b"in use" in refused.stderr
        assert daemon.out("volume", "ls", "--filter", "label=team=web", "--format", "{{.Name}} {{.Links}}") == "busy 1"
        assert "busy" not in daemon.out("volume", "ls", "-q", "--filter", "dangling=true").split()
        forced = daemon.cli("volume", "rm", "-f", "busy", check=False)
        assert forced.returncode == 125 and b"holder" in forced.stderr
        daemon.cli("stop", "-t", "1", "holder")
        assert daemon.cli("volume", "rm", "busy", check=False).returncode == 125   # stopped still holds it
    finally:
        daemon.cli("rm", "-f", "holder")
    assert json.loads(daemon.out("volume", "inspect", "busy"))[0]["Labels"] == {"team": "web"}
    assert daemon.out("volume", "rm", "busy") == "busy"
    missing = daemon.cli("volume", "rm", "busy", check=False)
    assert missing.returncode == 125 and b"busy" in missing.stderr
    assert daemon.cli("volume", "rm", "-f", "busy").returncode == 0


def test_anonymous_volumes_go_with_rm_v_and_prune_takes_the_unused(daemon):
    before = volume_names(daemon)
    cid = run(daemon, "-d", "-v", "/scratch", "busybox", "sh", "-c", "echo x > /scratch/f").stdout.decode().strip()
    daemon.cli("wait", cid)
    anonymous = volume_names(daemon) - before
    assert len(anonymous) == 1 and len(next(iter(anonymous))) == 64
    daemon.cli("rm", "-v", cid)
    assert volume_names(daemon) == before
    # --rm removes them too.
    run(daemon, "--rm", "-v", "/scratch", "busybox", "true")
    assert volume_names(daemon) == before
    # Left behind by a plain rm: prune removes anonymous ones, -a named ones too, used ones never.
    cid = run(daemon, "-d", "-v", "/scratch", "busybox", "sh", "-c", "echo x > /scratch/f").stdout.decode().strip()
    daemon.cli("wait", cid)
    daemon.cli("rm", cid)
    daemon.cli("volume", "create", "named-unused")
    daemon.cli("volume", "create", "named-used")
    run(daemon, "-d", "--name", "user", "-v", "named-used:/d", "busybox", "sleep", "300")
    try:
        refused = daemon.cli("volume", "prune", input=b"n\n")
        assert b"Are you sure" in refused.stderr and len(volume_names(daemon) - before) == 3
        pruned = daemon.out("volume", "prune", "-f")
        assert "Deleted Volumes:" in pruned and "Total reclaimed space: 2B" in pruned
        assert volume_names(daemon) - before == {"named-unused", "named-used"}
        daemon.out("volume", "prune", "-f", "-a")
        assert volume_names(daemon) - before == {"named-used"}
    finally:
        daemon.cli("rm", "-f", "user")
        daemon.cli("volume", "rm", "named-used")


def test_mount_flag_variants(daemon, tmp_path):
    (tmp_path / "hostfile").write_text("from host\n")
    bind = run(daemon, "--rm", "--mount", f"type=bind,source={tmp_path},target=/h,readonly", "busybox",
               "sh", "-c", "cat /h/hostfile; echo x > /h/new", check=False)
    assert bind.stdout == b"from host\n" and b"Read-only" in bind.stderr and not (tmp_path / "new").exists()
    run(daemon, "--rm", "--mount", "type=volume,src=mounted,dst=/v", "busybox", "sh", "-c", "echo v > /v/f")
    assert run(daemon, "--rm", "--mount", "source=mounted,target=/w", "busybox", "cat", "/w/f").stdout == b"v\n"
    daemon.cli("volume", "rm", "mounted")
    tmpfs = run(daemon, "--rm", "--mount", "type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=1770", "busybox",
                "sh", "-c", "stat -c %a /t; grep ' /t ' /proc/mounts").stdout.decode()
    assert tmpfs.startswith("1770\n") and "size=1024k" in tmpfs


@pytest.mark.parametrize("value, words", [
    ("type=bind,source=/tmp,target=/x,colour=red", ["--mount", "unknown key 'colour'"]),
    ("type=nfs,target=/x", ["type 'nfs'"]),
    ("type=volume,source=bad/name,target=/x", ["--mount", "bad/name", "not a volume name"]),
    ("type=tmpfs,target=/x,tmpfs-size=lots", ["tmpfs-size", "lots"]),
    ("type=tmpfs,source=x,target=/x", ["no source"]),
    ("type=bind,target=/x", ["bind mount needs source"]),
    ("source=v1", ["target is required"]),
    ("type=volume,target=relative", ["must be an absolute path"]),
])
def test_bad_mount_values_are_refused_naming_the_key(daemon, value, words):
    result = daemon.cli("create", "--mount", value, "busybox", check=False)
    err = result.stderr.decode()
    assert result.returncode == 125 and all(word in err for word in words), err


def test_bad_volume_input_leaves_nothing_behind(daemon):
    before = volume_names(daemon)
    for argv in (["-v", "fresh-one:/data", "-v", "/data", "busybox"],             # duplicate mount point
                 ["-v", "fresh-two:/data", "busybox", "/no/such/program"]):   # fails at start
        assert run(daemon, "--rm", *argv, check=False).returncode != 0
    assert volume_names(daemon) == before
    assert daemon.out("ps", "-a", "-q") == ""


def test_volume_bytes_metric(daemon):
    run(daemon, "--rm", "-v", "measured:/data", "busybox", "sh", "-c", "head -c 12345 /dev/zero > /data/f")
    url = f"http://127.0.0.1:{daemon.metrics_port}/metrics"
    deadline = time.monotonic() + 30
    while True:
        text = urllib.request.urlopen(url, timeout=10).read().decode()
        if 'corral_volume_bytes{volume="measured"} 12345.0' in text:
            break
        assert time.monotonic() < deadline, [line for line in text.splitlines() if "volume" in line]
        time.sleep(0.5)
    assert "# TYPE corral_volume_bytes gauge" in text
    daemon.cli("volume", "rm", "measured")
