"""Pure logic of volumes and file copies: --mount parsing, the volume store, the size cache,
streamed request bodies, tar streams in and out of a fixture root (links never followed out of
it), the diff of an upper directory, and the CLI's cp path rules."""
from __future__ import annotations

import io
import os
import stat
import tarfile

import pytest

from agent.api.body_stream import BodyReader
from agent.cli.files import split_ref
from agent.cli.volume import human_bytes
from agent.errors import Conflict, InvalidArgument, NotFound
from agent.files import diff, tar_in, tar_out
from agent.files.resolve import Area, ContainerTree, normalize
from agent.runtime.model import Mount
from agent.runtime.mount_flags import parse_mount
from agent.volumes.store import VolumeStore
from agent.volumes.usage import VolumeUsage, tree_bytes

ME = (os.getuid(), os.getgid())


@pytest.mark.parametrize("text, expected", [
    ("type=bind,source=/srv,target=/data,readonly", Mount(source="/srv", target="/data", readonly=True)),
    ("src=v1,dst=/d,ro=false", Mount(type="volume", source="v1", target="/d")),
    ("type=volume,target=/d,volume-nocopy", Mount(type="volume", target="/d", volume_nocopy=True)),
    ("type=tmpfs,destination=/t,tmpfs-size=1m,tmpfs-mode=1777,consistency=cached",
     Mount(type="tmpfs", target="/t", tmpfs_size=1 << 20, tmpfs_mode=0o1777)),
])
def test_mount_flag_parses_dockers_keys(text, expected):
    assert parse_mount(text) == expected


@pytest.mark.parametrize("text, words", [
    ("type=bind,src=/a,target=/b,colour=red", ["unknown key 'colour'"]),
    ("type=volume,target=/b,readonly=maybe", ["readonly", "true or false"]),
    ("type=volume,target", ["target", "needs a value"]),
    ("type=tmpfs,target=/t,tmpfs-mode=9", ["tmpfs-mode", "octal"]),
    ("type=tmpfs,target=/t,readonly,volume-nocopy", ["volume_nocopy"]),
    ("type=bind,source=/a,target=/b,tmpfs-size=1m", ["tmpfs_size"]),
])
def test_mount_flag_errors_name_the_key(text, words):
    with pytest.raises(InvalidArgument) as error:
        parse_mount(text)
    assert all(word in str(error.value) for word in words), str(error.value)


def test_tmpfs_mounts_become_tmpfs_options():
    assert Mount(type="tmpfs", target="/t", tmpfs_size=10, tmpfs_mode=0o700, readonly=True).tmpfs_options() == \
        "size=10,mode=700,ro"


def test_the_store_creates_lists_and_removes(tmp_path):
    store = VolumeStore(tmp_path)
    volume, made = store.create("data", {"a": "b"})
    assert made and volume.labels == {"a": "b"} and os.path.isdir(volume.mountpoint)
    assert store.create("data") == (volume, False)
    anonymous, _ = store.create(anonymous=True)
    assert len(anonymous.name) == 64 and anonymous.anonymous
    (tmp_path / "volumes" / "half-made").mkdir()           # a create cut short: not listed
    assert [v.name for v in store.list()] == sorted(["data", anonymous.name])
    assert store.is_empty(volume)
    store.remove("data")
    with pytest.raises(NotFound, match="data"):
        store.get("data")
    with pytest.raises(NotFound):
        store.remove("data")
    with pytest.raises(InvalidArgument, match="volume name"):
        store.create("../escape")
    assert volume.describe(["web"], 5)["UsageData"] == {"RefCount": 1, "Size": 5}


def test_sizes_are_cached_and_walked_in_the_background(tmp_path):
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "f").write_bytes(b"x" * 100)
    os.link(tmp_path / "v" / "f", tmp_path / "v" / "hard")
    os.symlink("/etc/passwd", tmp_path / "v" / "link")
    assert tree_bytes(str(tmp_path / "v")) == 100
    now = [0.0]
    listed = [("v", str(tmp_path / "v"))]
    usage = VolumeUsage(lambda: listed, interval=60, clock=lambda: now[0])
    assert usage.sizes() == {}                       # the first scrape starts a walk
    usage.measure()
    (tmp_path / "v" / "g").write_bytes(b"y")
    assert usage.sizes() == {"v": 100}               # cached until the interval passes
    now[0] = 61
    assert usage.measure() == {"v": 101}


