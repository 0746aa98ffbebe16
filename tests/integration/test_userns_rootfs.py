"""The image's files given to a container's mapped ids, both ways, on real mounts: idmapped
layers (nothing on disk changes) and the chown fallback (metadata copied up, set-id bits kept),
and the fallback taken when the kernel refuses to idmap a layer."""
from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from agent.images.overlay import mount_overlay, unmount
from agent.userns.ownership import CHOWN, IDMAP, RootfsOwnership, shift_ownership, try_idmapped_overlay
from agent.userns.ranges import IdRange

pytestmark = pytest.mark.privileged

RANGE = IdRange(1 << 30, (1 << 30) + (1 << 20))     # far above any range a daemon allocates


@pytest.fixture
def scratch():
    if os.geteuid() != 0:
        pytest.skip("needs root: mounts overlays")
    base = Path(tempfile.mkdtemp(prefix="corral-it-rootfs-", dir="/var/tmp"))
    mounted: list[Path] = []
    yield base, mounted
    for target in mounted:
        unmount(target, lazy_if_busy=True)
    shutil.rmtree(base, ignore_errors=True)


def image(base: Path) -> list[Path]:
    """Two layers: root's files, a www-data (33) file, a set-uid binary, a symlink, a hard link."""
    lower, top = base / "lower", base / "top"
    (lower / "bin").mkdir(parents=True)
    (lower / "bin" / "tool").write_text("#!/bin/sh\n")
    os.chmod(lower / "bin" / "tool", 0o4755)
    os.symlink("tool", lower / "bin" / "link")
    os.link(lower / "bin" / "tool", lower / "bin" / "hard")
    (top / "www").mkdir(parents=True)
    (top / "www" / "index").write_text("hi")
    os.chown(top / "www", 33, 33)
    os.chown(top / "www" / "index", 33, 34)
    return [lower, top]


def mount(base: Path, mounted: list[Path], lowers: list[Path], ownership: RootfsOwnership) -> tuple[Path, str]:
    upper, work, target = base / "upper", base / "work", base / "rootfs"
    for path in (upper, work, target):
        path.mkdir()
    method = ownership.mount(lowers, upper, work, target, RANGE)
    mounted.append(target)
    return target, method


def owners(root: Path) -> dict[str, tuple[int, int]]:
    return {str(path.relative_to(root)): (path.lstat().st_uid, path.lstat().st_gid)
            for path in [root / "bin", root / "bin" / "tool", root / "bin" / "link", root / "bin" / "hard",
                         root / "www", root / "www" / "index"]}


EXPECTED = {"bin": (RANGE.uid, RANGE.gid), "bin/tool": (RANGE.uid, RANGE.gid), "bin/link": (RANGE.uid, RANGE.gid),
            "bin/hard": (RANGE.uid, RANGE.gid), "www": (RANGE.uid + 33, RANGE.gid + 33),
            "www/index": (RANGE.uid + 33, RANGE.gid + 34)}


def test_idmapped_layers_show_the_range_and_change_nothing_on_disk(scratch):
    base, mounted = scratch
    lowers = image(base)
    target, method = mount(base, mounted, lowers, RootfsOwnership())
    assert method == IDMAP
    assert owners(target) == EXPECTED
    assert (target / "bin" / "tool").stat().st_mode & stat.S_ISUID
    assert (lowers[0] / "bin" / "tool").stat().st_uid == 0 and (lowers[1] / "www").stat().st_uid == 33
    assert list((base / "upper").iterdir()) == []           # nothing copied up
    # What is written through it lands in upper as the writer's host ids (here host root).
    (target / "new").write_text("x")
    assert (base / "upper" / "new").stat().st_uid == 0


def test_the_chown_fallback_copies_up_metadata_with_shifted_owners(scratch):
    base, mounted = scratch
    lowers = image(base)
    target, method = mount(base, mounted, lowers, RootfsOwnership(method=CHOWN))
    assert method == CHOWN
    assert owners(target) == EXPECTED
    assert stat.S_IMODE((target / "bin" / "tool").stat().st_mode) == 0o4755    # chown cleared it; put back
    assert (target / "www" / "index").read_text() == "hi"
    assert (lowers[0] / "bin" / "tool").stat().st_uid == 0                    # the layer is untouched
    assert (base / "upper" / "www" / "index").lstat().st_uid == RANGE.uid + 33
    assert shift_ownership(target, RANGE) == 0                               # a second walk changes nothing


def test_a_layer_the_kernel_will_not_idmap_falls_back_to_chown(scratch):
    """An overlay cannot be idmapped: a layer that lives on one is refused by mount_setattr."""
    base, mounted = scratch
    layers = image(base)
    for name in ("o-upper", "o-work", "o-layer"):
        (base / name).mkdir()
    mount_overlay(layers, base / "o-upper", base / "o-work", base / "o-layer")
    mounted.append(base / "o-layer")
    ownership = RootfsOwnership()
    target, method = mount(base, mounted, [base / "o-layer"], ownership)
    assert method == CHOWN and ownership.method == CHOWN     # for the rest of the daemon's life
    assert owners(target) == EXPECTED
    mounted.reverse()                                          # the container's root first


def test_the_doctor_probe_works_here(scratch):
    assert try_idmapped_overlay() is None
    assert not [p for p in Path("/var/tmp").iterdir() if p.name.startswith("corral-doctor-idmap-")]


def test_a_root_others_cannot_reach_is_refused_naming_the_directory(scratch):
    from agent.errors import InvalidArgument
    from agent.images.rootfs import RootfsManager
    from agent.images.store import ImageStore
    base, _ = scratch
    base.chmod(0o755)
    closed = base / "closed"
    closed.mkdir(mode=0o700)
    store = ImageStore(closed / "root")
    image = store.build_busybox()
    manager = RootfsManager(closed / "root", store, RootfsOwnership())
    with pytest.raises(InvalidArgument, match=f"{closed}.*cannot be searched by other users") as caught:
        manager.prepare("c1", image, RANGE.to_dict())
    assert caught.value.field == "userns" and f"chmod o+x {closed}" in caught.value.hint
    assert not (closed / "root" / "containers" / "c1").exists()        # nothing left behind
    closed.chmod(0o711)
    record = RANGE.to_dict()
    rootfs = manager.prepare("c1", image, record)
    try:
        assert record["ownership"] == IDMAP                       # recorded for inspect
        directory = rootfs.parent.stat()
        assert (stat.S_IMODE(directory.st_mode), directory.st_gid) == (0o710, RANGE.gid)
        assert (rootfs / "bin" / "busybox").stat().st_uid == RANGE.uid
    finally:
        manager.release("c1")
