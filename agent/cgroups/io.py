"""Block I/O a container's cgroup has done, per device: v1 `blkio.throttle.io_service_bytes_recursive`
and `..._io_serviced_recursive`, v2 `io.stat`, in the shape of Docker's
`blkio_stats.io_service_bytes_recursive` and `io_serviced_recursive`.

On cgroup v1 the kernel counts a cgroup's bios in blk-throttle, and since Linux 6.9 blk-throttle
is set up on a disk only once a throttle rule has been written for it: until then every v1
figure stays 0, whatever is written. `enable_v1_accounting` writes the no-op rule "MAJ:MIN 0"
(0 is "no limit") for the disks under Corral's state (its volumes and container layers) in a
cgroup of Corral's, which sets blk-throttle up on those disks and limits nothing. Only I/O that
reaches the disk is counted: writes to a tmpfs never are, and buffered writes flushed later by
the kernel's writeback threads are charged to those threads on v1 (direct and sync writes are
the container's own).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable

from agent.cgroups import files

V1_FILE = "blkio.throttle.io_service_bytes_recursive"
V1_COUNT_FILE = "blkio.throttle.io_serviced_recursive"
V1_RULE_FILE = "blkio.throttle.read_bps_device"
V2_FILE = "io.stat"


@dataclass(frozen=True)
class IoEntry:
    """One of Docker's BlkioStatEntry: bytes moved on a device for one operation."""

    major: int
    minor: int
    op: str        # v1: Read, Write, Sync, Async, Discard, Total; v2: read, write (as dockerd names them)
    value: int

    def to_docker(self) -> dict:
        return {"major": self.major, "minor": self.minor, "op": self.op, "value": self.value}


@dataclass(frozen=True)
class BlockIo:
    """One reading: bytes and operations per disk and op."""

    service_bytes: tuple[IoEntry, ...] = ()
    serviced: tuple[IoEntry, ...] = ()


def parse_v1(text: str) -> list[IoEntry]:
    """`8:0 Read 4096` lines; the closing `Total N` line (all devices) is left out, as runc does."""
    entries = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 3 or ":" not in fields[0]:
            continue
        major, _, minor = fields[0].partition(":")
        entries.append(IoEntry(int(major), int(minor), fields[1], int(fields[2])))
    return entries


def parse_v2(text: str, read: str = "rbytes", write: str = "wbytes") -> list[IoEntry]:
    """`8:0 rbytes=1 wbytes=2 rios=...` lines as dockerd turns them into entries: read and write
    (bytes; with read="rios", write="wios" the operations)."""
    entries = []
    for line in text.splitlines():
        device, *pairs = line.split()
        if ":" not in device:
            continue
        major, _, minor = device.partition(":")
        values = dict(pair.split("=", 1) for pair in pairs if "=" in pair)
        entries.append(IoEntry(int(major), int(minor), "read", int(values.get(read, 0))))
        entries.append(IoEntry(int(major), int(minor), "write", int(values.get(write, 0))))
    return entries


def read_v1(read, blkio_dir: str) -> BlockIo:
    """From a v1 blkio directory with `read(path) -> bytes` (files.read_bytes)."""
    def entries(name: str) -> tuple[IoEntry, ...]:
        data = files.optional_bytes(read, os.path.join(blkio_dir, name))
        return tuple(parse_v1(data.decode())) if data else ()
    return BlockIo(entries(V1_FILE), entries(V1_COUNT_FILE))


def read_v2(read, unified_dir: str) -> BlockIo:
    data = files.optional_bytes(read, os.path.join(unified_dir, V2_FILE))
    if not data:
        return BlockIo()
    text = data.decode()
    return BlockIo(tuple(parse_v2(text)), tuple(parse_v2(text, "rios", "wios")))


def whole_disk(device: int, sys_root: str = "/sys") -> str | None:
    """"MAJ:MIN" of the disk holding filesystem device `device` (st_dev): the disk itself, or
    the parent of a partition; None for a device that is no block device (tmpfs, overlay)."""
    link = os.path.join(sys_root, "dev", "block", f"{os.major(device)}:{os.minor(device)}")
    try:
        real = os.path.realpath(link)
        if os.path.exists(os.path.join(real, "partition")):
            real = os.path.dirname(real)
        with open(os.path.join(real, "dev")) as handle:
            return handle.read().strip()
    except OSError:
        return None


def disks_under(paths: Iterable[str], sys_root: str = "/sys") -> list[str]:
    """The disks ("MAJ:MIN") the filesystems of `paths` live on."""
    disks: list[str] = []
    for path in paths:
        try:
            disk = whole_disk(os.stat(path).st_dev, sys_root)
        except OSError:
            continue
        if disk and disk not in disks:
            disks.append(disk)
    return disks


def enable_v1_accounting(blkio_dir: str, disks: Iterable[str]) -> None:
    """Write the no-op throttle rule for each disk in a blkio cgroup of Corral's (see above)."""
    for disk in disks:
        files.write_value(os.path.join(blkio_dir, V1_RULE_FILE), f"{disk} 0",
                          hint="the disk has no blk-throttle queue: block I/O figures stay 0 on it")
