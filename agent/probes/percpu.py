"""Per-CPU array maps, read and written in batches: one bpf() syscall per key range instead
of one per key (the policy tick and every scrape read 512 x ncpu counters per container).
Kernels without batch operations fall back to key-by-key access."""
from __future__ import annotations

import ctypes as ct
import errno
from typing import Any

from agent.probes import bpf_syscall

# A ctypes type: a counter struct of structs.py or c_uint64 (typeshed has no public name for both).
CType = Any


def zero_range(table: Any, ctype: CType, ncpus: int, start: int, count: int) -> None:
    """Set keys start..start+count-1 to zero on every CPU."""
    keys = (ct.c_uint32 * count)(*range(start, start + count))
    values = (ctype * (count * ncpus))()
    done, code = bpf_syscall.batch(bpf_syscall.BPF_MAP_UPDATE_BATCH, table.map_fd, keys, values, count)
    if code or done != count:
        for key in range(start, start + count):     # kernels without batch ops
            table[ct.c_uint32(key)] = ctype()


def lookup_range(table: Any, ctype: CType, ncpus: int, start: int, count: int) -> Any | None:
    """The raw per-CPU values of keys start..start+count-1 in one batch syscall (key-major,
    ncpu values per key), or None where the kernel has no batch lookup."""
    keys = (ct.c_uint32 * count)()
    values = (ctype * (count * ncpus))()
    in_batch = ct.c_uint32(start - 1)
    out_batch = ct.c_uint32(0)
    _done, code = bpf_syscall.batch(bpf_syscall.BPF_MAP_LOOKUP_BATCH, table.map_fd, keys, values, count,
                                    in_batch if start else None, out_batch)
    # ENOENT: the range ended at the end of the map; `done` keys were read (the rest are 0).
    return values if code in (0, errno.ENOENT) else None


def read_range(table: Any, ctype: CType, ncpus: int, start: int, count: int) -> list[list[Any]]:
    """Per-CPU values of keys start..start+count-1: one list of ncpu values per key."""
    values = lookup_range(table, ctype, ncpus, start, count)
    if values is None:
        return [list(table[ct.c_uint32(key)]) for key in range(start, start + count)]
    return [list(values[i * ncpus:(i + 1) * ncpus]) for i in range(count)]


def total(cpus: list[Any]) -> int:
    """The sum of a u64 counter's per-CPU values (ints or c_uint64s)."""
    return sum(c if isinstance(c, int) else c.value for c in cpus)
