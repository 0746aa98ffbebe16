"""Loading the probes with BCC: compile the one BPF object, attach each tracepoint on its
own (one that fails is recorded in `status` and the others still run), and load the cgroup
programs that `attachments.CgroupAttachments` later puts on containers' directories.

This is the only module that imports bcc (lazily: ~27 ms and ~62 MiB, paid at `load`;
the compile then leaves ~21 MiB of freed heap, handed back by `release_compiler_heap`).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Mapping

from agent.errors import KernelError
from agent.probes import cgroup_programs
from agent.probes.source import ProbeOptions, Tracepoint, tracepoints

log = logging.getLogger("corral.probes")

SKB_PROGRAMS = {"corral_skb_in": cgroup_programs.CGROUP_INET_INGRESS,
                "corral_skb_out": cgroup_programs.CGROUP_INET_EGRESS}
EGRESS_PROGRAMS = {"corral_connect4": cgroup_programs.CGROUP_INET4_CONNECT,
                   "corral_sendmsg4": cgroup_programs.CGROUP_UDP4_SENDMSG,
                   "corral_connect6": cgroup_programs.CGROUP_INET6_CONNECT,
                   "corral_sendmsg6": cgroup_programs.CGROUP_UDP6_SENDMSG}


class CompiledProbes:
    """One loaded BPF object: its maps by name, its program fds, and which probes attached."""

    def __init__(self, bpf: Any, ncpus: int) -> None:
        self.bpf = bpf
        self.ncpus = ncpus
        self.status: dict[str, bool] = {}
        self.skb_fds: dict[str, int] = {}       # empty: the cgroup_skb counters did not load
        self.egress_fds: dict[str, int] = {}    # empty: the sock_addr egress programs did not load
        # Our own record of every tracepoint attachment: BCC keeps one per tracepoint name, so a
        # second program on the same tracepoint would replace the first in its table and
        # `cleanup` would leave the first attached (and alive) for as long as this process runs.
        self.tracepoint_fds: list[int] = []

    def table(self, name: str) -> Any:
        return self.bpf[name.encode()]

    def program_fds(self) -> dict[str, int]:
        """Every loaded program by function name (for tests and bench/probe_cost.py)."""
        return {name.decode(): fn.fd for name, fn in self.bpf.funcs.items()}

    def link_fd(self, tracepoint: str) -> int | None:
        """The fd of a raw tracepoint's attachment (a BPF link, which can be pinned)."""
        fd = self.bpf.raw_tracepoint_fds.get(tracepoint.encode())
        return int(fd) if fd is not None else None

    def cleanup(self) -> None:
        """Detach every tracepoint and close the programs (cgroup attachments are the caller's)."""
        from bcc.libbcc import lib
        while self.tracepoint_fds:
            lib.bpf_close_perf_event_fd(self.tracepoint_fds.pop())
        self.bpf.cleanup()


def drain_ring(map_fd: int, on_event: Callable[[Any, Any, int], None]) -> None:
    """Read every record waiting in a ring buffer other than our own (a retired generation's)."""
    from bcc.libbcc import _RINGBUF_CB_TYPE, lib

    def callback(ctx: Any, data: Any, size: int) -> int:
        on_event(ctx, data, size)
        return 0
    function = _RINGBUF_CB_TYPE(callback)
    manager = lib.bpf_new_ringbuf(map_fd, function, None)
    if not manager:
        raise KernelError("opening a pinned event ring buffer failed")
    try:
        lib.bpf_consume_ringbuf(manager)
    finally:
        lib.bpf_free_ringbuf(manager)


def compile_probes(source: str, flags: list[str], options: ProbeOptions, tracefs: Path,
                   probes_dir: Path, on_event: Callable[[Any, Any, int], None]) -> CompiledProbes:
    try:
        from bcc import BPF
        from bcc.utils import get_possible_cpus
    except ImportError:
        raise KernelError("BCC is not importable", hint="install Debian's python3-bpfcc") from None
    try:
        bpf = BPF(text=source.encode(), cflags=flags)
    except Exception as error:  # BCC raises bare Exception for compile errors
        raise KernelError(f"compiling probes from {probes_dir}: {error}",
                          hint="run with --dump-bpf to see the program") from None
    probes = CompiledProbes(bpf, len(get_possible_cpus()))
    for point in tracepoints(options):
        probes.status.setdefault(point.probe, True)
        try:
            _attach(probes, point, tracefs)
        except Exception as error:  # noqa: BLE001 - one probe's failure must not stop the rest
            probes.status[point.probe] = False
            log.warning("probe %s: cannot attach %s to %s: %s", point.probe, point.function,
                        point.target, error)
    probes.skb_fds = _load_cgroup_programs(bpf, BPF.CGROUP_SKB, SKB_PROGRAMS, with_attach_type=False,
                                           what="probe network: cannot load cgroup_skb programs")
    probes.status["network"] = bool(probes.skb_fds)
    # Without them egress rules fail loudly in set_egress.
    probes.egress_fds = _load_cgroup_programs(bpf, BPF.CGROUP_SOCK_ADDR, EGRESS_PROGRAMS, with_attach_type=True,
                                              what="egress enforcement: cannot load the cgroup sock_addr programs")
    probes.table("events").open_ring_buffer(on_event)
    release_compiler_heap()
    return probes


def release_compiler_heap() -> None:
    """Give back the heap clang and LLVM freed: glibc keeps it (in the main arena's top and its
    free lists) unless asked, ~23 MiB of the ~31 MiB heap a compile leaves (bench/README.md,
    Footprint). Harmless where it is not glibc: the call is skipped."""
    import ctypes
    import ctypes.util
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):   # not glibc (musl has no malloc_trim)
        log.debug("malloc_trim is not available; the compiler's freed heap stays mapped")


def _load_cgroup_programs(bpf: Any, prog_type: int, programs: Mapping[str, int], *,
                          with_attach_type: bool, what: str) -> dict[str, int]:
    """Program fds by name, or {} when any of them does not load (all or nothing)."""
    fds = {}
    try:
        for name, attach_type in programs.items():
            extra = {"attach_type": attach_type} if with_attach_type else {}
            fds[name] = bpf.load_func(name.encode(), prog_type, **extra).fd
    except Exception as error:  # noqa: BLE001 - the other probes work without these
        log.warning("%s: %s", what, error)
        return {}
    return fds


def _attach(probes: CompiledProbes, point: Tracepoint, tracefs: Path) -> None:
    bpf = probes.bpf
    if point.raw:
        bpf.attach_raw_tracepoint(tp=point.target.encode(), fn_name=point.function.encode())
        return
    category, event = point.target.split(":")
    if not (tracefs / "events" / category / event).is_dir():
        raise KernelError(f"tracepoint {point.target} does not exist in {tracefs}")
    # What BPF.attach_tracepoint does, but the attachment is recorded in our list (see above).
    from bcc import BPF
    from bcc.libbcc import lib
    function = bpf.load_func(point.function.encode(), BPF.TRACEPOINT)
    fd = lib.bpf_attach_tracepoint(function.fd, category.encode(), event.encode())
    if fd < 0:
        raise KernelError(f"attaching {point.function} to tracepoint {point.target} failed")
    probes.tracepoint_fds.append(fd)
