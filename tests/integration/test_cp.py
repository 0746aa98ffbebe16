"""`corral cp`, `corral diff` and `corral export` for real: copies both ways, tar streams on
stdin and stdout, running and stopped containers, volumes, owners with -a, and a container that
plants symlinks to host paths gets neither a write nor a read outside its own root."""
from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.privileged


@pytest.fixture(scope="module")
def box(daemon):
    """A running container with a volume at /vol."""
    daemon.cli("run", "-d", "--net", "none", "--name", "box", "-v", "cpvol:/vol", "busybox", "sleep", "600")
    yield "box"
    daemon.cli("rm", "-f", "-v", "box", check=False)
    daemon.cli("volume", "rm", "-f", "cpvol", check=False)


def sh(daemon, container: str, script: str) -> str:
    return daemon.out("exec", container, "sh", "-c", script)


def test_a_file_and_a_directory_both_ways(daemon, box, tmp_path):
    (tmp_path / "in.txt").write_text("hello\n")
    daemon.cli("cp", str(tmp_path / "in.txt"), "box:/tmp/")
    daemon.cli("cp", str(tmp_path / "in.txt"), "box:/tmp/renamed.txt")
    assert sh(daemon, box, "cat /tmp/in.txt /tmp/renamed.txt") == "hello\nhello"
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "f").write_text("deep\n")
    os.symlink("sub/f", tree / "link")
    daemon.cli("cp", str(tree), "box:/tmp/")                  # the directory into /tmp
    daemon.cli("cp", str(tree) + "/.", "box:/tmp/contents")   # its content as a new directory
    assert sh(daemon, box, "cat /tmp/tree/sub/f; readlink /tmp/tree/link; cat /tmp/contents/link") == \
        "deep\nsub/f\ndeep"
    out = tmp_path / "out"
    out.mkdir()
    daemon.cli("cp", "box:/etc/passwd", str(out))
    daemon.cli("cp", "box:/tmp/tree", str(out / "copied"))
    assert (out / "passwd").read_text().startswith("root:")
    assert (out / "copied" / "sub" / "f").read_text() == "deep\n"
    assert os.readlink(out / "copied" / "link") == "sub/f"
    refused = daemon.cli("cp", str(tree), "box:/etc/passwd", check=False)
    assert refused.returncode == 125 and b"cannot copy the directory" in refused.stderr
    missing = daemon.cli("cp", "box:/no/such", str(out), check=False)
    assert missing.returncode == 125 and b"/no/such" in missing.stderr


def test_tar_streams_on_stdin_and_stdout(daemon, box):
    stream = daemon.cli("cp", "box:/etc/passwd", "-").stdout
    with tarfile.open(fileobj=io.BytesIO(stream)) as archive:
        assert archive.getnames() == ["passwd"]
        assert archive.extractfile("passwd").read().startswith(b"root:")
    upload = io.BytesIO()
    with tarfile.open(fileobj=upload, mode="w") as archive:
        data = b"from a stream\n"
        member = tarfile.TarInfo("streamed/file")
        member.size, member.uid = len(data), 4321
        archive.addfile(member, io.BytesIO(data))
    daemon.cli("cp", "-a", "-", "box:/tmp", input=upload.getvalue())
    assert sh(daemon, box, "cat /tmp/streamed/file; stat -c %u /tmp/streamed/file") == "from a stream\n4321"
    refused = daemon.cli("cp", "-", "box:/etc/passwd", input=upload.getvalue(), check=False)
    assert refused.returncode == 125 and b"directory" in refused.stderr


def test_owners_are_root_unless_archive_mode(daemon, box, tmp_path):
    path = tmp_path / "owned"
    path.write_text("x")
    os.chown(path, 1234, 1234)
    daemon.cli("cp", str(path), "box:/tmp/plain")
    daemon.cli("cp", "-a", str(path), "box:/tmp/kept")
    assert sh(daemon, box, "stat -c %u:%g /tmp/plain /tmp/kept") == "0:0\n1234:1234"


def test_volumes_and_stopped_containers(daemon, box, tmp_path):
    (tmp_path / "v.txt").write_text("into the volume\n")
    daemon.cli("cp", str(tmp_path / "v.txt"), "box:/vol/")
    mountpoint = Path(json.loads(daemon.out("volume", "inspect", "cpvol"))[0]["Mountpoint"])
    assert (mountpoint / "v.txt").read_text() == "into the volume\n"
    daemon.cli("run", "--net", "none", "--name", "stopped", "busybox", "sh", "-c", "echo gone > /left")
    try:
        daemon.cli("cp", str(tmp_path / "v.txt"), "stopped:/added")
        out = tmp_path / "from-stopped"
        daemon.cli("cp", "stopped:/left", str(out))
        assert out.read_text() == "gone\n"
        assert "A /added" in daemon.out("diff", "stopped").splitlines()
    finally:
        daemon.cli("rm", "stopped")