@pytest.mark.parametrize("raw, headers", [
    (b"hello world", {"Content-Length": "11"}),
    (b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", {"Transfer-Encoding": "chunked"}),
])
def test_request_bodies_are_read_as_streams(raw, headers):
    reader = BodyReader(io.BufferedReader(io.BytesIO(raw)), headers)
    assert reader.read(3) + reader.read() == b"hello world" and reader.read(5) == b""


def test_a_bad_stream_body_is_an_error():
    with pytest.raises(InvalidArgument):
        BodyReader(io.BytesIO(b""), {"Content-Length": "x"})
    with pytest.raises(InvalidArgument, match="chunk"):
        BodyReader(io.BufferedReader(io.BytesIO(b"zz\r\n")), {"Transfer-Encoding": "chunked"}).read(4)
    with pytest.raises(InvalidArgument, match="early"):
        BodyReader(io.BufferedReader(io.BytesIO(b"ab")), {"Content-Length": "5"}).read()


@pytest.fixture
def root(tmp_path):
    base = tmp_path / "root"
    (base / "etc").mkdir(parents=True)
    (base / "etc" / "passwd").write_text("root:x:0:0\n")
    (tmp_path / "host").mkdir()
    (tmp_path / "host" / "secret").write_text("host\n")
    os.symlink(str(tmp_path / "host"), base / "abs")
    os.symlink("../../../../../../../.." + str(tmp_path / "host"), base / "rel")
    os.symlink("/etc", base / "etc-link")
    return base


def tar_of(*members: tuple[str, bytes | None, str]) -> io.BytesIO:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as archive:
        for name, content, link in members:
            info = tarfile.TarInfo(name)
            if link:
                info.type, info.linkname = tarfile.SYMTYPE, link
                archive.addfile(info)
            else:
                info.size = len(content or b"")
                archive.addfile(info, io.BytesIO(content or b""))
    data.seek(0)
    return data


def test_writes_follow_links_inside_the_root_only(root, tmp_path):
    tree = ContainerTree("c", Area("/", root))
    for dest in ("/etc-link", "/abs", "/rel"):
        try:
            tar_in.extract(tree, dest, tar_of(("x", b"1", "")), owner=ME)
        except NotFound:
            pass
    with pytest.raises(NotFound):
        tar_in.extract(tree, "/", tar_of(("l", None, str(tmp_path / "host")), ("l/pwned", b"2", "")), owner=ME)
    assert sorted(os.listdir(tmp_path / "host")) == ["secret"]
    assert (root / "etc" / "x").read_text() == "1"
    with pytest.raises(InvalidArgument, match=r"\.\."):
        tar_in.extract(tree, "/", tar_of(("../up", b"1", "")), owner=ME)
    with pytest.raises(Conflict, match="cannot overwrite"):
        tar_in.extract(tree, "/", tar_of(("etc", b"file over a directory", "")), owner=ME)
    read_only = ContainerTree("c", Area("/", root, readonly=True))
    with pytest.raises(Conflict, match="read-only"):
        tar_in.extract(read_only, "/", tar_of(("y", b"1", "")), owner=ME)


def test_reads_never_leave_the_root(root):
    tree = ContainerTree("c", Area("/", root))
    for path in ("/abs/.", "/rel/secret", "/abs/secret"):
        with pytest.raises(NotFound):
            b"".join(tar_out.archive(tree, path))
    stat_of = tar_out.path_stat(tree, "/etc-link")
    assert stat_of["linkTarget"] == "/etc" and stat_of["mode"] & (1 << 27)
    names = tarfile.open(fileobj=io.BytesIO(b"".join(tar_out.archive(tree, "/etc-link/")))).getnames()
    assert names == ["etc", "etc/passwd"]


def test_a_round_trip_keeps_content_links_and_modes(root, tmp_path):
    (root / "etc" / "tool").write_bytes(b"#!/bin/sh\n")
    os.chmod(root / "etc" / "tool", 0o4755 if os.geteuid() == 0 else 0o755)
    os.link(root / "etc" / "passwd", root / "etc" / "hard")
    copy = tmp_path / "copy"
    copy.mkdir()
    stream = tar_out.archive(ContainerTree("c", Area("/", root)), "/etc")
    tar_in.extract(ContainerTree("host", Area("/", copy)), "/", tar_in.ChunkReader(stream), owner=ME,
                   rename=("etc", "renamed"))
    assert (copy / "renamed" / "passwd").read_text() == "root:x:0:0\n"
    assert os.stat(copy / "renamed" / "hard").st_ino == os.stat(copy / "renamed" / "passwd").st_ino
    assert stat.S_IMODE(os.stat(copy / "renamed" / "tool").st_mode) & 0o755 == 0o755
    exported = tarfile.open(fileobj=io.BytesIO(b"".join(tar_out.export_root(root)))).getnames()
    assert "etc/passwd" in exported and "abs" in exported


def test_normalize_stops_at_the_root():
    assert normalize("/../../a/./b/../c//") == "/a/c"


@pytest.mark.privileged
def test_diff_reads_the_upper_directory(tmp_path):
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    for path in (lower / "etc" / "old", upper / "etc", upper / "srv"):
        path.mkdir(parents=True)
    (lower / "etc" / "passwd").write_text("a")
    (lower / "etc" / "group").write_text("b")
    (lower / "etc" / "old" / "gone").write_text("c")
    (upper / "etc" / "passwd").write_text("changed")
    os.mknod(upper / "etc" / "group", stat.S_IFCHR | 0o600, os.makedev(0, 0))
    (upper / "etc" / "old").mkdir()
    os.setxattr(upper / "etc" / "old", "trusted.overlay.opaque", b"y")
    (upper / "srv" / "new").write_text("d")
    (upper / "data").mkdir()
    assert diff.changes(upper, [lower], ["/data"]) == [
        ("C", "/etc"), ("D", "/etc/group"), ("C", "/etc/old"), ("D", "/etc/old/gone"), ("C", "/etc/passwd"),
        ("A", "/srv"), ("A", "/srv/new")]


@pytest.mark.parametrize("text, expected", [
    ("web:/etc", ("web", "/etc")), ("web:etc", ("web", "etc")), ("./a:b", (None, "./a:b")),
    ("/abs", (None, "/abs")), ("dir/x:y", (None, "dir/x:y")), ("-", (None, "-")), ("plain", (None, "plain")),
])
def test_cp_tells_container_paths_from_host_paths(text, expected):
    assert split_ref(text) == expected


def test_reclaimed_space_in_dockers_units():
    assert [human_bytes(n) for n in (0, 999, 1500, 12_300_000)] == ["0B", "999B", "1.5kB", "12.3MB"]


def test_a_failed_run_discards_the_volumes_it_made_that_no_container_uses(tmp_path):
    from agent.events import EventLog
    from agent.runtime.model import Container, ContainerSpec
    from agent.runtime.state import ContainerStore
    from agent.runtime.volumes import Volumes
    store = ContainerStore(tmp_path)
    volumes = Volumes(VolumeStore(tmp_path), store, EventLog(tmp_path / "events.jsonl"))
    for name in ("made", "taken", "older"):
        volumes.store.create(name)
    user = Container(id="abc", name="user", image_id="i", created_at=1.0, spec=ContainerSpec(
        image="busybox", mounts=[Mount(type="volume", source="taken", target="/t")]))
    store.add(user)
    volumes.discard_unused(["made", "taken", "gone"])       # "gone": removed with the container already
    assert sorted(v.name for v in volumes.store.list()) == ["older", "taken"]
