"""The bpf() syscall through ctypes: everything the daemon does with BPF objects without
libbcc (which would map libLLVM and libclang, 85 MiB, into the daemon): maps (create, look up,
update, delete, walk, batch), programs (load, open a raw tracepoint), bpffs pins, object info.

`attr` is a zeroed `union bpf_attr` buffer; `put` writes a field at its UAPI offset
(include/uapi/linux/bpf.h).
"""
from __future__ import annotations

import ctypes as ct
import errno
import functools
import os
import platform

from agent.errors import KernelError

_SYS_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "loongarch64": 280}
ATTR_SIZE = 128                 # larger than every union bpf_attr member used here
BPF_MAP_CREATE, BPF_MAP_LOOKUP_ELEM, BPF_MAP_UPDATE_ELEM, BPF_MAP_DELETE_ELEM = 0, 1, 2, 3
BPF_MAP_GET_NEXT_KEY, BPF_PROG_LOAD, BPF_OBJ_PIN, BPF_OBJ_GET = 4, 5, 6, 7
BPF_OBJ_GET_INFO_BY_FD, BPF_RAW_TRACEPOINT_OPEN = 15, 17
BPF_MAP_LOOKUP_BATCH, BPF_MAP_UPDATE_BATCH = 24, 26
BPF_MAP_TYPE_ARRAY = 2
OBJ_NAME_LEN = 16               # BPF_OBJ_NAME_LEN, the NUL included
LOAD_ATTEMPTS = 5               # BPF_PROG_LOAD tries when a signal interrupts the verifier
LOG_SIZE = 1 << 20              # the verifier log asked for when a program is refused
_MAP_INFO_SIZE = 40             # struct bpf_map_info up to and including name[16]


@functools.lru_cache(maxsize=1)
def _libc() -> ct.CDLL:
    return ct.CDLL(None, use_errno=True)


def bpf(command: int, attr: ct.Array) -> int:
    """bpf(command, attr); OSError with the errno on failure."""
    number = _SYS_BPF.get(platform.machine())
    if number is None:
        raise KernelError(f"bpf(): unknown syscall number on {platform.machine()}")
    result = _libc().syscall(ct.c_long(number), ct.c_int(command), attr, ct.c_uint(ct.sizeof(attr)))
    if result < 0:
        code = ct.get_errno()
        raise OSError(code, os.strerror(code))
    return int(result)


def new_attr() -> ct.Array:
    return (ct.c_uint8 * ATTR_SIZE)()


def put(attr: ct.Array, offset: int, ctype: type[ct.c_uint32] | type[ct.c_uint64], value: int) -> None:
    ctype.from_buffer(attr, offset).value = value


def _put_name(attr: ct.Array, offset: int, name: str) -> None:
    raw = name.encode()[:OBJ_NAME_LEN - 1]
    ct.memmove(ct.addressof(attr) + offset, raw, len(raw))


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


def create_map(map_type: int, key_size: int, value_size: int, max_entries: int, flags: int = 0,
               name: str = "") -> int:
    """A new map: its fd (the caller closes it)."""
    attr = new_attr()
    for offset, value in enumerate((map_type, key_size, value_size, max_entries, flags)):
        put(attr, 4 * offset, ct.c_uint32, value)
    _put_name(attr, 28, name)
    return bpf(BPF_MAP_CREATE, attr)


def create_array(value_size: int, entries: int = 1) -> int:
    """A new BPF array map with u32 keys: its fd (the caller closes it)."""
    return create_map(BPF_MAP_TYPE_ARRAY, 4, value_size, entries)


def object_info(fd: int, size: int) -> bytes:
    """BPF_OBJ_GET_INFO_BY_FD: the first `size` bytes of the kernel's info struct of the map,
    program or link behind `fd` (struct bpf_map_info, bpf_prog_info, ...)."""
    info = (ct.c_uint8 * size)()
    attr = new_attr()
    put(attr, 0, ct.c_uint32, fd)
    put(attr, 4, ct.c_uint32, size)
    put(attr, 8, ct.c_uint64, ct.addressof(info))
    bpf(BPF_OBJ_GET_INFO_BY_FD, attr)
    return bytes(info)


def map_info(fd: int) -> dict[str, int | str]:
    """What the kernel holds of a map: type, id, key_size, value_size, max_entries, flags, name."""
    info = object_info(fd, _MAP_INFO_SIZE)
    words = [int.from_bytes(info[i:i + 4], "little") for i in range(0, 24, 4)]
    result: dict[str, int | str] = dict(zip(("type", "id", "key_size", "value_size", "max_entries", "flags"), words))
    result["name"] = info[24:40].split(b"\0", 1)[0].decode(errors="replace")
    return result


