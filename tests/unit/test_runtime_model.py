import json
import os

import pytest

from agent.errors import Conflict, InvalidArgument, NotFound
from agent.runtime.model import Container, ContainerSpec, Mount
from agent.runtime.plan import merge_env as _merge_env
from agent.runtime.state import ContainerStore


def test_mount_parsing():
    assert Mount.parse("/a:/b") == Mount(source="/a", target="/b")
    assert Mount.parse("/a:/b:ro") == Mount(source="/a", target="/b", readonly=True)
    assert Mount.parse("data:/b:ro") == Mount(type="volume", source="data", target="/b", readonly=True)
    assert Mount.parse("data:/b:nocopy") == Mount(type="volume", source="data", target="/b", volume_nocopy=True)
    assert Mount.parse("/b") == Mount(type="volume", target="/b")
    for bad in ["a", "a:b", "/a:/b:rx", ":/b", "x:/b", "/a:/b:nocopy", "a/b:/c", "/a:/b:/c:/d"]:
        with pytest.raises(InvalidArgument, match="-v "):
            Mount.parse(bad)


@pytest.mark.parametrize("fields, field, word", [
    ({"image": ""}, "image", "length >= 1"),
    ({"image": "busybox", "name": "bad name!"}, "name", "'bad name!'"),
    ({"image": "busybox", "env": ["A=1", "NOEQUALS"]}, "env[1]", "'NOEQUALS'"),
    ({"image": "busybox", "workdir": "relative"}, "workdir", "'relative'"),
    ({"image": "busybox", "memory": 1000}, "memory", ">= 4194304, got 1000"),
    ({"image": "busybox", "pids_limit": 0}, "pids_limit", ">= 1, got 0"),
    ({"image": "busybox", "mounts": [{"source": "/a", "target": "b"}]}, "mounts[0].target", "'b'"),
    ({"image": "busybox", "labels": {"ok": "1", "k": 1}}, 'labels["k"]', "got 1"),
    ({"image": "busybox", "ports": [{"host_port": 1, "container_port": 2}], "network": "none"}, "ports", "none"),
])
def test_spec_rejects_bad_values_naming_the_field_and_value(fields, field, word):
    with pytest.raises(InvalidArgument) as error:
        ContainerSpec.from_dict(fields)
    assert error.value.field == field
    assert str(error.value).startswith(f"{field}: ") and word in str(error.value)


def test_spec_round_trip_and_unknown_keys():
    spec = ContainerSpec(image="busybox", command=["true"], mounts=[Mount(source="/a", target="/b", readonly=True),
                                                                     Mount(type="volume", source="v1", target="/c"),
                                                                     Mount(type="tmpfs", target="/t", tmpfs_size=1024)],
                         labels={"tier": "web"}, memory=64 << 20)
    assert ContainerSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    with pytest.raises(InvalidArgument, match="colour"):
        ContainerSpec.from_dict({"image": "busybox", "colour": "red"})
    assert ContainerSpec.from_dict({"image": "busybox", "mounts": [{"source": "/x", "target": "/y", "readonly": True}]}
                                   ).mounts == [Mount(source="/x", target="/y", readonly=True)]


def container(cid, name):
    return Container(id=cid, name=name, spec=ContainerSpec(image="busybox"), image_id="i", created_at=1.0)


def added(store: ContainerStore, new: Container) -> Container:
    """`add` then the create's durable save, as Runtime.create does."""
    store.add(new)
    store.save(new, durable=True)
    return new


def test_store_resolves_ids_prefixes_and_names(tmp_path):
    store = ContainerStore(tmp_path)
    added(store, container("abc123", "one"))
    added(store, container("abd456", "two"))
    assert store.get("one").id == "abc123"
    assert store.get("abd").name == "two"
    assert store.get("abc123").name == "one"
    with pytest.raises(Conflict, match="ab"):
        store.get("ab")
    with pytest.raises(NotFound, match="zzz"):
        store.get("zzz")
    with pytest.raises(Conflict, match="one"):
        store.add(container("fff", "one"))
    # a second store reads the same state back: what makes restarts work
    assert [c.name for c in ContainerStore(tmp_path).all()] == ["one", "two"]
    store.delete("abc123")
    assert not (tmp_path / "containers" / "abc123").exists()


def test_store_reads_the_newest_generation_that_parses(tmp_path):
    store = ContainerStore(tmp_path)
    one = container("abc123", "one")
    store.add(one)
    store.save(one)
    one.state = "running"
    store.save(one)
    one.state = "exited"
    store.save(one)
    directory = tmp_path / "containers" / "abc123"
    assert sorted(p.name for p in directory.iterdir()) == ["state.2.json", "state.3.json"]
    (directory / "state.3.json").write_text("")          # torn by a crash
    assert ContainerStore(tmp_path).get("one").state == "running"
    legacy = tmp_path / "containers" / "old"
    legacy.mkdir()
    (legacy / "state.json").write_text(json.dumps(container("old", "older").to_dict()))
    again = ContainerStore(tmp_path)
    assert again.get("older").id == "old"
    again.save(again.get("older"))
    assert sorted(p.name for p in legacy.iterdir()) == ["state.1.json"]


def test_store_keeps_unreadable_state_for_a_person(tmp_path):
    bad = tmp_path / "containers" / "broken"
    bad.mkdir(parents=True)
    (bad / "state.json").write_text("{not json")
    store = ContainerStore(tmp_path)
    assert store.all() == [] and "broken" in store.load_errors[0]
    assert (bad / "state.json").exists()


