"""Attaching tracing programs without libbcc: a tracepoint program goes on a perf event of the
tracepoint (perf_event_open + PERF_EVENT_IOC_SET_BPF, what bcc's bpf_attach_tracepoint does),
a raw tracepoint program on a BPF_RAW_TRACEPOINT_OPEN link (bpf_syscall). Closing the fd
detaches; the raw tracepoint link can also be pinned (pins.py)."""
from __future__ import annotations

import ctypes as ct
import fcntl
import os
import platform
from pathlib import Path

from agent.errors import KernelError

_SYS_PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241, "riscv64": 241, "loongarch64": 241}
PERF_TYPE_TRACEPOINT = 2
PERF_SAMPLE_RAW = 1 << 10
PERF_FLAG_FD_CLOEXEC = 1 << 3
PERF_ATTR_SIZE = 64                             # PERF_ATTR_SIZE_VER0: every kernel takes it
PERF_EVENT_IOC_ENABLE, PERF_EVENT_IOC_SET_BPF = 0x2400, 0x40042408


def tracepoint_id(tracefs: Path, category: str, event: str) -> int:
    try:
        return int((tracefs / "events" / category / event / "id").read_text())
    except (OSError, ValueError):
        raise KernelError(f"tracepoint {category}:{event} does not exist in {tracefs}") from None


def attach_tracepoint(prog_fd: int, tracefs: Path, target: str) -> int:
    """Attach a loaded BPF_PROG_TYPE_TRACEPOINT program to `category:event`: the perf event's fd."""
    category, event = target.split(":")
    attr = (ct.c_uint8 * PERF_ATTR_SIZE)()
    ct.c_uint32.from_buffer(attr, 0).value = PERF_TYPE_TRACEPOINT
    ct.c_uint32.from_buffer(attr, 4).value = PERF_ATTR_SIZE
    ct.c_uint64.from_buffer(attr, 8).value = tracepoint_id(tracefs, category, event)
    ct.c_uint64.from_buffer(attr, 16).value = 1                 # sample_period
    ct.c_uint64.from_buffer(attr, 24).value = PERF_SAMPLE_RAW
    ct.c_uint32.from_buffer(attr, 48).value = 1                 # wakeup_events
    libc = ct.CDLL(None, use_errno=True)
    number = _SYS_PERF_EVENT_OPEN.get(platform.machine())
    if number is None:
        raise KernelError(f"perf_event_open: unknown syscall number on {platform.machine()}")
    fd = libc.syscall(ct.c_long(number), attr, ct.c_int(-1), ct.c_int(0), ct.c_int(-1),
                      ct.c_ulong(PERF_FLAG_FD_CLOEXEC))
    if fd < 0:
        code = ct.get_errno()
        raise KernelError(f"perf_event_open on tracepoint {target}: {os.strerror(code)}")
    try:
        fcntl.ioctl(fd, PERF_EVENT_IOC_SET_BPF, prog_fd)
        fcntl.ioctl(fd, PERF_EVENT_IOC_ENABLE, 0)
    except OSError as error:
        os.close(fd)
        raise KernelError(f"attaching a program to tracepoint {target}: {error.strerror}") from None
    return int(fd)


def possible_cpus(path: Path = Path("/sys/devices/system/cpu/possible")) -> list[int]:
    """The possible CPUs ("0-3,6"): per-CPU maps hold one value for each."""
    cpus: list[int] = []
    for part in path.read_text().strip().split(","):
        first, _, last = part.partition("-")
        cpus.extend(range(int(first), int(last or first) + 1))
    return cpus
