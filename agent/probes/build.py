"""Compiling the probes in a short-lived process: `python -m agent.probes.build OUT`, the C
source and -D flags as JSON on stdin ({"key", "source", "flags"}); writes the compiled object
(object_file.py) to OUT and exits 0, or prints the compiler's error and exits 1.

This is the only place bcc is imported for the probes: libbcc maps libLLVM and libclang
(85 MiB resident) and a compile leaves ~30 MiB of heap, none of which is given back while the
process lives. Here they go away when the process exits; the daemon loads the object through
bpf_syscall (compiled.py).

Every map BCC created and every function it compiled is written, found through libbcc's own
lists (bpf_num_tables, bpf_num_functions): a map or program added to probes/*.c needs no
change here.
"""
from __future__ import annotations

import ctypes as ct
import json
import sys
from pathlib import Path
from typing import Any

from agent.atomic_file import write_atomically
from agent.probes import bpf_syscall
from agent.probes.object_file import MapSpec, ProbeObject, ProgramSpec, unlink_maps


def _declare(lib: Any) -> None:
    """Signatures of the libbcc calls bcc's Python package does not declare."""
    lib.bpf_num_tables.restype = ct.c_ulonglong
    lib.bpf_num_tables.argtypes = [ct.c_void_p]
    lib.bpf_table_name.restype = ct.c_char_p
    lib.bpf_table_name.argtypes = [ct.c_void_p, ct.c_ulonglong]
    for function in ("bpf_table_key_desc_id", "bpf_table_leaf_desc_id"):
        getattr(lib, function).restype = ct.c_char_p
        getattr(lib, function).argtypes = [ct.c_void_p, ct.c_ulonglong]
    lib.bpf_table_fd_id.restype = ct.c_int
    lib.bpf_table_fd_id.argtypes = [ct.c_void_p, ct.c_ulonglong]


def build(key: str, source: str, flags: list[str]) -> ProbeObject:
    try:
        from bcc import BPF
        from bcc.libbcc import lib
    except ImportError as error:
        raise RuntimeError(f"BCC is not importable ({error}): install Debian's python3-bpfcc") from None
    _declare(lib)
    bpf = BPF(text=source.encode(), cflags=flags)
    module = bpf.module
    maps, names = [], {}
    for index in range(lib.bpf_num_tables(module)):
        name = lib.bpf_table_name(module, index).decode()
        fd = lib.bpf_table_fd_id(module, index)
        info = bpf_syscall.map_info(fd)
        names[fd] = name
        maps.append(MapSpec(name, int(info["type"]), int(info["key_size"]), int(info["value_size"]),
                            int(info["max_entries"]), int(info["flags"]),
                            json.loads(lib.bpf_table_key_desc_id(module, index) or b'"int"'),
                            json.loads(lib.bpf_table_leaf_desc_id(module, index) or b'"int"')))
    programs = {}
    for index in range(lib.bpf_num_functions(module)):
        name = lib.bpf_function_name(module, index).decode()
        insns, relocations = unlink_maps(bpf.dump_func(name.encode()), names)
        programs[name] = ProgramSpec(name, insns, relocations)
    return ProbeObject(key, lib.bpf_module_license(module).decode(), int(lib.bpf_module_kern_version(module)),
                       tuple(maps), programs)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m agent.probes.build OUT < request.json", file=sys.stderr)
        return 2
    request = json.load(sys.stdin)
    try:
        built = build(request["key"], request["source"], list(request["flags"]))
    except Exception as error:  # noqa: BLE001 - BCC raises bare Exception; the parent shows the text
        print(f"{error}", file=sys.stderr)
        return 1
    write_atomically(Path(argv[0]), built.to_json(), 0o600, durable=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
