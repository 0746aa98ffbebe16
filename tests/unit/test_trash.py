"""The trash (agent/runtime/trash.py): a removed container's directory leaves its place in one
rename and is deleted by the background deleter; what a crash left there is deleted at the next
start. Plain files in a temporary directory (the mount handling is tested in
tests/integration/test_remove_trash.py)."""
from __future__ import annotations

from pathlib import Path

from agent.runtime.state import ContainerStore
from agent.runtime.trash import Trash


def container_dir(root: Path, name: str) -> Path:
    directory = root / "containers" / name
    (directory / "upper" / "etc").mkdir(parents=True)
    (directory / "upper" / "etc" / "hosts").write_text("127.0.0.1 localhost\n")
    (directory / "container.log").write_text("a line\n")
    readonly = directory / "upper" / "readonly"
    readonly.mkdir()
    (readonly / "file").write_text("x")
    readonly.chmod(0o500)      # remove_tree copes with directories it cannot write
    return directory


def test_put_moves_the_directory_at_once_and_the_deleter_empties_the_trash(tmp_path):
    trash = Trash(tmp_path)
    trash.start()
    try:
        directory = container_dir(tmp_path, "c1")
        assert trash.put(directory, "c1") is True
        assert not directory.exists(), "the directory left its place in the put itself"
        assert trash.drain(timeout=30)
        assert list(trash.dir.iterdir()) == []
        assert trash.put(tmp_path / "containers" / "missing", "missing") is False
    finally:
        trash.close()


def test_what_a_crash_left_in_the_trash_is_deleted_at_start(tmp_path):
    (tmp_path / "trash").mkdir()
    left = container_dir(tmp_path, "c2")
    left.rename(tmp_path / "trash" / "c2.1.0")          # a daemon killed mid-delete
    (tmp_path / "trash" / "stray-file").write_text("x")
    trash = Trash(tmp_path)
    trash.start()
    try:
        assert trash.drain(timeout=30)
        assert list(trash.dir.iterdir()) == []
    finally:
        trash.close()


def test_without_a_running_deleter_put_deletes_at_once(tmp_path):
    directory = container_dir(tmp_path, "c3")
    assert Trash(tmp_path).put(directory, "c3") is True
    assert not directory.exists()
    assert not (tmp_path / "trash").exists()


def test_store_delete_forgets_the_container_and_trashes_its_directory(tmp_path):
    from agent.runtime.model import Container, ContainerSpec
    store = ContainerStore(tmp_path)
    container = Container(id="a" * 64, name="web", spec=ContainerSpec(image="busybox"), image_id="sha256:0",
                          created_at=1.0)
    store.save(container, durable=True)
    (store.directory(container.id) / "container.log").write_text("x\n")
    trash = Trash(tmp_path)
    trash.start()
    try:
        store.delete(container.id, trash)
        assert not store.directory(container.id).exists()
        assert "web" not in store.names()
        assert trash.drain(timeout=30)
        assert list(trash.dir.iterdir()) == []
        assert ContainerStore(tmp_path).all() == [], "a new store (a restart) does not see it"
    finally:
        trash.close()


def test_a_deferred_durable_save_syncs_by_descriptor_even_after_the_directory_moved(tmp_path):
    """`run` overlaps the create's fsyncs with the launch; a --rm container may be in the trash
    before they finish, so they hold descriptors, not paths."""
    from agent.runtime.model import Container, ContainerSpec
    store = ContainerStore(tmp_path)
    container = Container(id="b" * 64, name="quick", spec=ContainerSpec(image="busybox"), image_id="sha256:0",
                          created_at=1.0)
    pending = store.save(container, durable=True, sync_later=True)
    assert pending is not None
    store.directory(container.id).rename(tmp_path / "moved")
    pending.wait()
    assert [p.name for p in (tmp_path / "moved").iterdir()] == ["state.1.json"]
    other = Container(id="c" * 64, name="slow", spec=ContainerSpec(image="busybox"), image_id="sha256:0",
                      created_at=2.0)
    assert store.save(other, durable=True) is None, "an immediate durable save has nothing pending"
