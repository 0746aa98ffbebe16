"""Per-CPU array maps, read and written in batches: one bpf() syscall per key range instead
of one per key (the policy tick and every scrape read 512 x ncpu counters per container).
Kernels without batch operations fall back to key-by-key access."""
from __future__ import annotations

import ctypes as ct
import errno
from typing import Any

# A ctypes type: a counter struct of structs.py or c_uint64 (typeshed has no public name for both).
CType = Any


def zero_range(table: Any, ctype: CType, ncpus: int, start: int, count: int) -> None:
    """Set keys start..start+count-1 to zero on every CPU."""
    from bcc import lib
    keys = (ct.c_uint32 * count)(*range(start, start + count))
    values = (ctype * (count * ncpus))()
    done = ct.c_uint32(count)
    if lib.bpf_update_batch(table.map_fd, keys, values, ct.byref(done)) != 0:
        for key in range(start, start + count):     # kernels without batch ops
            table[ct.c_uint32(key)] = table.Leaf()


def lookup_range(table: Any, ctype: CType, ncpus: int, start: int, count: int) -> Any | None:
    """The raw per-CPU values of keys start..start+count-1 in one batch syscall (key-major,
    ncpu values per key), or None where the kernel has no batch lookup."""
    from bcc import lib
    keys = (ct.c_uint32 * count)()
    values = (ctype * (count * ncpus))()
    in_batch = ct.c_uint32(start - 1)
    out_batch = ct.c_uint32(0)
    done = ct.c_uint32(count)
    result = lib.bpf_lookup_batch(table.map_fd, ct.byref(in_batch) if start else None,
                                  ct.byref(out_batch), keys, values, ct.byref(done))
    # ENOENT: the range ended at the end of the map; `done` keys were read (the rest are 0).
    code = -result if result < -1 else (ct.get_errno() if result else 0)
    return values if code in (0, errno.ENOENT) else None


def read_range(table: Any, ctype: CType, ncpus: int, start: int, count: int) -> list[list[Any]]:
    """Per-CPU values of keys start..start+count-1: one list of ncpu values per key."""
    values = lookup_range(table, ctype, ncpus, start, count)
    if values is None:
        return [list(table[ct.c_uint32(key)]) for key in range(start, start + count)]
    return [list(values[i * ncpus:(i + 1) * ncpus]) for i in range(count)]


def total(cpus: list[Any]) -> int:
    """The sum of a u64 counter's per-CPU values (BCC gives ints or c_uint64s)."""
    return sum(c if isinstance(c, int) else c.value for c in cpus)
