"""The probes' C source as BCC compiles it: probes/*.c as one translation unit, the -D flags
that size its maps, and the tracepoints its programs attach to.

All probe files are compiled into ONE BPF object: BCC costs ~60 MiB and 0.2-0.5 s per compiled
program, and one object lets every program share the watched-cgroup filter and the event ring
buffer.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from agent.errors import InvalidArgument, KernelError
from agent.probes.structs import NR_SYSCALLS

# launcher.c, enforce.c and rates.c first: syscalls.c calls their in_setup(), enforce_kill() and
# rate_add() (network.c too).
PROBE_FILES = ("launcher.c", "enforce.c", "rates.c", "syscalls.c", "memory.c", "network.c", "process.c")
WATCH_INDEX_SIZE = 1024
_INCLUDE = re.compile(r'^#include "common\.h"\n', re.MULTILINE)


@dataclass(frozen=True)
class ProbeOptions:
    """What to compile in. `max_containers` sizes the per-container counter arrays."""

    syscall_latency: bool = False   # sys_enter program + histograms: costs 2-4x the counting
    debug_dump: bool = False        # log the final BPF C text when loading
    max_containers: int = 128
    # The corral-launch path the daemon spawns: its set-up of a container is neither counted
    # nor killed (probes/launcher.c). None: every call of a watched cgroup counts.
    launcher: str | None = None


@dataclass(frozen=True)
class Tracepoint:
    """One program and where it is attached; `raw` means a raw tracepoint (no tracefs record)."""

    probe: str
    function: str
    target: str
    raw: bool = False


def tracepoints(options: ProbeOptions) -> list[Tracepoint]:
    points = [
        Tracepoint("syscalls", "corral_sys_exit", "sys_exit", raw=True),
        Tracepoint("oom", "corral_mark_victim", "oom:mark_victim"),
        Tracepoint("tcp_connect", "corral_sock_state", "sock:inet_sock_set_state"),
        Tracepoint("tcp_retransmit", "corral_tcp_retransmit", "tcp:tcp_retransmit_skb"),
        Tracepoint("process_exec", "corral_process_exec", "sched:sched_process_exec"),
        Tracepoint("process_fork", "corral_process_fork", "sched:sched_process_fork"),
        Tracepoint("process_exit", "corral_process_exit", "sched:sched_process_exit"),
    ]
    if options.syscall_latency:
        points += [
            Tracepoint("syscall_latency", "corral_sys_enter", "sys_enter", raw=True),
            Tracepoint("syscall_latency", "corral_forget_start", "sched:sched_process_exit"),
        ]
    return points


def build_source(probes_dir: Path) -> str:
    """common.h followed by every probe file, as one translation unit."""
    try:
        parts = [(probes_dir / "common.h").read_text()]
        for name in PROBE_FILES:
            parts.append(f"\n/* ---- {name} ---- */\n" + _INCLUDE.sub("", (probes_dir / name).read_text()))
    except OSError as error:
        raise KernelError(f"probe source {error.filename}: {error.strerror}",
                          hint="point probes_dir at the repository's probes/ directory") from None
    return "".join(parts)


def cflags(options: ProbeOptions, watch_index_size: int = WATCH_INDEX_SIZE) -> list[str]:
    if watch_index_size < 1 or watch_index_size & (watch_index_size - 1):
        raise InvalidArgument(f"watch_index_size: must be a power of two, got {watch_index_size}")
    if not 1 <= options.max_containers <= 4096:
        raise InvalidArgument(f"max_containers: must be between 1 and 4096, got {options.max_containers}")
    flags = [f"-DMAX_CONTAINERS={options.max_containers}", f"-DNR_SYSCALLS={NR_SYSCALLS}",
             f"-DWATCH_INDEX_SIZE={watch_index_size}"]
    if options.syscall_latency:
        flags.append("-DSYSCALL_LATENCY")
    return flags
