"""The compiled-probes file (agent/probes/object_file.py), its layouts (layout.py) and the
cache's key and trust checks (cache.py): pure logic, no kernel."""
from __future__ import annotations

import ctypes as ct
import json
import os
from pathlib import Path

import pytest

from agent.errors import InvalidArgument, KernelError
from agent.probes import cache, layout, object_file
from agent.probes.object_file import CorruptObject, MapSpec, ProbeObject, ProgramSpec
from agent.probes.structs import WatchEntry

LD_MAP = bytes([0x18, 0x12, 0, 0]) + (7).to_bytes(4, "little")   # r2 = map fd 7 (src_reg 1)
SECOND = bytes(8)                                                  # the second half of LD_IMM64
EXIT = bytes([0x95, 0, 0, 0, 0, 0, 0, 0])


def _object(key: str = "k1") -> ProbeObject:
    insns, relocations = object_file.unlink_maps(LD_MAP + SECOND + EXIT, {7: "counts"})
    spec = MapSpec("counts", 2, 4, 8, 16, 0, "unsigned int", "unsigned long long")
    return ProbeObject(key, "GPL", 0, (spec,), {"prog": ProgramSpec("prog", insns, relocations)})


def test_map_fds_are_taken_out_and_written_back():
    built = _object()
    program = built.programs["prog"]
    assert program.relocations == ((0, "counts"),)
    assert program.insns[4:8] == bytes(4)
    assert object_file.link_maps(program, {"counts": 42})[4:8] == (42).to_bytes(4, "little")


def test_a_map_load_of_an_unknown_fd_is_refused():
    with pytest.raises(KernelError, match="map fd 7"):
        object_file.unlink_maps(LD_MAP + SECOND + EXIT, {3: "other"})


def test_the_file_reads_back_as_written(tmp_path: Path):
    path = tmp_path / "object.json"
    path.write_text(_object().to_json())
    assert object_file.read(path, "k1") == _object()


@pytest.mark.parametrize("damage", [
    lambda doc: "not json at all {",
    lambda doc: json.dumps({**doc, "format": 99}),
    lambda doc: json.dumps({k: v for k, v in doc.items() if k != "maps"}),
    lambda doc: json.dumps({**doc, "programs": {"prog": {"insns": "AAA", "relocations": []}}}),
    lambda doc: json.dumps({**doc, "programs": {"prog": {**doc["programs"]["prog"], "relocations": [[1, "counts"]]}}}),
    lambda doc: json.dumps({**doc, "maps": [{**doc["maps"][0], "max_entries": -1}]}),
])
def test_a_damaged_file_is_a_clear_error(tmp_path: Path, damage):
    path = tmp_path / "object.json"
    path.write_text(damage(json.loads(_object().to_json())))
    with pytest.raises(CorruptObject, match=str(path)):
        object_file.read(path, "k1")


def test_a_file_of_another_key_is_not_used(tmp_path: Path):
    path = tmp_path / "object.json"
    path.write_text(_object("other").to_json())
    with pytest.raises(CorruptObject, match="built for 'other'"):
        object_file.read(path, "k1")


def test_layouts_decode_as_bcc_does():
    desc = ["watch_entry", [["cgroup_id", "unsigned long long"], ["slot", "unsigned int"],
                            ["pad", "unsigned int"]], "struct"]
    decoded = layout.decode(desc)
    assert ct.sizeof(decoded) == ct.sizeof(WatchEntry)
    assert [name for name, *_ in decoded._fields_] == ["cgroup_id", "slot", "pad"]
    array = layout.decode(["t", [["calls", "unsigned long long", [3]], ["bits", "unsigned int", 4]], "union"])
    assert issubclass(array, ct.Union) and ct.sizeof(array) == 24


def test_an_unknown_layout_is_named():
    with pytest.raises(InvalidArgument, match="quux"):
        layout.decode(["s", [["a", "quux"]], "struct"])


def test_the_key_follows_source_and_flags():
    key = cache.cache_key("int x;", ["-DA=1"])
    assert key == cache.cache_key("int x;", ["-DA=1"])
    assert key != cache.cache_key("int y;", ["-DA=1"])
    assert key != cache.cache_key("int x;", ["-DA=2"])


def test_a_file_others_can_write_is_not_trusted(tmp_path: Path):
    path = tmp_path / "object.json"
    path.write_text(_object().to_json())
    os.chmod(path, 0o666)
    with pytest.raises(CorruptObject, match="only its owner can write"):
        cache._check_owner(path)
    os.chmod(path, 0o600)
    cache._check_owner(path)
