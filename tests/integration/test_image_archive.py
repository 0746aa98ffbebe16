"""Making and moving images through the CLI: commit, save, load (ours and skopeo's
docker-archive), history, image inspect and image prune, against a real daemon."""
from __future__ import annotations

import json
import subprocess
import tarfile

import pytest

from tests.host import require_tool

pytestmark = pytest.mark.privileged


@pytest.fixture
def committed(daemon):
    """An image made by commit from a container that wrote a file: made:1."""
    cid = daemon.out("run", "-d", "busybox", "sh", "-c", "echo kept > /etc/made; rm /etc/passwd; sleep 600")
    daemon.cli("commit", "-c", 'CMD ["cat", "/etc/made"]', "-c", "ENV STAGE=committed", "-m", "by the test",
               cid, "made:1")
    daemon.cli("rm", "-f", cid)
    yield "made:1"
    daemon.cli("image", "rm", "made:1", check=False)


def test_commit_keeps_the_files_and_applies_the_changes(daemon, committed):
    assert daemon.out("run", "--rm", committed) == "kept"
    assert daemon.out("run", "--rm", committed, "sh", "-c", "echo $STAGE; ls /etc/passwd 2>&1 || true").splitlines() \
        == ["committed", "ls: /etc/passwd: No such file or directory"]
    details = json.loads(daemon.out("image", "inspect", committed))[0]
    assert details["Config"]["Cmd"] == ["cat", "/etc/made"] and details["RepoTags"] == ["made:1"]
    assert details["Comment"] == "by the test" and len(details["RootFS"]["Layers"]) == 2
    history = daemon.out("history", "--no-trunc", committed).splitlines()
    assert history[0].split()[0] == "IMAGE" and "by the test" in history[1] and len(history) == 3


def test_save_then_load_round_trips(daemon, committed, tmp_path):
    archive = tmp_path / "saved.tar"
    daemon.cli("save", "-o", str(archive), committed)
    with tarfile.open(archive) as saved:
        names = saved.getnames()
        manifest = json.load(saved.extractfile("manifest.json"))
    assert {"manifest.json", "index.json", "oci-layout"} <= set(names)
    assert manifest[0]["RepoTags"] == ["made:1"] and len(manifest[0]["Layers"]) == 2
    daemon.cli("image", "rm", committed)
    assert b"Loaded image: made:1" in daemon.cli("load", "-i", str(archive)).stdout
    assert daemon.out("run", "--rm", committed) == "kept"
    # Standard input works too, and loading the same content again changes nothing.
    daemon.cli("load", input=archive.read_bytes())
    assert daemon.out("history", "-q", committed).splitlines()[0] == json.loads(
        daemon.out("image", "inspect", committed))[0]["Id"].split(":")[1][:12]


def test_skopeo_reads_our_archive_and_we_read_skopeos(daemon, committed, tmp_path):
    skopeo = require_tool("skopeo", "skopeo")
    ours = tmp_path / "ours.tar"
    daemon.cli("save", "-o", str(ours), committed)
    inspected = json.loads(subprocess.run([skopeo, "inspect", f"docker-archive:{ours}"], check=True,
                                          capture_output=True).stdout)
    assert len(inspected["Layers"]) == 2
    theirs = tmp_path / "theirs.tar"
    subprocess.run([skopeo, "copy", "-q", f"docker-archive:{ours}", f"docker-archive:{theirs}:copied:2"],
                   check=True, capture_output=True)
    oci = tmp_path / "layout"
    subprocess.run([skopeo, "copy", "-q", f"docker-archive:{ours}", f"oci:{oci}:copied"], check=True,
                   capture_output=True)
    try:
        assert b"Loaded image: copied:2" in daemon.cli("load", "-i", str(theirs)).stdout
        assert daemon.out("run", "--rm", "copied:2") == "kept"
    finally:
        daemon.cli("image", "rm", "copied:2", check=False)


def test_load_refuses_what_is_not_an_image_archive(daemon, tmp_path):
    bogus = tmp_path / "bogus.tar"
    with tarfile.open(bogus, "w") as archive:
        archive.add(__file__, arcname="readme.txt")
    result = daemon.cli("load", "-i", str(bogus), check=False)
    assert result.returncode == 125 and b"neither manifest.json nor index.json" in result.stderr
    result = daemon.cli("load", "-i", __file__, check=False)
    assert result.returncode == 125 and b"not a readable tar" in result.stderr


def test_bad_change_and_unknown_container_are_refused(daemon):
    cid = daemon.out("run", "-d", "busybox", "sleep", "600")
    try:
        result = daemon.cli("commit", "-c", "RUN echo no", cid, "x:1", check=False)
        assert result.returncode == 125 and b"RUN cannot be applied" in result.stderr
    finally:
        daemon.cli("rm", "-f", cid)
    assert daemon.cli("commit", "nosuch", "x:1", check=False).returncode == 125
    assert not any(i["name"] == "x" for i in json.loads(daemon.out("images", "--format", "json")))


def test_prune_removes_only_unused_images(daemon, committed):
    cid = daemon.out("run", "-d", "busybox", "sleep", "600")
    try:
        out = daemon.out("image", "prune", "-a", "-f")
        assert "deleted: made:1" in out
        names = {(i["name"], i["tag"]) for i in json.loads(daemon.out("images", "--format", "json"))}
        assert ("busybox", "latest") in names and ("made", "1") not in names
    finally:
        daemon.cli("rm", "-f", cid)
