"""The image store: tarball and OCI layout imports, safety of extraction, dedupe, naming, removal.

Archives are built by the tests in tmp dirs. Whiteout conversion writes a 0/0 character device
and a trusted.* xattr, which only root may do; those checks skip without root.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import tarfile
from pathlib import Path

import pytest

from agent.errors import Conflict, InvalidArgument, KernelError, NotFound
from agent.images.model import UNTAGGED, ImageConfig
from agent.images.overlay import is_mounted, overlay_options
from agent.images.store import ImageStore


def member(name: str, data: bytes | str = b"", *, kind: bytes = tarfile.REGTYPE, mode: int = 0o644,
           link: str = "") -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname, info.mtime = kind, mode, link, 1_600_000_000
    payload = data.encode() if isinstance(data, str) else data
    if kind == tarfile.REGTYPE:
        info.size = len(payload)
        return info, payload
    return info, None


def directory(name: str, mode: int = 0o755):
    return member(name, kind=tarfile.DIRTYPE, mode=mode)


def write_tar(path: Path, members: list, compression: str = "") -> Path:
    mode = f"w:{compression}" if compression else "w"
    with tarfile.open(path, mode) as archive:
        for info, payload in members:
            archive.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return path


ROOTFS = [
    directory("bin"), directory("etc"), directory("tmp", 0o1777),
    member("bin/tool", "#!/bin/sh\necho tool\n", mode=0o4755),
    member("bin/tool-link", kind=tarfile.LNKTYPE, link="bin/tool"),
    member("bin/sh", kind=tarfile.SYMTYPE, link="/bin/tool"),
    member("etc/hostname", "box\n"),
    member("etc/os-release", kind=tarfile.SYMTYPE, link="../usr/lib/os-release"),
    member("dev/null", kind=tarfile.CHRTYPE, mode=0o666),
    member("run/fifo", kind=tarfile.FIFOTYPE),
]


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "state")


def staging_left(store: ImageStore) -> list[str]:
    return sorted(os.listdir(store.dir / "tmp"))


def layer_dirs(store: ImageStore) -> list[str]:
    return sorted(name for name in os.listdir(store.layers_dir) if not name.endswith(".json"))


# ---------------------------------------------------------------- tarballs


def test_import_tarball_extracts_a_rootfs_preserving_modes_and_links(store, tmp_path):
    image = store.import_tarball(write_tar(tmp_path / "rootfs.tar", ROOTFS), "mybox")
    assert (image.name, image.tag) == ("mybox", "latest")
    assert image.config == ImageConfig()
    [layer] = store.layer_paths(image)
    assert (layer / "etc/hostname").read_text() == "box\n"
    assert stat.S_IMODE(os.stat(layer / "bin/tool").st_mode) == 0o4755
    assert stat.S_IMODE(os.stat(layer / "tmp").st_mode) == 0o1777
    assert os.readlink(layer / "bin/sh") == "/bin/tool"      # absolute: resolved inside the container
    assert os.readlink(layer / "etc/os-release") == "../usr/lib/os-release"
    assert os.stat(layer / "bin/tool-link").st_ino == os.stat(layer / "bin/tool").st_ino
    assert stat.S_ISFIFO(os.lstat(layer / "run/fifo").st_mode)
    assert not (layer / "dev/null").exists()
    metadata = json.loads(layer.with_suffix(".json").read_text())
    assert metadata["notes"] == ["skipped character device dev/null (0:0)"]
    assert image.size == metadata["size"] == len("#!/bin/sh\necho tool\n") + len("box\n")
    assert staging_left(store) == []


def test_import_with_config_and_lookup_by_name_id_and_prefix(store, tmp_path):
    config = ImageConfig(entrypoint=["/bin/tool"], cmd=["--help"], env=["A=1"], workdir="/etc")
    image = store.import_tarball(write_tar(tmp_path / "r.tar", ROOTFS), "team/app:1.0", config)
    assert store.get("team/app:1.0") == image
    assert store.get(image.id) == image
    assert store.get(image.short_id) == image
    assert store.get("sha256:" + image.short_id[:6]) == image
    assert store.get("team/app:1.0").config == config
    assert [i.reference for i in store.list()] == ["team/app:1.0"]
    # A second store on the same root sees the same thing: the index is on disk.
    assert ImageStore(store.dir.parent).get("team/app:1.0") == image


def test_a_record_is_parsed_once_and_again_when_another_process_changes_it(store, tmp_path):
    first = store.import_tarball(write_tar(tmp_path / "r.tar", ROOTFS), "team/app:1.0")
    assert store.get("team/app:1.0") is store.get("team/app:1.0"), "the same version is parsed once"
    # Another process (a second store on the same root) gives the name to new content.
    other = ImageStore(store.dir.parent)
    second = other.import_tarball(write_tar(tmp_path / "s.tar", [member("etc/other", "x")]), "team/app:1.0")
    assert second.id != first.id
    assert store.get("team/app:1.0") == second
    assert store.get(first.id).id == first.id           # the old content, untagged now
    other.remove("team/app:1.0", in_use_by=[])
    with pytest.raises(NotFound):
        store.get("team/app:1.0")


def test_get_unknown_image_names_it_and_says_what_to_do(store):
    with pytest.raises(NotFound) as info:
        store.get("nosuch:1.0")
    assert "'nosuch:1.0'" in str(info.value)
    assert "corral images" in str(info.value) and "corral image import" in str(info.value)


def test_same_content_is_stored_once_whatever_the_compression(store, tmp_path):
    plain = store.import_tarball(write_tar(tmp_path / "a.tar", ROOTFS), "a")
    gz = store.import_tarball(write_tar(tmp_path / "b.tar.gz", ROOTFS, "gz"), "b")
    xz = store.import_tarball(write_tar(tmp_path / "c.tar.xz", ROOTFS, "xz"), "c")
    again = store.import_tarball(tmp_path / "a.tar", "a")
    assert plain.layers == gz.layers == xz.layers and plain.id == gz.id == xz.id
    assert again == plain                       # same name, same content: nothing changes
    assert len(layer_dirs(store)) == 1
    assert sorted(i.reference for i in store.list()) == ["a:latest", "b:latest", "c:latest"]
    assert plain.layers[0] == "sha256:" + hashlib.sha256((tmp_path / "a.tar").read_bytes()).hexdigest()


@pytest.mark.parametrize("members, complaint", [
    ([member("../evil", "x")], "'../evil' climbs out of the root"),
    ([member("/etc/evil", "x")], "'/etc/evil' has an absolute path"),
    ([directory("a"), member("a/../../evil", "x")], "'a/../../evil' climbs out of the root"),
    ([member("out", kind=tarfile.SYMTYPE, link="/tmp"), member("out/evil", "x")],
     "'out/evil' would be written through the symbolic link 'out'"),
    ([member("etc", kind=tarfile.SYMTYPE, link="../../.."), member("etc/passwd", "x")],
     "'etc' is a symbolic link to '../../..', outside the root"),
    ([member("hard", kind=tarfile.LNKTYPE, link="/etc/passwd")], "'hard' is a hard link to '/etc/passwd'"),
    ([member("hard", kind=tarfile.LNKTYPE, link="../../etc/passwd")], "outside the root"),
    ([member("hard", kind=tarfile.LNKTYPE, link="missing")], "not earlier in the archive"),
])
def test_traversal_attempts_are_refused_and_leave_nothing(store, tmp_path, members, complaint):
    (tmp_path / "victim").mkdir()
    with pytest.raises(InvalidArgument) as info:
        store.import_tarball(write_tar(tmp_path / "victim" / "evil.tar", members), "evil")
    assert complaint in str(info.value)
    assert "evil.tar" in str(info.value)
    assert os.listdir(tmp_path / "victim") == ["evil.tar"]
    assert not (tmp_path / "evil").exists() and not (tmp_path.parent / "evil").exists()
    assert store.list() == [] and layer_dirs(store) == [] and staging_left(store) == []


def test_not_a_tar_and_missing_file_are_clear_errors(store, tmp_path):
    (tmp_path / "notes.txt").write_text("hello, I am not a tarball\n" * 50)
    with pytest.raises(InvalidArgument, match="is not a readable tar archive"):
        store.import_tarball(tmp_path / "notes.txt", "x")
    (tmp_path / "broken.tar.gz").write_bytes(gzip.compress(b"x" * 100)[:30])
    with pytest.raises(InvalidArgument, match="broken.tar.gz"):
        store.import_tarball(tmp_path / "broken.tar.gz", "x")
    with pytest.raises(NotFound, match="'.*nosuch.tar' not found"):
        store.import_tarball(tmp_path / "nosuch.tar", "x")
    with pytest.raises(InvalidArgument, match="'Bad Name'"):
        store.import_tarball(tmp_path / "notes.txt", "Bad Name")
    assert store.list() == [] and staging_left(store) == []


def test_later_members_replace_earlier_ones(store, tmp_path):
    members = [member("f", "one"), member("f", "two"), member("d", kind=tarfile.SYMTYPE, link="x"),
               directory("d"), member("d/inside", "ok")]
    [layer] = store.layer_paths(store.import_tarball(write_tar(tmp_path / "t.tar", members), "t"))
    assert (layer / "f").read_text() == "two"
    assert (layer / "d").is_dir() and not (layer / "d").is_symlink()


# ---------------------------------------------------------------- naming and removal


def test_remove_is_refused_while_containers_use_the_image(store, tmp_path):
    image = store.import_tarball(write_tar(tmp_path / "r.tar", ROOTFS), "busy")
    with pytest.raises(Conflict) as info:
        store.remove("busy", in_use_by=["web", "db"])
    assert "'busy'" in str(info.value) and "web, db" in str(info.value) and "corral rm" in str(info.value)
    assert store.get("busy") == image and len(layer_dirs(store)) == 1


def test_remove_deletes_only_layers_no_other_image_uses(store, tmp_path):
    write_tar(tmp_path / "r.tar", ROOTFS)
    write_tar(tmp_path / "s.tar", [member("only-s", "s")])
    store.import_tarball(tmp_path / "r.tar", "one")
    store.import_tarball(tmp_path / "r.tar", "two:x")
    store.import_tarball(tmp_path / "s.tar", "team/solo")
    store.remove("one", in_use_by=[])
    assert len(layer_dirs(store)) == 2 and store.get("two:x")
    store.remove("two:x", in_use_by=[])
    store.remove("team/solo:latest", in_use_by=[])
    assert store.list() == [] and layer_dirs(store) == []
    assert os.listdir(store.layers_dir) == [] and os.listdir(store.dir / "repositories") == []
    with pytest.raises(NotFound):
        store.remove("one", in_use_by=[])


def test_retagging_keeps_the_old_content_as_untagged_until_removed_by_id(store, tmp_path):
    old = store.import_tarball(write_tar(tmp_path / "v1.tar", [member("v", "1")]), "app")
    new = store.import_tarball(write_tar(tmp_path / "v2.tar", [member("v", "2")]), "app")
    assert store.get("app") == new
    dangling = store.get(old.short_id)
    assert (dangling.name, dangling.tag, dangling.layers) == (UNTAGGED, UNTAGGED, old.layers)
    assert sorted(i.reference for i in store.list()) == ["<none>:<none>", "app:latest"]
    store.remove(old.short_id, in_use_by=[])
    assert [i.reference for i in store.list()] == ["app:latest"] and len(layer_dirs(store)) == 1


def test_removing_by_id_refuses_when_several_names_share_it(store, tmp_path):
    image = store.import_tarball(write_tar(tmp_path / "r.tar", ROOTFS), "a")
    store.import_tarball(tmp_path / "r.tar", "b")
    with pytest.raises(Conflict, match="a:latest, b:latest"):
        store.remove(image.short_id, in_use_by=[])


def test_missing_layer_directory_is_reported(store, tmp_path):
    image = store.import_tarball(write_tar(tmp_path / "r.tar", ROOTFS), "gone")
    shutil.rmtree(store.layer_paths(image)[0])
    with pytest.raises(NotFound, match="missing"):
        store.layer_paths(image)


# ---------------------------------------------------------------- OCI layouts


def blob(layout: Path, data: bytes) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def tar_bytes(members: list) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        for info, payload in members:
            archive.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return out.getvalue()


def write_oci_layout(layout: Path, layers: list[list], config: dict, ref_name: str | None = "1.0") -> Path:
    """An OCI image layout: first layer gzip-compressed, the others plain tars."""
    layout.mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    descriptors, diff_ids = [], []
    for index, members in enumerate(layers):
        raw = tar_bytes(members)
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        data, kind = (gzip.compress(raw), "tar+gzip") if index == 0 else (raw, "tar")
        descriptors.append({"mediaType": f"application/vnd.oci.image.layer.v1.{kind}", **blob(layout, data)})
    config_doc = {"architecture": "amd64", "os": "linux", "config": config,
                  "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           **blob(layout, json.dumps(config_doc).encode())},
                "layers": descriptors}
    descriptor = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                  **blob(layout, json.dumps(manifest).encode())}
    if ref_name:
        descriptor["annotations"] = {"org.opencontainers.image.ref.name": ref_name}
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [descriptor]}))
    return layout


OCI_LOWER = [directory("etc"), member("etc/secret", "hidden"), member("etc/keep", "kept"),
             directory("d"), member("d/a", "a"), member("d/b", "b")]
OCI_UPPER = [member("etc/.wh.secret"), directory("d"), member("d/.wh..wh..opq"), member("d/c", "c")]
OCI_CONFIG = {"Entrypoint": ["/bin/app"], "Cmd": ["serve"], "Env": ["PATH=/bin", "MODE=prod"],
              "WorkingDir": "/srv"}


def test_oci_layout_import_reads_config_and_names_from_the_index(store, tmp_path):
    layout = write_oci_layout(tmp_path / "myimage", [OCI_LOWER], OCI_CONFIG)
    image = store.import_oci_layout(layout)
    assert image.reference == "myimage:1.0"
    assert image.config == ImageConfig(entrypoint=["/bin/app"], cmd=["serve"], env=["PATH=/bin", "MODE=prod"],
                                       workdir="/srv")
    [layer] = store.layer_paths(image)
    assert (layer / "etc/secret").read_text() == "hidden"
    assert store.import_oci_layout(layout, "other:2").layers == image.layers
    assert len(layer_dirs(store)) == 1


@pytest.mark.privileged     # whiteouts are char devices and trusted.* xattrs: only root makes them
def test_oci_whiteouts_become_overlayfs_whiteouts_in_their_own_layer(store, tmp_path):
    layout = write_oci_layout(tmp_path / "layout", [OCI_LOWER, OCI_UPPER], OCI_CONFIG, ref_name=None)
    image = store.import_oci_layout(layout, "wh:test")
    lower, upper = store.layer_paths(image)
    assert (lower / "etc/secret").read_text() == "hidden"            # the lower layer is untouched
    whiteout = os.lstat(upper / "etc/secret")
    assert stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == os.makedev(0, 0)
    assert os.getxattr(upper / "d", "trusted.overlay.opaque") == b"y"
    assert sorted(os.listdir(upper / "d")) == ["c"]
    assert not list(upper.rglob(".wh.*"))
    assert staging_left(store) == []


def test_oci_layout_with_a_corrupt_layer_is_refused_and_leaves_nothing(store, tmp_path):
    layout = write_oci_layout(tmp_path / "bad", [OCI_LOWER, [member("x", "y")]], OCI_CONFIG)
    manifest_digest = json.loads((layout / "index.json").read_text())["manifests"][0]["digest"]
    manifest = json.loads((layout / "blobs/sha256" / manifest_digest.split(":")[1]).read_text())
    (layout / "blobs/sha256" / manifest["layers"][1]["digest"].split(":")[1]).write_bytes(tar_bytes([member("x", "z")]))
    with pytest.raises(InvalidArgument, match="layer 1 has digest"):
        store.import_oci_layout(layout, "bad")
    assert store.list() == [] and layer_dirs(store) == [] and staging_left(store) == []


def test_a_directory_that_is_not_an_oci_layout_is_refused(store, tmp_path):
    with pytest.raises(InvalidArgument, match="is not an OCI image layout"):
        store.import_oci_layout(tmp_path)


# ---------------------------------------------------------------- busybox


BUSYBOX = Path("/bin/busybox")
needs_busybox = pytest.mark.skipif(not BUSYBOX.is_file(), reason="no /bin/busybox (apt-get install busybox-static)")


@needs_busybox
def test_build_busybox_makes_a_minimal_root_and_is_idempotent(store):
    image = store.build_busybox()
    assert image.reference == "busybox:latest"
    assert image.config.cmd == ["sh"] and image.config.env[0].startswith("PATH=/usr/local/sbin:")
    [layer] = store.layer_paths(image)
    assert (layer / "bin/busybox").read_bytes() == BUSYBOX.read_bytes()
    assert os.readlink(layer / "bin/sh") == "busybox" and os.readlink(layer / "bin/ls") == "busybox"
    assert "root:x:0:0:" in (layer / "etc/passwd").read_text()
    assert "nobody:x:65534:" in (layer / "etc/group").read_text()
    assert (layer / "etc/resolv.conf").read_text() == ""
    assert stat.S_IMODE(os.stat(layer / "tmp").st_mode) == 0o1777
    for name in ("proc", "sys", "dev", "root", "home", "var", "etc/hostname", "etc/hosts"):
        assert (layer / name).exists(), name
    inode = os.stat(layer).st_ino
    assert store.build_busybox() == image
    assert os.stat(store.layer_paths(image)[0]).st_ino == inode     # not rebuilt
    assert store.build_busybox(reference="tools:1").layers == image.layers


def test_build_busybox_refuses_missing_and_dynamic_binaries(store, tmp_path):
    with pytest.raises(NotFound, match="nosuch"):
        store.build_busybox(tmp_path / "nosuch")
    (tmp_path / "script").write_text("#!/bin/sh\n")
    with pytest.raises(InvalidArgument, match="not an ELF executable"):
        store.build_busybox(tmp_path / "script")
    if Path("/bin/ls").is_file():
        with pytest.raises(InvalidArgument, match="dynamically linked"):
            store.build_busybox("/bin/ls")
    assert store.list() == []


# ---------------------------------------------------------------- overlay options (pure)


def test_overlay_options_put_the_topmost_layer_first_and_drop_duplicates(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    options = overlay_options([a, b, a, c], tmp_path / "up", tmp_path / "wk")
    assert options == f"lowerdir={c}:{a}:{b},upperdir={tmp_path}/up,workdir={tmp_path}/wk"
    assert overlay_options([a], tmp_path / "up", tmp_path / "wk").startswith(f"lowerdir={a},")


def test_overlay_options_refuse_what_overlayfs_cannot_parse(tmp_path):
    with pytest.raises(InvalidArgument, match="at least one lower"):
        overlay_options([], tmp_path / "u", tmp_path / "w")
    with pytest.raises(InvalidArgument, match="'/x:y'"):
        overlay_options([Path("/x:y")], tmp_path / "u", tmp_path / "w")
    with pytest.raises(KernelError, match="more than the kernel's 4095"):
        overlay_options([tmp_path / ("layer" * 20 + str(i)) for i in range(50)], tmp_path / "u", tmp_path / "w")


def test_is_mounted_reads_escaped_mountinfo(tmp_path):
    target = tmp_path / "with space"
    target.mkdir()
    escaped = str(target).replace(" ", "\\040")
    info = tmp_path / "mountinfo"
    info.write_text(f"36 35 98:0 / /mnt1 rw - ext4 /dev/a rw\n40 36 0:5 / {escaped} rw - overlay overlay rw\n")
    assert is_mounted(target, info)
    assert not is_mounted(tmp_path, info)


def test_the_mark_of_a_volatile_overlay_is_cleared_and_nothing_else(tmp_path):
    from agent.images.overlay import clear_volatile_mark
    work = tmp_path / "work"
    (work / "work" / "incompat" / "volatile").mkdir(parents=True)
    (work / "work" / "incompat" / "volatile" / "dirty").write_text("")
    clear_volatile_mark(work)
    assert work.is_dir() and not (work / "work").exists()
    (work / "work").mkdir()                  # a plain overlay's scratch: left as it is
    clear_volatile_mark(work)
    assert (work / "work").is_dir()
    clear_volatile_mark(tmp_path / "missing")
