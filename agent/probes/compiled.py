"""Loading the compiled probes (object_file.ProbeObject) into the kernel without libbcc: create
every map of the object, load each program with the fds of those maps written in (the
verifier runs here), attach each tracepoint on its own (one that fails is recorded in
`status` and the others still run), and load the cgroup programs that
`attachments.CgroupAttachments` later puts on containers' directories.

The object comes from cache.py (compiled once, in a child process that imports bcc): a daemon
never maps libbcc, libLLVM or libclang. Each load makes new maps and programs, so a restarted
daemon starts from zeroed counters and never shares state with an earlier one's programs,
which pins.py may keep enforcing until this daemon retires them.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any, Callable, Mapping

from agent.errors import KernelError
from agent.probes import bpf_syscall, cgroup_programs, layout, ringbuf, tracing
from agent.probes.maps import Table
from agent.probes.object_file import ProbeObject, link_maps
from agent.probes.source import ProbeOptions, Tracepoint, tracepoints

log = logging.getLogger("corral.probes")

PROG_TRACEPOINT, PROG_CGROUP_SKB, PROG_RAW_TRACEPOINT, PROG_CGROUP_SOCK_ADDR = 5, 8, 17, 18
SKB_PROGRAMS = {"corral_skb_in": cgroup_programs.CGROUP_INET_INGRESS,
                "corral_skb_out": cgroup_programs.CGROUP_INET_EGRESS}
EGRESS_PROGRAMS = {"corral_connect4": cgroup_programs.CGROUP_INET4_CONNECT,
                   "corral_sendmsg4": cgroup_programs.CGROUP_UDP4_SENDMSG,
                   "corral_connect6": cgroup_programs.CGROUP_INET6_CONNECT,
                   "corral_sendmsg6": cgroup_programs.CGROUP_UDP6_SENDMSG}
EVENTS = "events"                       # the ring buffer map (probes/common.h)


class CompiledProbes:
    """One loaded object: its maps by name, its program fds, and which probes attached."""

    def __init__(self, compiled: ProbeObject, ncpus: int) -> None:
        self.object = compiled
        self.ncpus = ncpus
        self.status: dict[str, bool] = {}
        self.skb_fds: dict[str, int] = {}       # empty: the cgroup_skb counters did not load
        self.egress_fds: dict[str, int] = {}    # empty: the sock_addr egress programs did not load
        self._egress_thread: threading.Thread | None = None
        self.tracepoint_fds: list[int] = []     # perf events holding tracepoint programs
        self.links: dict[str, int] = {}         # raw tracepoint -> its link's fd
        self.map_fds: dict[str, int] = {}
        self._programs: dict[str, int] = {}
        self._tables: dict[str, Table] = {}
        self.ring: ringbuf.RingBuffer | None = None

    def create_maps(self) -> None:
        try:
            for spec in self.object.maps:
                self.map_fds[spec.name] = bpf_syscall.create_map(spec.type, spec.key_size, spec.value_size,
                                                                 spec.max_entries, spec.flags, spec.name)
        except OSError as error:
            self.cleanup()
            raise KernelError(f"creating the probes' BPF map {spec.name}: {error.strerror}") from None

    def table(self, name: str) -> Table:
        if name not in self._tables:
            spec = next((m for m in self.object.maps if m.name == name), None)
            if spec is None:
                raise KeyError(name)
            self._tables[name] = Table(name, self.map_fds[name], spec.type, layout.decode(spec.key_desc),
                                       layout.decode(spec.leaf_desc), spec.max_entries, self.ncpus)
        return self._tables[name]

    def load(self, name: str, prog_type: int, expected_attach_type: int = 0) -> int:
        """The fd of program `name`, loaded on first use."""
        if name not in self._programs:
            spec = self.object.programs.get(name)
            if spec is None:
                raise KernelError(f"program {name} is not in the compiled probes")
            try:
                self._programs[name] = bpf_syscall.load_program(
                    prog_type, link_maps(spec, self.map_fds), self.object.license, name,
                    kern_version=self.object.kern_version, expected_attach_type=expected_attach_type)
            except OSError as error:
                raise KernelError(f"loading BPF program {name}: {error.strerror}") from None
        return self._programs[name]

    def program_fds(self) -> dict[str, int]:
        """Every loaded program by function name (for tests and bench/probe_cost.py)."""
        return dict(self._programs)

    def link_fd(self, tracepoint: str) -> int | None:
        """The fd of a raw tracepoint's attachment (a BPF link, which can be pinned)."""
        return self.links.get(tracepoint)

    def open_ring(self, on_event: ringbuf.OnEvent) -> None:
        spec = next(m for m in self.object.maps if m.name == EVENTS)
        self.ring = ringbuf.RingBuffer(self.map_fds[EVENTS], spec.max_entries, on_event)

    def load_egress_in_background(self) -> None:
        """Load the egress programs on a thread: the verifier takes ~0.3 s over their four
        programs (bench/README.md, Footprint), the bulk of a start from the cache, and nothing
        needs them before the first egress rule. `egress_ready` waits for them."""
        def work() -> None:
            # Process signals go to the other threads: one arriving here would stop the verifier.
            signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
            self.egress_fds = _load_cgroup_programs(
                self, PROG_CGROUP_SOCK_ADDR, EGRESS_PROGRAMS, with_attach_type=True,
                what="egress enforcement: cannot load the cgroup sock_addr programs")
        self._egress_thread = threading.Thread(target=work, name="probe-egress-load", daemon=True)
        self._egress_thread.start()

    def egress_ready(self) -> dict[str, int]:
        """The egress programs' fds, once loaded ({}: they did not load)."""
        if self._egress_thread is not None:
            self._egress_thread.join()
            self._egress_thread = None
        return self.egress_fds

    def cleanup(self) -> None:
        """Detach every tracepoint and close programs and maps (cgroup attachments are the caller's)."""
        self.egress_ready()
        if self.ring is not None:
            self.ring.close()
            self.ring = None
        fds = [*self.tracepoint_fds, *self.links.values(), *self._programs.values(), *self.map_fds.values()]
        for collection in (self.tracepoint_fds, self.links, self._programs, self.map_fds, self._tables):
            collection.clear()
        for fd in fds:
            os.close(fd)


