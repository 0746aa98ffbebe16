"""A BPF map read and written through bpf_syscall, with the key and value types of its layout
(layout.py): the subset of bcc's table API the probes use (`t[key]`, `t[key] = value`, `pop`,
`keys`/`values`/`items`, `len`, `map_fd`, `Key`/`Leaf`), so slots.py, readings.py and
enforcement.py read the maps the same way whether or not bcc is loaded.

Per-CPU maps hold one value per possible CPU, each padded to 8 bytes: reading a key gives the
list of per-CPU values; writing one value writes it on every CPU.
"""
from __future__ import annotations

import ctypes as ct
from typing import Any, Iterator

from agent.errors import KernelError
from agent.probes import bpf_syscall

ARRAY_TYPES = {2, 6}                 # BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_PERCPU_ARRAY
PERCPU_TYPES = {5, 6, 10}            # PERCPU_HASH, PERCPU_ARRAY, LRU_PERCPU_HASH


class Table:
    def __init__(self, name: str, fd: int, map_type: int, key_type: Any, leaf_type: Any, max_entries: int,
                 ncpus: int) -> None:
        self.name = name
        self.map_fd = fd
        self.map_type = map_type
        self.Key = key_type
        self.Leaf = leaf_type
        self.max_entries = max_entries
        self.ncpus = ncpus
        self.percpu = map_type in PERCPU_TYPES
        self._stride = (ct.sizeof(leaf_type) + 7) // 8 * 8

    def _key(self, key: Any) -> Any:
        return key if isinstance(key, ct._SimpleCData | ct.Structure | ct.Union | ct.Array) else self.Key(key)

    def _buffer(self) -> Any:
        return ct.create_string_buffer(self._stride * self.ncpus) if self.percpu else self.Leaf()

    def _decode(self, raw: Any) -> Any:
        if not self.percpu:
            return raw
        data = raw.raw
        return [self.Leaf.from_buffer_copy(data, cpu * self._stride) for cpu in range(self.ncpus)]

    def __getitem__(self, key: Any) -> Any:
        value = self._buffer()
        if not bpf_syscall.lookup(self.map_fd, self._key(key), value):
            raise KeyError(key)
        return self._decode(value)

    def get(self, key: Any, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __setitem__(self, key: Any, value: Any) -> None:
        if self.percpu:
            cpus = value if isinstance(value, list | tuple) else [value] * self.ncpus
            raw = ct.create_string_buffer(self._stride * self.ncpus)
            for cpu, one in enumerate(cpus):
                ct.memmove(ct.addressof(raw) + cpu * self._stride, ct.addressof(one), ct.sizeof(self.Leaf))
            value = raw
        elif ct.sizeof(value) < ct.sizeof(self.Leaf):       # the kernel would read past it
            raise KernelError(f"BPF map {self.name}: a value of {ct.sizeof(value)} bytes, "
                              f"expected {ct.sizeof(self.Leaf)}")
        try:
            bpf_syscall.update(self.map_fd, self._key(key), value)
        except OSError as error:
            raise KernelError(f"BPF map {self.name}: cannot update a key: {error.strerror}") from None

    def __delitem__(self, key: Any) -> None:
        if not bpf_syscall.delete(self.map_fd, self._key(key)):
            raise KeyError(key)

    def pop(self, key: Any, default: Any = None) -> Any:
        try:
            value = self[key]
        except KeyError:
            return default
        try:
            bpf_syscall.delete(self.map_fd, self._key(key))
        except OSError:
            pass                                    # an array: its keys cannot be deleted
        return value

    def keys(self) -> Iterator[Any]:
        if self.map_type in ARRAY_TYPES:
            yield from (self.Key(index) for index in range(self.max_entries))
            return
        key = None
        while True:
            following = self.Key()
            if not bpf_syscall.next_key(self.map_fd, key, following):
                return
            yield following
            key = following

    __iter__ = keys

    def values(self) -> Iterator[Any]:
        return (value for _key, value in self.items())

    def items(self) -> Iterator[tuple[Any, Any]]:
        for key in list(self.keys()):
            value = self._buffer()
            if bpf_syscall.lookup(self.map_fd, key, value):     # a key deleted meanwhile is skipped
                yield key, self._decode(value)

    def __len__(self) -> int:
        if self.map_type in ARRAY_TYPES:
            return self.max_entries
        return sum(1 for _ in self.keys())

    def __contains__(self, key: Any) -> bool:
        return self.get(key) is not None
