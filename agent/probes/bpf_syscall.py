"""The bpf() syscall through ctypes, for what BCC does not wrap: cgroup program queries
(cgroup_programs.py) and bpffs pins (pins.py): pin an object, open a pinned one, look a key up
in a map known only by its fd.

`attr` is a zeroed `union bpf_attr` buffer; `put` writes a field at its UAPI offset.
"""
from __future__ import annotations

import ctypes as ct
import os
import platform

from agent.errors import KernelError

_SYS_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "loongarch64": 280}
ATTR_SIZE = 128                 # larger than every union bpf_attr member used here
BPF_MAP_CREATE, BPF_MAP_LOOKUP_ELEM, BPF_MAP_UPDATE_ELEM, BPF_OBJ_PIN, BPF_OBJ_GET = 0, 1, 2, 6, 7
BPF_MAP_TYPE_ARRAY = 2


def bpf(command: int, attr: ct.Array) -> int:
    """bpf(command, attr); OSError with the errno on failure."""
    libc = ct.CDLL(None, use_errno=True)
    number = _SYS_BPF.get(platform.machine())
    if number is None:
        raise KernelError(f"bpf(): unknown syscall number on {platform.machine()}")
    result = libc.syscall(ct.c_long(number), ct.c_int(command), attr, ct.c_uint(ct.sizeof(attr)))
    if result < 0:
        code = ct.get_errno()
        raise OSError(code, os.strerror(code))
    return result


def new_attr() -> ct.Array:
    return (ct.c_uint8 * ATTR_SIZE)()


def put(attr: ct.Array, offset: int, ctype: type[ct.c_uint32] | type[ct.c_uint64], value: int) -> None:
    ctype.from_buffer(attr, offset).value = value


def pin(fd: int, path: str) -> None:
    """Pin a program, map or link at `path` in bpffs (OSError: EEXIST if taken)."""
    name = ct.create_string_buffer(path.encode())
    attr = new_attr()
    put(attr, 0, ct.c_uint64, ct.addressof(name))
    put(attr, 8, ct.c_uint32, fd)
    bpf(BPF_OBJ_PIN, attr)


def open_pinned(path: str) -> int:
    """A new fd of the object pinned at `path` (the caller closes it)."""
    name = ct.create_string_buffer(path.encode())
    attr = new_attr()
    put(attr, 0, ct.c_uint64, ct.addressof(name))
    return bpf(BPF_OBJ_GET, attr)


def create_array(value_size: int, entries: int = 1) -> int:
    """A new BPF array map with u32 keys: its fd (the caller closes it)."""
    attr = new_attr()
    put(attr, 0, ct.c_uint32, BPF_MAP_TYPE_ARRAY)
    put(attr, 4, ct.c_uint32, 4)
    put(attr, 8, ct.c_uint32, value_size)
    put(attr, 12, ct.c_uint32, entries)
    return bpf(BPF_MAP_CREATE, attr)


def update(map_fd: int, key: ct._SimpleCData, value: ct.Array | ct._SimpleCData) -> None:
    attr = new_attr()
    put(attr, 0, ct.c_uint32, map_fd)
    put(attr, 8, ct.c_uint64, ct.addressof(key))
    put(attr, 16, ct.c_uint64, ct.addressof(value))
    bpf(BPF_MAP_UPDATE_ELEM, attr)


def lookup(map_fd: int, key: ct._SimpleCData, value: ct.Array | ct._SimpleCData) -> bool:
    """Read `key`'s value into `value` (sized for the map: ncpus values of a per-CPU map);
    False when the key is absent."""
    attr = new_attr()
    put(attr, 0, ct.c_uint32, map_fd)
    put(attr, 8, ct.c_uint64, ct.addressof(key))
    put(attr, 16, ct.c_uint64, ct.addressof(value))
    try:
        bpf(BPF_MAP_LOOKUP_ELEM, attr)
    except OSError:
        return False
    return True