def test_env_merge_later_wins():
    env = _merge_env(["PATH=/bin", "A=1"], ["A=2", "B=3"], "host")
    assert env == ["PATH=/bin", "HOSTNAME=host", "A=2", "B=3"]


def test_store_keeps_the_durable_generation_under_later_ones(tmp_path):
    store = ContainerStore(tmp_path)
    one = container("abc123", "one")
    store.add(one)
    one.rootfs = "/r"
    store.save(one, durable=True)              # the record completing the create, its first
    for state in ("running", "exited", "removing"):
        one.state = state
        store.save(one)
    directory = tmp_path / "containers" / "abc123"
    assert sorted(p.name for p in directory.iterdir()) == ["state.1.json", "state.3.json", "state.4.json"]
    for name in ("state.3.json", "state.4.json"):    # every later generation torn (a power loss)
        (directory / name).write_bytes(b"\0" * 10)
    again = ContainerStore(tmp_path)
    assert again.get("one").rootfs == "/r" and again.get("one").state == "created"
    again.save(again.get("one"))
    assert "state.5.json" in os.listdir(directory)


def test_store_lists_directories_without_state_and_unreadable_ones(tmp_path):
    (tmp_path / "containers" / "cut").mkdir(parents=True)
    (tmp_path / "containers" / "cut" / "upper").mkdir()
    torn = tmp_path / "containers" / "torn"
    torn.mkdir()
    (torn / "state.1.json").write_text('{"id": "torn", "na')
    store = ContainerStore(tmp_path)
    assert store.no_state == ["cut"]
    assert list(store.unreadable) == ["torn"] and "state.1.json" in store.unreadable["torn"][0]
    moved = store.quarantine("torn")
    assert not torn.exists() and (moved / "state.1.json").exists()
    assert moved.parent == tmp_path / "quarantine"


def test_store_add_reserves_the_name_and_makes_the_directory_but_writes_nothing(tmp_path):
    """The create's durable save is the first on disk; until it, a restart finds a directory
    without state (reconcile's `no_state`: cgroup, root and directory removed)."""
    store = ContainerStore(tmp_path)
    one = container("abc123", "one")
    store.add(one)
    directory = tmp_path / "containers" / "abc123"
    assert directory.is_dir() and list(directory.iterdir()) == []
    assert store.get("one") is one and store.by_id("abc123") is one
    with pytest.raises(Conflict, match="already used by abc123"):
        store.add(container("def456", "one"))
    assert not (tmp_path / "containers" / "def456").exists()
    assert ContainerStore(tmp_path).no_state == ["abc123"]
    store.save(one, durable=True)
    assert os.listdir(directory) == ["state.1.json"]
    assert ContainerStore(tmp_path).get("one").id == "abc123"


def test_a_save_cut_short_leaves_a_part_file_that_reads_as_no_state(tmp_path, monkeypatch):
    """A daemon killed inside a save (here: the write fails half-way) leaves no short state file,
    which a restart would take as unreadable and quarantine: its first generation missing, the
    directory is a create cut short."""
    store = ContainerStore(tmp_path)
    one = container("abc123", "one")
    store.add(one)
    real_write = os.write

    def half_write(fd, data):
        real_write(fd, data[: len(data) // 2])
        raise KeyboardInterrupt     # stands for the SIGKILL: nothing after it runs

    monkeypatch.setattr(os, "write", half_write)
    with pytest.raises(KeyboardInterrupt):
        store.save(one, durable=True)
    monkeypatch.setattr(os, "write", real_write)
    directory = tmp_path / "containers" / "abc123"
    assert os.listdir(directory) == []          # the part file is removed when the save fails
    (directory / ".state.1.json.part").write_text('{"id": "abc123", "na')    # as a SIGKILL leaves it
    again = ContainerStore(tmp_path)
    assert again.no_state == ["abc123"] and not again.unreadable


def test_an_empty_state_file_is_no_generation(tmp_path):
    """A save that was not synced (a --rm container's first) whose data a machine crash lost
    leaves an empty file: alone it reads as a create cut short, and under a newer empty one the
    older generation is used, neither quarantined."""
    store = ContainerStore(tmp_path)
    one, two = container("abc123", "one"), container("def456", "two")
    store.add(one)
    store.save(one)
    added(store, two)
    store.save(two)
    (tmp_path / "containers" / "abc123" / "state.1.json").write_bytes(b"")
    (tmp_path / "containers" / "def456" / "state.3.json").write_bytes(b"")
    again = ContainerStore(tmp_path)
    assert again.no_state == ["abc123"] and not again.unreadable and not again.load_errors
    assert again.get("two").id == "def456"


def test_store_refuses_a_state_file_naming_another_container(tmp_path):
    store = ContainerStore(tmp_path)
    added(store, container("abc123", "one"))
    os.rename(tmp_path / "containers" / "abc123", tmp_path / "containers" / "zzz")
    assert list(ContainerStore(tmp_path).unreadable) == ["zzz"]


@pytest.mark.parametrize("garbage", [b"5", b"[]", b'{"id": 1}', b"\xff\xfe", b'{"spec": null}'])
def test_store_lists_any_garbage_as_unreadable(tmp_path, garbage):
    directory = tmp_path / "containers" / "abc"
    directory.mkdir(parents=True)
    (directory / "state.1.json").write_bytes(garbage)
    assert list(ContainerStore(tmp_path).unreadable) == ["abc"]
