"""Real overlay mounts of container roots built from the busybox image and from OCI layers.

Every test works under its own tmp dir; the `rootfs` fixture releases every container it
prepared and detaches anything still mounted below the tmp dir, even when the test fails.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from agent.errors import InvalidArgument, NotFound
from agent.images.overlay import is_mounted, unmount
from agent.images.rootfs import RootfsManager
from agent.images.store import ImageStore

pytestmark = pytest.mark.privileged

BUSYBOX = Path("/bin/busybox")


def mounts_below(path: Path) -> list[str]:
    prefix = os.path.realpath(path) + "/"
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split(" ")[4].replace("\\040", " ")
        if point.startswith(prefix):
            found.append(point)
    return found


@pytest.fixture
def rootfs(tmp_path: Path):
    """A RootfsManager over a fresh store; cleans up whatever the test left mounted."""
    manager = RootfsManager(tmp_path / "state", ImageStore(tmp_path / "state"))
    yield manager
    failed = {}
    for container_dir in sorted((tmp_path / "state" / "containers").glob("*")):
        try:
            manager.release(container_dir.name)
        except Exception as error:   # noqa: BLE001 - clean up the rest first, then fail with it
            failed[container_dir.name] = str(error)
    for point in sorted(mounts_below(tmp_path), reverse=True):
        unmount(Path(point), lazy_if_busy=True)
    assert failed == {}, "release (idempotent) failed in teardown"


@pytest.fixture
def busybox(rootfs: RootfsManager):
    if not BUSYBOX.is_file():
        pytest.skip("needs /bin/busybox (apt-get install busybox-static)")
    return rootfs.images.build_busybox(BUSYBOX)


def in_root(root: Path, script: str) -> subprocess.CompletedProcess:
    chroot = shutil.which("chroot") or "/usr/sbin/chroot"
    return subprocess.run([chroot, str(root), "/bin/sh", "-c", script], capture_output=True, text=True,
                          timeout=30, env={"PATH": "/bin"})


def test_writes_land_in_upper_and_never_in_the_image_layer(rootfs, busybox):
    root = rootfs.prepare("c1", busybox)
    assert is_mounted(root)
    result = in_root(root, "echo hello > /tmp/greeting && rm /etc/hostname && cat /tmp/greeting")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello\n"
    [layer] = rootfs.images.layer_paths(busybox)
    upper = rootfs.container_dir("c1") / "upper"
    assert (upper / "tmp" / "greeting").read_text() == "hello\n"
    assert not (layer / "tmp" / "greeting").exists()
    assert (layer / "etc" / "hostname").is_file()                 # deleting in the container...
    assert stat.S_ISCHR(os.lstat(upper / "etc" / "hostname").st_mode)  # ...is a whiteout in upper
    assert stat.S_IMODE(os.stat(root).st_mode) == stat.S_IMODE(os.stat(layer).st_mode)


def test_release_leaves_nothing_mounted_or_on_disk(rootfs, busybox, tmp_path):
    root = rootfs.prepare("c2", busybox)
    in_root(root, "echo x > /root/file")
    rootfs.release("c2")
    assert not is_mounted(root)
    assert mounts_below(tmp_path) == []
    assert not rootfs.container_dir("c2").exists()
    rootfs.release("c2")        # a second release is harmless
    assert rootfs.images.layer_paths(busybox)[0].is_dir()   # the image stays


def test_two_containers_share_the_image_but_not_their_writes(rootfs, busybox):
    first, second = rootfs.prepare("a", busybox), rootfs.prepare("b", busybox)
    in_root(first, "echo mine > /tmp/only-a")
    assert (first / "tmp/only-a").exists() and not (second / "tmp/only-a").exists()
    assert in_root(second, "ls /bin/sh").returncode == 0


def test_prepare_is_idempotent_and_a_stop_keeps_what_was_written(rootfs, busybox):
    root = rootfs.prepare("c3", busybox)
    assert rootfs.prepare("c3", busybox) == root
    assert len([p for p in mounts_below(root.parent) if p == str(root)]) == 1
    in_root(root, "echo kept > /root/state")
    rootfs.unmount("c3")
    assert not is_mounted(root)
    root = rootfs.prepare("c3", busybox)
    assert (root / "root/state").read_text() == "kept\n"


def test_release_of_a_busy_root_detaches_it(rootfs, busybox, tmp_path):
    root = rootfs.prepare("busy", busybox)
    holder = subprocess.Popen(["sleep", "60"], cwd=root)
    try:
        rootfs.release("busy")
        assert not is_mounted(root) and not rootfs.container_dir("busy").exists()
    finally:
        holder.kill()
        holder.wait()


def test_failed_prepare_leaves_nothing(rootfs, busybox, tmp_path):
    gone = rootfs.images.import_tarball(_tar(tmp_path / "t.tar", [_file("f", "x")]), "gone")
    os.rename(rootfs.images.layer_paths(gone)[0], tmp_path / "moved")
    with pytest.raises(NotFound, match="missing"):
        rootfs.prepare("c4", gone)
    assert not rootfs.container_dir("c4").exists()
    # A state root overlayfs cannot name (':' separates lower dirs) fails at mount time.
    odd = RootfsManager(tmp_path / "odd:root")
    odd_image = odd.images.import_tarball(tmp_path / "t.tar", "odd")
    with pytest.raises(InvalidArgument, match="':'"):
        odd.prepare("c5", odd_image)
    assert not odd.container_dir("c5").exists() and mounts_below(tmp_path) == []


# ---------------------------------------------------------------- OCI whiteouts through the mount


def _file(name: str, text: str = "") -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    data = text.encode()
    info.size, info.mode = len(data), 0o644
    return info, data


def _dir(name: str) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    return info, None


def _tar_bytes(members: list) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def _tar(path: Path, members: list) -> Path:
    path.write_bytes(_tar_bytes(members))
    return path


def _oci_layout(layout: Path, layers: list[list]) -> Path:
    def blob(data: bytes) -> dict:
        digest = hashlib.sha256(data).hexdigest()
        (layout / "blobs/sha256").mkdir(parents=True, exist_ok=True)
        (layout / "blobs/sha256" / digest).write_bytes(data)
        return {"digest": f"sha256:{digest}", "size": len(data)}

    layout.mkdir()
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    raws = [_tar_bytes(members) for members in layers]
    config = {"os": "linux", "architecture": "amd64", "config": {"Cmd": ["sh"]},
              "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(r).hexdigest() for r in raws]}}
    manifest = {"schemaVersion": 2, "config": blob(json.dumps(config).encode()),
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **blob(gzip.compress(r))}
                           for r in raws]}
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", **blob(json.dumps(manifest).encode())}]}))
    return layout


def test_an_oci_whiteout_hides_the_lower_file_through_the_mount(rootfs, tmp_path):
    layout = _oci_layout(tmp_path / "layout", [
        [_dir("etc"), _file("etc/secret", "hidden"), _file("etc/keep", "kept"),
         _dir("data"), _file("data/old1", "1"), _file("data/old2", "2")],
        [_file("etc/.wh.secret"), _dir("data"), _file("data/.wh..wh..opq"), _file("data/new", "n")],
    ])
    image = rootfs.images.import_oci_layout(layout, "whiteout:test")
    lower = rootfs.images.layer_paths(image)[0]
    root = rootfs.prepare("wh", image)
    assert (lower / "etc/secret").read_text() == "hidden"
    assert not os.path.lexists(root / "etc/secret")
    assert (root / "etc/keep").read_text() == "kept"
    assert sorted(os.listdir(root / "etc")) == ["keep"]
    assert sorted(os.listdir(root / "data")) == ["new"]
    rootfs.release("wh")
    assert mounts_below(tmp_path) == []