def test_a_planted_symlink_never_reaches_the_host(daemon, box, tmp_path):
    host = tmp_path / "host-only"
    host.mkdir()
    (host / "secret").write_text("host secret\n")
    sh(daemon, box, f"ln -s {host} /abs; ln -s ../../../../../../../..{host} /rel; mkdir -p /d; "
                    f"ln -s {host}/secret /d/file-link")
    (tmp_path / "payload").write_text("payload\n")
    for dest in ("box:/abs/", "box:/rel/", "box:/abs/new", "box:/rel/new", "box:/d/file-link"):
        daemon.cli("cp", str(tmp_path / "payload"), dest, check=False)
    assert sorted(os.listdir(host)) == ["secret"] and (host / "secret").read_text() == "host secret\n"
    # Through a tar stream whose members go through a link the container made.
    upload = io.BytesIO()
    with tarfile.open(fileobj=upload, mode="w") as archive:
        member = tarfile.TarInfo("abs/pwned")
        member.size = 3
        archive.addfile(member, io.BytesIO(b"pwn"))
    daemon.cli("cp", "-", "box:/", input=upload.getvalue(), check=False)
    assert sorted(os.listdir(host)) == ["secret"]
    # Reading: the links are copied as links, and following them finds nothing of the host's.
    out = tmp_path / "read"
    out.mkdir()
    for source in ("box:/abs/.", "box:/rel/secret", "box:/d/file-link"):
        daemon.cli("cp", "-L", source, str(out), check=False)
        daemon.cli("cp", source, str(out), check=False)
    stream = daemon.cli("cp", "box:/d", "-").stdout + daemon.cli("cp", "-L", "box:/abs/", "-", check=False).stdout
    found = [p for p in out.rglob("*") if p.is_file() and not p.is_symlink()]
    assert all(b"host secret" not in p.read_bytes() for p in found) and b"host secret" not in stream


def test_read_only_root_and_tmpfs_are_refused(daemon, tmp_path):
    (tmp_path / "f").write_text("x")
    daemon.cli("run", "-d", "--net", "none", "--name", "sealed", "--read-only", "--tmpfs", "/scratch",
               "busybox", "sleep", "600")
    try:
        ro = daemon.cli("cp", str(tmp_path / "f"), "sealed:/f", check=False)
        assert ro.returncode == 125 and b"read-only" in ro.stderr
        tmpfs = daemon.cli("cp", str(tmp_path / "f"), "sealed:/scratch/f", check=False)
        assert tmpfs.returncode == 125 and b"/scratch" in tmpfs.stderr
        assert daemon.cli("cp", "sealed:/etc/passwd", str(tmp_path / "p")).returncode == 0
    finally:
        daemon.cli("rm", "-f", "sealed")


def test_diff_lists_added_changed_and_deleted(daemon):
    daemon.cli("run", "--net", "none", "--name", "changer", "busybox", "sh", "-c",
               "echo new > /newfile; echo x >> /etc/passwd; rm /etc/group; mkdir -p /srv/app")
    try:
        lines = daemon.out("diff", "changer").splitlines()
    finally:
        daemon.cli("rm", "changer")
    for line in ("A /newfile", "C /etc", "C /etc/passwd", "D /etc/group", "A /srv/app"):
        assert line in lines, lines
    assert lines == sorted(lines, key=lambda line: line[2:])


def test_export_is_a_tar_of_the_root(daemon, tmp_path):
    daemon.cli("run", "--net", "none", "--name", "exported", "busybox", "sh", "-c", "echo mine > /mine")
    try:
        daemon.cli("export", "-o", str(tmp_path / "root.tar"), "exported")
        piped = daemon.cli("export", "exported").stdout
    finally:
        daemon.cli("rm", "exported")
    with tarfile.open(tmp_path / "root.tar") as archive:
        names = archive.getnames()
        assert "bin/busybox" in names and "etc/passwd" in names
        assert archive.extractfile("mine").read() == b"mine\n"
        assert archive.getmember("bin/sh").issym()
    with tarfile.open(fileobj=io.BytesIO(piped)) as archive:
        assert "bin/busybox" in archive.getnames()


def test_a_user_namespace_container_owns_its_volume_and_copies(daemon, tmp_path):
    """--userns auto: the container's root (a host id of its range) can write a new volume, and
    files copied in belong to the container's root as it sees it, not to the host's root."""
    (tmp_path / "f").write_text("x")
    daemon.cli("run", "-d", "--net", "none", "--userns", "auto", "--name", "mapped", "-v", "uvol:/data",
               "busybox", "sleep", "600")
    try:
        assert sh(daemon, "mapped", "echo ok > /data/w && cat /data/w") == "ok"
        daemon.cli("cp", str(tmp_path / "f"), "mapped:/tmp/f")
        daemon.cli("cp", str(tmp_path / "f"), "mapped:/data/f")
        assert sh(daemon, "mapped", "stat -c %u:%g /tmp/f /data/f") == "0:0\n0:0"
    finally:
        daemon.cli("rm", "-f", "-v", "mapped")
        daemon.cli("volume", "rm", "-f", "uvol")