def load_probes(compiled: ProbeObject, options: ProbeOptions, tracefs: Path,
                on_event: ringbuf.OnEvent) -> CompiledProbes:
    probes = CompiledProbes(compiled, len(tracing.possible_cpus()))
    probes.create_maps()
    try:
        for point in tracepoints(options):
            probes.status.setdefault(point.probe, True)
            try:
                _attach(probes, point, tracefs)
            except KernelError as error:        # one probe's failure must not stop the rest
                probes.status[point.probe] = False
                log.warning("probe %s: cannot attach %s to %s: %s", point.probe, point.function,
                            point.target, error)
        probes.skb_fds = _load_cgroup_programs(probes, PROG_CGROUP_SKB, SKB_PROGRAMS, with_attach_type=False,
                                               what="probe network: cannot load cgroup_skb programs")
        probes.status["network"] = bool(probes.skb_fds)
        probes.open_ring(on_event)
        # Without them egress rules fail loudly in set_egress.
        probes.load_egress_in_background()
    except BaseException:
        probes.cleanup()
        raise
    return probes


def _load_cgroup_programs(probes: CompiledProbes, prog_type: int, programs: Mapping[str, int], *,
                          with_attach_type: bool, what: str) -> dict[str, int]:
    """Program fds by name, or {} when any of them does not load (all or nothing)."""
    fds = {}
    try:
        for name, attach_type in programs.items():
            fds[name] = probes.load(name, prog_type, attach_type if with_attach_type else 0)
    except KernelError as error:            # the other probes work without these
        log.warning("%s: %s", what, error)
        return {}
    return fds


def _attach(probes: CompiledProbes, point: Tracepoint, tracefs: Path) -> None:
    if point.raw:
        prog = probes.load(point.function, PROG_RAW_TRACEPOINT)
        try:
            probes.links[point.target] = bpf_syscall.raw_tracepoint_open(point.target, prog)
        except OSError as error:
            raise KernelError(f"raw tracepoint {point.target}: {error.strerror}") from None
        return
    prog = probes.load(point.function, PROG_TRACEPOINT)
    probes.tracepoint_fds.append(tracing.attach_tracepoint(prog, tracefs, point.target))


def drain_ring(map_fd: int, on_event: Callable[[Any, Any, int], None]) -> None:
    """Read every record waiting in a ring buffer other than our own (a retired generation's)."""
    ringbuf.drain(map_fd, on_event)
