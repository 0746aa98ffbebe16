"""Loads Corral's probes (probes/*.c) with BCC, watches containers, and reads the maps.

All probe files are compiled into ONE BPF object: BCC costs ~60 MiB and 0.2-0.5 s per compiled
program, and one object lets every program share the watched-cgroup filter and the event ring
buffer. Each tracepoint is attached on its own, so one that fails is recorded in `status()`
and the others still run.

Containers are counted only once `watch()` registered their cgroup id: it gives the container
a slot (the index of its per-CPU counters) and attaches the cgroup_skb counters to its v2
directory. Maps are read when asked (at scrape time), never on a timer.

Policy enforcement (probes/enforce.c) is set per watched container: `set_syscall_actions`
(syscall kill rules, checked in the sys_exit program) and `set_egress` (egress rules, in
cgroup sock_addr programs attached to the container's directory only while it has rules).
`unwatch` clears both, `close` detaches everything.
"""
from __future__ import annotations

import ctypes as ct
import dataclasses
import errno
import functools
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from agent.errors import Conflict, CorralError, InvalidArgument, KernelError
from agent.probes import cgroup_programs
from agent.probes.egress import EgressPolicy, encode, rule_of
from agent.probes.events import DecodeError, EgressEvent, EventDecoder, ExecEvent, KillEvent, OomEvent
from agent.probes.structs import (EVENT_EGRESS, EVENT_EXEC, EVENT_KILL, EVENT_OOM, PROBE_ERRORS,
                                  EgressTable, KillTable, LatencyHist, NetCountersC, ProcessCountersC,
                                  SyscallCount, TcpCountersC, WatchEntry)
from agent.probes.syscall_names import OTHER

log = logging.getLogger("corral.probes")

# enforce.c first: syscalls.c calls its enforce_kill().
PROBE_FILES = ("enforce.c", "syscalls.c", "memory.c", "network.c", "process.c")
NR_SYSCALLS = 512
WATCH_INDEX_SIZE = 1024
_SKB_PROGRAMS = {"corral_skb_in": cgroup_programs.CGROUP_INET_INGRESS,
                 "corral_skb_out": cgroup_programs.CGROUP_INET_EGRESS}
_EGRESS_PROGRAMS = {"corral_connect4": cgroup_programs.CGROUP_INET4_CONNECT,
                    "corral_sendmsg4": cgroup_programs.CGROUP_UDP4_SENDMSG,
                    "corral_connect6": cgroup_programs.CGROUP_INET6_CONNECT,
                    "corral_sendmsg6": cgroup_programs.CGROUP_UDP6_SENDMSG}
KEPT_GENERATIONS = 4            # egress updates whose rule names late events can still be given
_INCLUDE = re.compile(r'^#include "common\.h"\n', re.MULTILINE)


@dataclass(frozen=True)
class ProbeOptions:
    """What to compile in. `max_containers` sizes the per-container counter arrays."""

    syscall_latency: bool = False   # sys_enter program + histograms: costs 2-4x the counting
    debug_dump: bool = False        # log the final BPF C text when loading
    max_containers: int = 128


@dataclass(frozen=True)
class NetCounters:
    rx_bytes: int
    rx_packets: int
    tx_bytes: int
    tx_packets: int


@dataclass(frozen=True)
class TcpCounters:
    connects: int                   # active opens (connect())
    retransmits: int                # on sockets the container connected


@dataclass(frozen=True)
class ProcessCounters:
    execs: int
    forks: int                      # tasks created, threads included
    exits: int                      # tasks ended, threads included


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


def _is_mounted(path: Path) -> bool:
    try:
        with open("/proc/self/mounts", encoding="utf-8") as mounts:
            return any(line.split()[1] == str(path) for line in mounts if line.strip())
    except OSError:
        return os.path.ismount(path)