def _elem(command: int, map_fd: int, key: object, value: object, flags: int = 0) -> None:
    attr = new_attr()
    put(attr, 0, ct.c_uint32, map_fd)
    put(attr, 8, ct.c_uint64, ct.addressof(key) if key is not None else 0)    # type: ignore[arg-type]
    put(attr, 16, ct.c_uint64, ct.addressof(value) if value is not None else 0)  # type: ignore[arg-type]
    put(attr, 24, ct.c_uint64, flags)
    bpf(command, attr)


def update(map_fd: int, key: ct._CData, value: ct._CData) -> None:
    _elem(BPF_MAP_UPDATE_ELEM, map_fd, key, value)


def lookup(map_fd: int, key: ct._CData, value: ct._CData) -> bool:
    """Read `key`'s value into `value` (sized for the map: ncpus values of a per-CPU map);
    False when the key is absent."""
    try:
        _elem(BPF_MAP_LOOKUP_ELEM, map_fd, key, value)
    except OSError:
        return False
    return True


def _found(command: int, map_fd: int, key: object, value: object) -> bool:
    """The command done: True; False when the kernel answers ENOENT (no such key, no next)."""
    try:
        _elem(command, map_fd, key, value)
    except OSError as error:
        if error.errno == errno.ENOENT:
            return False
        raise
    return True


def delete(map_fd: int, key: ct._CData) -> bool:
    """Remove `key`; False when it was not there."""
    return _found(BPF_MAP_DELETE_ELEM, map_fd, key, None)


def next_key(map_fd: int, key: ct._CData | None, out: ct._CData) -> bool:
    """The key after `key` (None: the first) into `out`; False at the end of the map."""
    return _found(BPF_MAP_GET_NEXT_KEY, map_fd, key, out)


def batch(command: int, map_fd: int, keys: ct._CData, values: ct._CData, count: int,
          in_batch: ct._CData | None = None, out_batch: ct._CData | None = None) -> tuple[int, int]:
    """BPF_MAP_LOOKUP_BATCH / BPF_MAP_UPDATE_BATCH: (elements done, errno or 0). ENOENT from a
    lookup means the map ended after the elements done."""
    attr = new_attr()
    put(attr, 0, ct.c_uint64, ct.addressof(in_batch) if in_batch is not None else 0)
    put(attr, 8, ct.c_uint64, ct.addressof(out_batch) if out_batch is not None else 0)
    put(attr, 16, ct.c_uint64, ct.addressof(keys))
    put(attr, 24, ct.c_uint64, ct.addressof(values))
    put(attr, 32, ct.c_uint32, count)
    put(attr, 36, ct.c_uint32, map_fd)
    try:
        bpf(command, attr)
    except OSError as error:
        return ct.c_uint32.from_buffer(attr, 32).value, error.errno or errno.EIO
    return ct.c_uint32.from_buffer(attr, 32).value, 0


def load_program(prog_type: int, insns: bytes, license: str, name: str, *, kern_version: int = 0,
                 expected_attach_type: int = 0) -> int:
    """Load a program (the verifier runs): its fd. OSError carries the verifier's log."""
    code = ct.create_string_buffer(insns, len(insns))
    licence = ct.create_string_buffer(license.encode())
    attr = new_attr()
    put(attr, 0, ct.c_uint32, prog_type)
    put(attr, 4, ct.c_uint32, len(insns) // 8)
    put(attr, 8, ct.c_uint64, ct.addressof(code))
    put(attr, 16, ct.c_uint64, ct.addressof(licence))
    put(attr, 40, ct.c_uint32, kern_version)
    _put_name(attr, 48, name)
    put(attr, 68, ct.c_uint32, expected_attach_type)
    for attempt in range(LOAD_ATTEMPTS):
        try:
            return bpf(BPF_PROG_LOAD, attr)
        except OSError as error:
            # EAGAIN: a signal came while the verifier ran (libbpf retries too).
            if error.errno == errno.EAGAIN and attempt < LOAD_ATTEMPTS - 1:
                continue
            if error.errno not in (errno.EACCES, errno.EINVAL):
                raise
            break
    log = ct.create_string_buffer(LOG_SIZE)          # again, with the verifier's reasons
    put(attr, 24, ct.c_uint32, 1)
    put(attr, 28, ct.c_uint32, LOG_SIZE)
    put(attr, 32, ct.c_uint64, ct.addressof(log))
    try:
        return bpf(BPF_PROG_LOAD, attr)
    except OSError as error:
        tail = log.value.decode(errors="replace").strip().splitlines()[-8:]
        raise OSError(error.errno, f"{error.strerror}; verifier: {' | '.join(tail)}") from None


def raw_tracepoint_open(name: str, prog_fd: int) -> int:
    """Attach a raw tracepoint program: the link's fd (the attachment lives while it does)."""
    text = ct.create_string_buffer(name.encode())
    attr = new_attr()
    put(attr, 0, ct.c_uint64, ct.addressof(text))
    put(attr, 8, ct.c_uint32, prog_fd)
    return bpf(BPF_RAW_TRACEPOINT_OPEN, attr)
