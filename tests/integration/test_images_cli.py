"""Images through the CLI: import a rootfs tarball as `docker export` writes it, run it, remove it."""
from __future__ import annotations

import json

import pytest

from tests.integration.corral_daemon import rootfs_tarball

pytestmark = pytest.mark.privileged


@pytest.fixture
def tarball(tmp_path):
    return rootfs_tarball(tmp_path / "export.tar.gz", ("sh", "cat", "echo"), {"etc/motd": "imported\n"})


def test_import_run_and_remove(daemon, tarball):
    daemon.cli("image", "import", str(tarball), "--name", "mini:1")
    images = json.loads(daemon.out("images", "--format", "json"))
    assert any(i["name"] == "mini" and i["tag"] == "1" for i in images)
    assert daemon.out("run", "--rm", "mini:1", "/bin/cat", "/etc/motd") == "imported"
    cid = daemon.out("run", "-d", "mini:1", "/bin/sh", "-c", "read x")
    refused = daemon.cli("image", "rm", "mini:1", check=False)
    assert refused.returncode == 125 and b"in use" in refused.stderr.lower()
    daemon.cli("rm", "-f", cid)
    daemon.cli("image", "rm", "mini:1")
    assert not any(i["name"] == "mini" for i in json.loads(daemon.out("images", "--format", "json")))


def test_import_of_a_missing_file_names_it(daemon, tmp_path):
    result = daemon.cli("image", "import", str(tmp_path / "nope.tar"), "--name", "x:1", check=False)
    assert result.returncode == 125 and b"nope.tar" in result.stderr


def test_busybox_is_the_embedded_default(daemon):
    images = json.loads(daemon.out("images", "--format", "json"))
    assert any(i["name"] == "busybox" and i["tag"] == "latest" for i in images)