def ensure_mounts(tracefs: Path = Path("/sys/kernel/tracing"),
                  bpffs: Path = Path("/sys/fs/bpf")) -> None:
    """Mount tracefs and bpffs where they are missing (tracepoint ids; pinning)."""
    libc = ct.CDLL(None, use_errno=True)
    for path, fstype in ((tracefs, "tracefs"), (bpffs, "bpf")):
        if _is_mounted(path):
            continue
        if libc.mount(fstype.encode(), str(path).encode(), fstype.encode(), 0, None) != 0:
            code = ct.get_errno()
            raise KernelError(f"mounting {fstype} on {path}: {os.strerror(code)}",
                              hint=f"run as root, or mount it: mount -t {fstype} {fstype} {path}")


def _locked(method: Callable) -> Callable:
    """Run a ProbeSet method under the set's lock."""
    @functools.wraps(method)
    def wrapper(self: "ProbeSet", *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)
    return wrapper


class ProbeSet:
    """The loaded probes of one daemon: load once, watch/unwatch containers, read, close."""

    def __init__(self, probes_dir: Path, options: ProbeOptions,
                 tracefs: Path = Path("/sys/kernel/tracing"), *,
                 watch_index_size: int = WATCH_INDEX_SIZE) -> None:
        """`watch_index_size` (cells of the filter array) is for tests that force collisions."""
        self.probes_dir = Path(probes_dir)
        self.options = options
        self.tracefs = Path(tracefs)
        self._flags = cflags(options, watch_index_size)
        self._index_mask = watch_index_size - 1
        self._source = build_source(self.probes_dir)
        self._bpf: Any = None
        self._status: dict[str, bool] = {}
        self._skb_fds: dict[str, int] = {}
        self._slots: dict[int, int] = {}          # cgroup id -> slot
        self._dirs: dict[int, str] = {}           # cgroup id -> v2 directory with our programs
        self._py_errors: dict[str, int] = {}
        self._pending: list[OomEvent | ExecEvent | KillEvent | EgressEvent] = []
        self._egress_fds: dict[str, int] = {}
        self._egress_dirs: dict[int, str] = {}    # cgroup id -> v2 directory with egress programs
        # cgroup id -> {generation: the policies of that update}, to name the rule of an event
        self._egress_policies: dict[int, dict[int, tuple[EgressPolicy, ...]]] = {}
        self._generation = 0
        self._armed: set[int] = set()             # cgroup ids with syscall kill rules
        self._decoder = EventDecoder()
        self._ncpus = 0
        # The collector reads from its scrape thread while the daemon watches and unwatches.
        self._lock = threading.RLock()
        self._events_lock = threading.Lock()

    # -- loading -------------------------------------------------------------------------------

    def dump(self) -> str:
        """The final BPF C text, with the -D flags it is compiled with."""
        return f"/* cflags: {' '.join(self._flags)} */\n{self._source}"

    @_locked
    def load(self) -> None:
        if self._bpf is not None:
            return
        ensure_mounts(self.tracefs)
        try:
            from bcc import BPF
            from bcc.utils import get_possible_cpus
        except ImportError:
            raise KernelError("BCC is not importable", hint="install Debian's python3-bpfcc") from None
        if self.options.debug_dump:
            log.info("BPF program:\n%s", self.dump())
        try:
            self._bpf = BPF(text=self._source.encode(), cflags=self._flags)
        except Exception as error:  # BCC raises bare Exception for compile errors
            raise KernelError(f"compiling probes from {self.probes_dir}: {error}",
                              hint="run with --dump-bpf to see the program") from None
        self._ncpus = len(get_possible_cpus())
        for point in tracepoints(self.options):
            self._status.setdefault(point.probe, True)
            try:
                self._attach(point)
            except Exception as error:  # noqa: BLE001 - one probe's failure must not stop the rest
                self._status[point.probe] = False
                log.warning("probe %s: cannot attach %s to %s: %s", point.probe, point.function,
                            point.target, error)
        try:
            for name in _SKB_PROGRAMS:
                self._skb_fds[name] = self._bpf.load_func(name.encode(), BPF.CGROUP_SKB).fd
            self._status["network"] = True
        except Exception as error:  # noqa: BLE001
            self._status["network"] = False
            log.warning("probe network: cannot load cgroup_skb programs: %s", error)
        try:
            for name, attach_type in _EGRESS_PROGRAMS.items():
                self._egress_fds[name] = self._bpf.load_func(name.encode(), BPF.CGROUP_SOCK_ADDR,
                                                             attach_type=attach_type).fd
        except Exception as error:  # noqa: BLE001 - egress rules then fail loudly in set_egress
            self._egress_fds.clear()
            log.warning("egress enforcement: cannot load the cgroup sock_addr programs: %s", error)
        self._table("events").open_ring_buffer(self._on_event)

    def _attach(self, point: Tracepoint) -> None:
        if point.raw:
            self._bpf.attach_raw_tracepoint(tp=point.target.encode(), fn_name=point.function.encode())
            return
        category, event = point.target.split(":")
        if not (self.tracefs / "events" / category / event).is_dir():
            raise KernelError(f"tracepoint {point.target} does not exist in {self.tracefs}")
        self._bpf.attach_tracepoint(tp=point.target.encode(), fn_name=point.function.encode())

    def _table(self, name: str) -> Any:
        return self._bpf[name.encode()]

    def _require_loaded(self) -> Any:
        if self._bpf is None:
            raise CorralError("probes are not loaded", hint="call ProbeSet.load() first")
        return self._bpf

    # -- watching ------------------------------------------------------------------------------

    @_locked
    def watch(self, cgroup_id: int, unified_dir: str) -> None:
        self._require_loaded()
        try:
            actual = os.stat(unified_dir).st_ino
        except OSError as error:
            raise KernelError(f"cgroup directory {unified_dir}: {error.strerror}") from None
        if actual != cgroup_id:
            raise InvalidArgument(f"cgroup id {cgroup_id} is not the id of {unified_dir} ({actual})")
        if cgroup_id not in self._slots:
            free = sorted(set(range(self.options.max_containers)) - set(self._slots.values()))
            if not free:
                raise Conflict(f"cannot watch cgroup {cgroup_id}: all {self.options.max_containers} "
                               "probe slots are in use", hint="raise ProbeOptions.max_containers")
            slot = free[0]
            self._zero_slot(slot)
            self._register(cgroup_id, slot)
            self._slots[cgroup_id] = slot
        if self._status.get("network") and self._dirs.get(cgroup_id) != unified_dir:
            self._attach_skb(cgroup_id, unified_dir)

    def _attach_skb(self, cgroup_id: int, unified_dir: str) -> None:
        try:
            for name, attach_type in _SKB_PROGRAMS.items():
                fd = self._skb_fds[name]
                cgroup_programs.detach_stale(unified_dir, attach_type, {name},
                                             cgroup_programs.program_id(fd))
                if cgroup_programs.program_id(fd) not in cgroup_programs.attached_programs(
                        unified_dir, attach_type):
                    cgroup_programs.attach(unified_dir, fd, attach_type)
            self._dirs[cgroup_id] = unified_dir
        except (KernelError, OSError) as error:
            self._count_py_error("network")
            log.warning("probe network: cannot count traffic of cgroup %s: %s", cgroup_id, error)
            self._detach_skb(unified_dir, cgroup_id)

    def _detach_skb(self, unified_dir: str, cgroup_id: int) -> None:
        try:
            if os.stat(unified_dir).st_ino != cgroup_id:
                return                              # removed, and the name reused: not ours
        except OSError:
            return                                  # removed: the attachments went with it
        for name, attach_type in _SKB_PROGRAMS.items():
            cgroup_programs.detach(unified_dir, self._skb_fds[name], attach_type)

    @_locked
    def unwatch(self, cgroup_id: int, unified_dir: str | None) -> None:
        self._require_loaded()
        directory = unified_dir or self._dirs.get(cgroup_id)
        if directory and self._skb_fds:
            self._detach_skb(directory, cgroup_id)
        self._dirs.pop(cgroup_id, None)
        self._detach_egress(cgroup_id, unified_dir)
        self._armed.discard(cgroup_id)
        slot = self._slots.pop(cgroup_id, None)
        if slot is None:
            return
        self._unregister(cgroup_id)
        self._zero_slot(slot)
        owners = self._table("tcp_owner")
        for key, value in list(owners.items()):
            if value.value == cgroup_id:
                owners.pop(key, None)
        if self.options.syscall_latency:
            latency = self._table("syscall_latency")
            for key in [k for k in latency.keys() if k.cgroup_id == cgroup_id]:
                latency.pop(key, None)

    def _register(self, cgroup_id: int, slot: int) -> None:
        index_table, overflow = self._table("watch_index"), self._table("watch_overflow")
        index = ct.c_uint32(cgroup_id & self._index_mask)
        if index_table[index].cgroup_id == 0:
            index_table[index] = WatchEntry(cgroup_id, slot, 0)
        else:
            overflow[ct.c_uint64(cgroup_id)] = ct.c_uint32(slot)

    def _unregister(self, cgroup_id: int) -> None:
        """Free the id's cell; an overflow id of the same cell moves in, keeping the invariant
        that an empty cell means "no watched id maps here"."""
        index_table, overflow = self._table("watch_index"), self._table("watch_overflow")
        mask = self._index_mask
        index = ct.c_uint32(cgroup_id & mask)
        if index_table[index].cgroup_id != cgroup_id:
            overflow.pop(ct.c_uint64(cgroup_id), None)
            return
        heir = next(((key.value, value.value) for key, value in overflow.items()
                     if key.value & mask == index.value), None)
        if heir is None:
            index_table[index] = WatchEntry(0, 0, 0)
            return
        index_table[index] = WatchEntry(heir[0], heir[1], 0)
        overflow.pop(ct.c_uint64(heir[0]), None)

    def _zero_slot(self, slot: int) -> None:
        self._update_percpu("syscall_counts", SyscallCount, slot * NR_SYSCALLS, NR_SYSCALLS)
        for name, ctype in (("net_counters", NetCountersC), ("tcp_counters", TcpCountersC),
                            ("process_counters", ProcessCountersC), ("oom_kills", ct.c_uint64)):
            self._update_percpu(name, ctype, slot, 1)
        self._table("kill_tables")[ct.c_uint32(slot)] = KillTable()
        self._table("egress_tables")[ct.c_uint32(slot)] = EgressTable()

    # -- enforcement ---------------------------------------------------------------------------

    def enforcement(self) -> dict[str, bool]:
        """Which enforcement the loaded probes can do: syscall kill rules (the sys_exit
        program is attached) and egress rules (the sock_addr programs loaded)."""
        with self._lock:
            return {"syscall_kill": bool(self._bpf is not None and self._status.get("syscalls")),
                    "egress": bool(self._bpf is not None and self._egress_fds)}

    def _slot_of(self, cgroup_id: int) -> int:
        slot = self._slots.get(cgroup_id)
        if slot is None:
            raise InvalidArgument(f"cgroup {cgroup_id} is not watched by the probes",
                                  hint="call ProbeSet.watch() first (the runtime does at start)")
        return slot

    @_locked
    def set_syscall_actions(self, cgroup_id: int, kill: Iterable[int] | Mapping[int, int]) -> None:
        """Replace the container's syscall kill rules: syscall numbers (SIGKILL), or a mapping
        number -> signal. Empty clears them. The signal goes to the calling process when the
        call returns."""
        self._require_loaded()
        slot = self._slot_of(cgroup_id)
        signals = dict(kill) if isinstance(kill, Mapping) else {nr: 9 for nr in kill}
        if signals and not self._status.get("syscalls"):
            raise KernelError("syscall kill rules need the syscalls probe, which is not attached",
                              hint="see the daemon log and `corral doctor`")
        table = KillTable()
        for nr, signal in signals.items():
            if not 0 <= nr < NR_SYSCALLS - 1:
                raise InvalidArgument(f"syscall number {nr}: the kill table holds 0..{NR_SYSCALLS - 2}")
            if not 1 <= signal <= 64:
                raise InvalidArgument(f"signal {signal} for syscall {nr}: expected 1-64")
            table.signal[nr] = signal
        table.armed = 1 if signals else 0
        self._table("kill_tables")[ct.c_uint32(slot)] = table
        if signals:
            self._armed.add(cgroup_id)
        else:
            self._armed.discard(cgroup_id)

    @_locked
    def set_egress(self, cgroup_id: int, unified_dir: str, policies: Sequence[EgressPolicy]) -> int:
        """Replace the container's egress rules (one EgressPolicy per selecting policy, enforcing
        and audit ones) and return the update's generation. The sock_addr programs are attached
        to `unified_dir` on first use and detached when `policies` is empty."""
        self._require_loaded()
        slot = self._slot_of(cgroup_id)
        policies = tuple(policies)
        if not policies:
            self._table("egress_tables")[ct.c_uint32(slot)] = EgressTable()
            self._detach_egress(cgroup_id, unified_dir)
            return self._generation
        if not self._egress_fds:
            raise KernelError("egress rules need the cgroup sock_addr programs, which did not load",
                              hint="see the daemon log (kernel without BPF_PROG_TYPE_CGROUP_SOCK_ADDR?)")
        self._generation = (self._generation + 1) & 0xFFFFFFFF
        table = encode(policies, self._generation)
        # The table first, then the programs: attached programs never see a half-set slot.
        self._table("egress_tables")[ct.c_uint32(slot)] = table
        kept = self._egress_policies.setdefault(cgroup_id, {})
        kept[self._generation] = policies
        for old in sorted(kept)[:-KEPT_GENERATIONS]:
            kept.pop(old)
        if self._egress_dirs.get(cgroup_id) != unified_dir:
            self._attach_egress(cgroup_id, unified_dir)
        return self._generation

    def _attach_egress(self, cgroup_id: int, unified_dir: str) -> None:
        try:
            for name, attach_type in _EGRESS_PROGRAMS.items():
                fd = self._egress_fds[name]
                own = cgroup_programs.program_id(fd)
                cgroup_programs.detach_stale(unified_dir, attach_type, {name}, own)
                if own not in cgroup_programs.attached_programs(unified_dir, attach_type):
                    cgroup_programs.attach(unified_dir, fd, attach_type)
        except (KernelError, OSError) as error:
            self._count_py_error("egress")
            self._egress_dirs[cgroup_id] = unified_dir
            self._detach_egress(cgroup_id, unified_dir)
            raise KernelError(f"attaching the egress programs to {unified_dir}: {error}",
                              hint="the directory must be the container's cgroup v2 directory") from None
        self._egress_dirs[cgroup_id] = unified_dir

    def _detach_egress(self, cgroup_id: int, unified_dir: str | None) -> None:
        """Detach our egress programs (and a crashed daemon's) from the container's directory."""
        self._egress_policies.pop(cgroup_id, None)
        directory = self._egress_dirs.pop(cgroup_id, None) or unified_dir
        if not directory or not self._egress_fds:
            return
        try:
            if os.stat(directory).st_ino != cgroup_id:
                return                              # removed, and the name reused: not ours
        except OSError:
            return                                  # removed: the attachments went with it
        for name, attach_type in _EGRESS_PROGRAMS.items():
            try:
                cgroup_programs.detach(directory, self._egress_fds[name], attach_type)
                cgroup_programs.detach_stale(directory, attach_type, {name}, -1)
            except KernelError as error:
                self._count_py_error("egress")
                log.warning("egress enforcement: cannot detach %s from %s: %s", name, directory, error)

    @_locked
    def egress_attached(self) -> dict[int, str]:
        """cgroup id -> directory, for every container whose egress programs are attached."""
        return dict(self._egress_dirs)

    # -- per-CPU arrays, read and written in batches (one syscall per range) -------------------

    def _update_percpu(self, name: str, ctype: type, start: int, count: int) -> None:
        from bcc import lib
        table = self._table(name)
        keys = (ct.c_uint32 * count)(*range(start, start + count))
        values = (ctype * (count * self._ncpus))()
        done = ct.c_uint32(count)
        if lib.bpf_update_batch(table.map_fd, keys, values, ct.byref(done)) != 0:
            for key in range(start, start + count):     # kernels without batch ops
                table[ct.c_uint32(key)] = table.Leaf()

    def _lookup_percpu(self, name: str, ctype: type, start: int, count: int) -> Any | None:
        """The raw per-CPU values of keys start..start+count-1 in one batch syscall (key-major,
        ncpu values per key), or None where the kernel has no batch lookup."""
        from bcc import lib
        table = self._table(name)
        keys = (ct.c_uint32 * count)()
        values = (ctype * (count * self._ncpus))()
        in_batch = ct.c_uint32(start - 1)
        out_batch = ct.c_uint32(0)
        done = ct.c_uint32(count)
        result = lib.bpf_lookup_batch(table.map_fd, ct.byref(in_batch) if start else None,
                                      ct.byref(out_batch), keys, values, ct.byref(done))
        # ENOENT: the range ended at the end of the map; `done` keys were read (the rest are 0).
        code = -result if result < -1 else (ct.get_errno() if result else 0)
        return values if code in (0, errno.ENOENT) else None

    def _read_percpu(self, name: str, ctype: type, start: int, count: int) -> list[list[Any]]:
        """Per-CPU values of keys start..start+count-1: one list of ncpu values per key."""
        values = self._lookup_percpu(name, ctype, start, count)
        if values is None:
            table = self._table(name)
            return [list(table[ct.c_uint32(key)]) for key in range(start, start + count)]
        return [list(values[i * self._ncpus:(i + 1) * self._ncpus]) for i in range(count)]

    def _per_slot(self, name: str, ctype: type, build: Callable[[list[Any]], Any]) -> dict[int, Any]:
        self._require_loaded()
        if not self._slots:
            return {}
        rows = self._read_percpu(name, ctype, 0, self.options.max_containers)
        return {cgroup_id: build(rows[slot]) for cgroup_id, slot in self._slots.items()}

    # -- readings ------------------------------------------------------------------------------

    @_locked
    def syscall_counts(self) -> dict[int, dict[int, tuple[int, int]]]:
        self._require_loaded()
        result: dict[int, dict[int, tuple[int, int]]] = {}
        step = 2 * self._ncpus      # u64 words per syscall: (calls, errors) for each CPU
        for cgroup_id, slot in self._slots.items():
            values = self._lookup_percpu("syscall_counts", SyscallCount, slot * NR_SYSCALLS, NR_SYSCALLS)
            if values is None:
                words = [w for row in self._read_percpu("syscall_counts", SyscallCount,
                                                        slot * NR_SYSCALLS, NR_SYSCALLS)
                         for value in row for w in (value.calls, value.errors)]
            else:
                words = memoryview(values).cast("B").cast("Q")
            # Summing per-CPU columns with slices and zip keeps the loop in C: the policy tick
            # and every scrape read 512 x ncpu counters per container.
            calls = [sum(column) for column in zip(*(words[2 * c::step] for c in range(self._ncpus)))]
            errors = [sum(column) for column in zip(*(words[2 * c + 1::step] for c in range(self._ncpus)))]
            result[cgroup_id] = {OTHER if nr == NR_SYSCALLS - 1 else nr: (count, errors[nr])
                                 for nr, count in enumerate(calls) if count}
        return result

    @_locked
    def syscall_latency(self) -> dict[int, dict[int, list[int]]]:
        self._require_loaded()
        if not self.options.syscall_latency:
            return {}
        result: dict[int, dict[int, list[int]]] = {cgroup_id: {} for cgroup_id in self._slots}
        for key, hist in self._table("syscall_latency").items():
            if key.cgroup_id in result:
                nr = OTHER if key.nr == NR_SYSCALLS - 1 else key.nr
                result[key.cgroup_id][nr] = list(LatencyHist.from_buffer_copy(hist).buckets)
        return result

    @_locked
    def network(self) -> dict[int, NetCounters]:
        return self._per_slot("net_counters", NetCountersC, lambda cpus: NetCounters(
            sum(c.rx_bytes for c in cpus), sum(c.rx_packets for c in cpus),
            sum(c.tx_bytes for c in cpus), sum(c.tx_packets for c in cpus)))

    @_locked
    def tcp(self) -> dict[int, TcpCounters]:
        return self._per_slot("tcp_counters", TcpCountersC, lambda cpus: TcpCounters(
            sum(c.connects for c in cpus), sum(c.retransmits for c in cpus)))

    @_locked
    def processes(self) -> dict[int, ProcessCounters]:
        return self._per_slot("process_counters", ProcessCountersC, lambda cpus: ProcessCounters(
            sum(c.execs for c in cpus), sum(c.forks for c in cpus), sum(c.exits for c in cpus)))

    @_locked
    def oom_kills(self) -> dict[int, int]:
        return self._per_slot("oom_kills", ct.c_uint64, lambda cpus: sum(
            c if isinstance(c, int) else c.value for c in cpus))

    @_locked
    def map_entries(self) -> dict[str, int]:
        """Entries held for watched cgroups in each keyed map: all 0 once every container is
        gone, which is what leak checks look at."""
        self._require_loaded()
        result = {
            "slots": len(self._slots),
            "watch_index": sum(1 for cell in self._table("watch_index").values() if cell.cgroup_id),
            "watch_overflow": len(self._table("watch_overflow")),
            "tcp_owner": len(self._table("tcp_owner")),
            "kill_tables": sum(1 for cell in self._table("kill_tables").values() if cell.armed),
            "egress_tables": sum(1 for cell in self._table("egress_tables").values()
                                 if cell.count or cell.deny_default),
        }
        if self.options.syscall_latency:
            result["syscall_latency"] = len(self._table("syscall_latency"))
        return result

    # -- events --------------------------------------------------------------------------------

    def _on_event(self, _ctx: Any, data: Any, size: int) -> None:
        raw = ct.string_at(data, size)
        try:
            event = self._decoder.decode(raw)
        except DecodeError as error:
            kind = int.from_bytes(raw[:4], "little") if len(raw) >= 4 else 0
            self._count_py_error({EVENT_OOM: "oom", EVENT_EXEC: "process_exec", EVENT_KILL: "syscall_kill",
                                  EVENT_EGRESS: "egress"}.get(kind, "events"))
            log.debug("undecodable probe event: %s", error)
            return
        if isinstance(event, EgressEvent):
            with self._lock:
                policies = self._egress_policies.get(event.cgroup_id, {}).get(event.generation, ())
            policy, rule = rule_of(policies, event.policy_index, event.rule_index)
            event = dataclasses.replace(event, policy=policy, rule=rule)
        self._pending.append(event)

    def poll_events(self, timeout_ms: int = 0) -> list[OomEvent | ExecEvent | KillEvent | EgressEvent]:
        with self._events_lock:
            bpf = self._require_loaded()
            if timeout_ms > 0:
                bpf.ring_buffer_poll(timeout_ms)
            else:
                bpf.ring_buffer_consume()
            events, self._pending = self._pending, []
            return events

    # -- health --------------------------------------------------------------------------------

    @_locked
    def status(self) -> dict[str, bool]:
        return dict(self._status)

    def _count_py_error(self, probe: str) -> None:
        self._py_errors[probe] = self._py_errors.get(probe, 0) + 1

    @_locked
    def errors(self) -> dict[str, int]:
        result = {name: 0 for name in self._status}
        if self._bpf is not None:
            rows = self._read_percpu("probe_errors", ct.c_uint64, 0, len(PROBE_ERRORS))
            for name, cpus in zip(PROBE_ERRORS, rows):
                if name in result or any(cpus):
                    result[name] = sum(c if isinstance(c, int) else c.value for c in cpus)
        for name, count in self._py_errors.items():
            result[name] = result.get(name, 0) + count
        return result

    def close(self) -> None:
        with self._events_lock, self._lock:
            self._close()

    def _close(self) -> None:
        if self._bpf is None:
            return
        for cgroup_id, directory in list(self._dirs.items()):
            try:
                self._detach_skb(directory, cgroup_id)
            except CorralError as error:
                log.warning("probe network: cannot detach from %s: %s", directory, error)
        self._dirs.clear()
        for cgroup_id in list(self._egress_dirs):
            self._detach_egress(cgroup_id, None)
        self._armed.clear()
        self._slots.clear()
        try:
            self._bpf.cleanup()        # detaches every tracepoint and closes the programs
        finally:
            self._bpf = None
            self._skb_fds.clear()
            self._egress_fds.clear()
            self._status = {name: False for name in self._status}

    def __enter__(self) -> "ProbeSet":
        self.load()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
