"""The compiled probes as a file: what BCC made of probes/*.c, kept so a daemon can load the
probes without compiling (and without libbcc: see cache.py).

One JSON document: the key it was built for (cache.py), the licence, every map BCC created
(type, sizes, flags, and the key/value layout as BCC describes it, decoded by layout.py) and
every function's bytecode with its map references taken out: `relocations` lists, per
program, the index of each 64-bit load of a map (BPF_LD_IMM64 with src_reg
BPF_PSEUDO_MAP_FD or BPF_PSEUDO_MAP_VALUE) and the map's name; the loader writes the fd of its
own new map there (programs.py). `read` checks every field and raises CorruptObject naming
the first bad one: a damaged file is rebuilt, never half-loaded.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import KernelError

FORMAT = 1                      # bump when the layout of this document changes
LD_IMM64 = 0x18
PSEUDO_MAP_FD, PSEUDO_MAP_VALUE = 1, 2


class CorruptObject(KernelError):
    """A compiled-object file that cannot be used; the daemon compiles again."""


@dataclass(frozen=True)
class MapSpec:
    name: str
    type: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int
    key_desc: Any               # BCC's JSON layout of the key (layout.decode)
    leaf_desc: Any


@dataclass(frozen=True)
class ProgramSpec:
    name: str
    insns: bytes                # map references zeroed
    relocations: tuple[tuple[int, str], ...]     # (instruction index, map name)


@dataclass(frozen=True)
class ProbeObject:
    key: str
    license: str
    kern_version: int
    maps: tuple[MapSpec, ...]
    programs: dict[str, ProgramSpec]

    def to_json(self) -> str:
        return json.dumps({
            "format": FORMAT, "key": self.key, "license": self.license, "kern_version": self.kern_version,
            "maps": [vars(spec) for spec in self.maps],
            "programs": {name: {"insns": base64.b64encode(p.insns).decode(), "relocations": list(map(list, p.relocations))}
                         for name, p in self.programs.items()},
        }, indent=1)


def unlink_maps(insns: bytes, names: dict[int, str]) -> tuple[bytes, tuple[tuple[int, str], ...]]:
    """Bytecode with its map fds zeroed, and where they were: `names` is fd -> map name."""
    code = bytearray(insns)
    found = []
    for index in range(len(code) // 8):
        at = index * 8
        if code[at] != LD_IMM64 or code[at + 1] >> 4 not in (PSEUDO_MAP_FD, PSEUDO_MAP_VALUE):
            continue
        fd = int.from_bytes(code[at + 4:at + 8], "little", signed=True)
        if fd not in names:
            raise KernelError(f"instruction {index} loads map fd {fd}, which is none of the object's maps")
        found.append((index, names[fd]))
        code[at + 4:at + 8] = bytes(4)
    return bytes(code), tuple(found)


def link_maps(program: ProgramSpec, fds: dict[str, int]) -> bytes:
    """The program's bytecode with the fds of this process's maps written in."""
    code = bytearray(program.insns)
    for index, name in program.relocations:
        code[index * 8 + 4:index * 8 + 8] = fds[name].to_bytes(4, "little", signed=True)
    return bytes(code)


def read(path: Path, key: str) -> ProbeObject:
    """The object in `path` if it was built for `key`; CorruptObject says what is wrong."""
    try:
        document = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise CorruptObject(f"compiled probes {path}: unreadable: {error}") from None
    try:
        return _parse(document, key)
    except (KeyError, TypeError, ValueError) as error:
        raise CorruptObject(f"compiled probes {path}: bad or missing field: {error}") from None


def _parse(document: dict[str, Any], key: str) -> ProbeObject:
    if document["format"] != FORMAT or document["key"] != key:
        raise ValueError(f"built for {document['key']!r} (format {document['format']}), "
                         f"expected {key!r} (format {FORMAT})")
    maps = tuple(MapSpec(str(m["name"]), _int(m["type"]), _int(m["key_size"]), _int(m["value_size"]),
                         _int(m["max_entries"]), _int(m["flags"]), m["key_desc"], m["leaf_desc"])
                 for m in document["maps"])
    names = {spec.name for spec in maps}
    programs = {}
    for name, entry in document["programs"].items():
        insns = base64.b64decode(entry["insns"], validate=True)
        relocations = tuple((_int(index), str(map_name)) for index, map_name in entry["relocations"])
        if not insns or len(insns) % 8:
            raise ValueError(f"programs.{name}.insns: {len(insns)} bytes is not whole instructions")
        for index, map_name in relocations:
            if map_name not in names or index * 8 >= len(insns) or insns[index * 8] != LD_IMM64:
                raise ValueError(f"programs.{name}.relocations: {index} -> {map_name!r} is no map load")
        programs[str(name)] = ProgramSpec(str(name), insns, relocations)
    return ProbeObject(key, str(document["license"]), _int(document["kern_version"]), maps, programs)


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"expected a non-negative integer, got {value!r}")
    return value
