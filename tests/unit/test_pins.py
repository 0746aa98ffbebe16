"""pins.py's bookkeeping without bpffs: where a daemon pins, which generations it finds and in
what order, what retiring and releasing remove. The pinning itself (bpf(BPF_OBJ_PIN)) runs in
tests/integration/test_pinned_enforcement.py."""
from __future__ import annotations

from pathlib import Path

from agent.probes import pins
from agent.probes.pins import PinnedEnforcement, generations, pin_dir_of, remove_generation


def make_generation(directory: Path, name: str) -> Path:
    path = directory / name
    path.mkdir(parents=True)
    for entry in ("sys_exit", "events", "event_loss", "consumer"):
        (path / entry).write_bytes(b"")
    return path


def test_each_root_has_its_own_pin_directory(tmp_path):
    one, two = pin_dir_of(tmp_path / "a"), pin_dir_of(tmp_path / "b")
    assert one != two and one.parent == two.parent == pins.PIN_BASE
    assert pin_dir_of(tmp_path / "a") == one
    assert pin_dir_of(tmp_path / "a" / ".." / "a", base=tmp_path) == tmp_path / one.name


def test_generations_are_found_oldest_program_first(tmp_path):
    for name in ("gen-120", "gen-9", "gen-1000"):
        make_generation(tmp_path, name)
    (tmp_path / "other").mkdir()
    assert [p.name for p in generations(tmp_path)] == ["gen-9", "gen-120", "gen-1000"]
    assert generations(tmp_path / "missing") == []


def test_removing_the_last_generation_removes_the_root_directory(tmp_path):
    root = tmp_path / "root"
    first, second = make_generation(root, "gen-1"), make_generation(root, "gen-2")
    remove_generation(first)
    assert not first.exists() and root.is_dir()
    remove_generation(second)
    assert not root.exists()


def test_retiring_unpins_what_an_earlier_daemon_left(tmp_path):
    root = tmp_path / "root"
    make_generation(root, "gen-5")
    drained = []
    found = PinnedEnforcement(root)
    assert [p.name for p in found.previous] == ["gen-5"]
    # Not bpffs: the maps cannot be opened, nothing is drained or counted, the pins still go.
    assert found.retire_previous(ncpus=2, drain=drained.append) == 0
    assert drained == [] and not root.exists() and found.previous == []


def test_without_pinning_nothing_is_pinned_but_earlier_generations_are_still_found(tmp_path):
    root = tmp_path / "root"
    make_generation(root, "gen-5")
    unpinned = PinnedEnforcement(None, found_in=root)
    unpinned.hold("gen-6", {"sys_exit": 99})
    assert unpinned.held is None and not (root / "gen-6").exists()
    assert [p.name for p in unpinned.previous] == ["gen-5"]
    unpinned.release()
    assert (root / "gen-5").exists()
