"""A BPF ring buffer map read from user space without libbcc: the consumer page mapped
read-write, the producer page and the data (mapped twice by the kernel, so a record that wraps
reads as one piece) read-only, and epoll on the map's fd to wait for records. The protocol is
the kernel's (kernel/bpf/ringbuf.c) as libbpf reads it (tools/lib/bpf/ringbuf.c): each record
has an 8-byte header whose length word carries BUSY (being written) and DISCARD bits; the
consumer position moves past a record once it is handed on."""
from __future__ import annotations

import ctypes as ct
import mmap
import select
import struct
from typing import Any, Callable

from agent.errors import KernelError

BUSY, DISCARD = 1 << 31, 1 << 30
HEADER = 8

# `on_event(ctx, data, size)`, bcc's callback signature: data is a ctypes pointer to the record.
OnEvent = Callable[[Any, Any, int], Any]


class RingBuffer:
    def __init__(self, map_fd: int, size: int, on_event: OnEvent) -> None:
        if size <= 0 or size & (size - 1) or size % mmap.PAGESIZE:
            raise KernelError(f"ring buffer of {size} bytes: expected a power of two of pages")
        self._on_event = on_event
        self._mask = size - 1
        page = mmap.PAGESIZE
        try:
            self._consumer = mmap.mmap(map_fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            self._producer = mmap.mmap(map_fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page)
        except OSError as error:
            raise KernelError(f"mapping the event ring buffer: {error.strerror}") from None
        self._poller = select.epoll()
        self._poller.register(map_fd, select.EPOLLIN)

    def poll(self, timeout_ms: int) -> int:
        """Wait up to `timeout_ms` for records, then consume; how many were handed on."""
        count = self.consume()
        if count == 0 and timeout_ms > 0:
            self._poller.poll(timeout_ms / 1000)
            count = self.consume()
        return count

    def consume(self) -> int:
        """Hand every complete record to `on_event`, in order; how many."""
        page = mmap.PAGESIZE
        consumer = struct.unpack_from("<Q", self._consumer, 0)[0]
        producer = struct.unpack_from("<Q", self._producer, 0)[0]
        count = 0
        while consumer < producer:
            at = page + (consumer & self._mask)
            length = struct.unpack_from("<I", self._producer, at)[0]
            if length & BUSY:
                break                               # still being written: the next poll gets it
            size = length & ~(BUSY | DISCARD)
            if not length & DISCARD:
                data = self._producer[at + HEADER:at + HEADER + size]
                buffer = ct.create_string_buffer(data, size)
                self._on_event(None, buffer, size)
                count += 1
            consumer += (size + HEADER + 7) // 8 * 8
            struct.pack_into("<Q", self._consumer, 0, consumer)
            producer = struct.unpack_from("<Q", self._producer, 0)[0]
        return count

    def close(self) -> None:
        self._poller.close()
        self._consumer.close()
        self._producer.close()


def drain(map_fd: int, on_event: OnEvent) -> int:
    """Consume what waits in a ring buffer known only by its fd (a retired generation's)."""
    from agent.probes import bpf_syscall
    size = int(bpf_syscall.map_info(map_fd)["max_entries"])
    ring = RingBuffer(map_fd, size, on_event)
    try:
        return ring.consume()
    finally:
        ring.close()
