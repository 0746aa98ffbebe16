"""`ProbeSet`: Corral's probes (probes/*.c) loaded with BCC, following containers, read when asked.

A facade over one module per job: source.py assembles the C text and its -D flags,
compiled.py compiles and attaches it, slots.py gives each watched container its counter row,
attachments.py puts cgroup programs on container directories, enforcement.py holds the kill
and egress tables, readings.py (over percpu.py's batch I/O) reads the counters, ring.py
decodes the event ring buffer. It implements the seams of interface.py (`ProbeControl`,
`ProbeReader`, `ProbeEvents`); double.ProbeDouble is its in-memory stand-in for unit tests.

Containers are counted only once `watch()` registered their cgroup id: it gives the container
a slot (the index of its per-CPU counters) and attaches the cgroup_skb counters to its v2
directory. Maps are read when asked (at scrape time), never on a timer.

Policy enforcement (probes/enforce.c) is set per watched container: `set_syscall_actions`
(syscall kill rules, checked in the sys_exit program) and `set_egress` (egress rules, in
cgroup sock_addr programs attached to the container's directory only while it has rules).
`unwatch` clears both, `close` detaches everything.
"""
from __future__ import annotations

import functools
import logging
import os
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence, TypeVar, cast

from agent.errors import CorralError, InvalidArgument, KernelError
from agent.probes import readings, setup_exemption
from agent.probes.attachments import CgroupAttachments
from agent.probes.compiled import EGRESS_PROGRAMS, SKB_PROGRAMS, CompiledProbes, compile_probes
from agent.probes.egress import EgressPolicy
from agent.probes.enforcement import KEPT_GENERATIONS, EnforcementTables
from agent.probes.events import EgressEvent
from agent.probes.interface import KernelEnforcement, NetCounters, ProbeEvent, ProcessCounters, TcpCounters
from agent.probes.mounts import ensure_mounts
from agent.probes.ring import EventRing
from agent.probes.slots import Slots
from agent.probes.source import (
    PROBE_FILES,
    WATCH_INDEX_SIZE,
    ProbeOptions,
    Tracepoint,
    build_source,
    cflags,
    tracepoints,
)
from agent.probes.structs import NR_SYSCALLS

__all__ = ["KEPT_GENERATIONS", "NR_SYSCALLS", "PROBE_FILES", "WATCH_INDEX_SIZE", "NetCounters", "ProbeOptions",
           "ProbeSet", "ProcessCounters", "TcpCounters", "Tracepoint", "build_source", "cflags",
           "ensure_mounts", "tracepoints"]

log = logging.getLogger("corral.probes")

_Method = TypeVar("_Method", bound=Callable[..., Any])


def _locked(method: _Method) -> _Method:
    """Run a ProbeSet method under the set's lock."""
    @functools.wraps(method)
    def wrapper(self: ProbeSet, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)
    return cast(_Method, wrapper)


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
        self._source = build_source(self.probes_dir)
        self._compiled: CompiledProbes | None = None
        self._status: dict[str, bool] = {}
        self._py_errors: dict[str, int] = {}
        self._slots = Slots(options.max_containers, watch_index_size - 1)
        # The raw syscall counters last read per container, so unchanged ones are not summed again.
        self._syscall_memo: readings.SyscallMemo = {}
        self._skb = CgroupAttachments("probe network", SKB_PROGRAMS, lambda: self._count_py_error("network"))
        self._enforcement = EnforcementTables(
            CgroupAttachments("egress enforcement", EGRESS_PROGRAMS, lambda: self._count_py_error("egress")))
        self._ring = EventRing(self._count_py_error, self._name_rule)
        # The collector reads from its scrape thread while the daemon watches and unwatches.
        self._lock = threading.RLock()
        self._events_lock = threading.Lock()

    # -- loading -------------------------------------------------------------------------------

    def dump(self) -> str:
        """The final BPF C text, with the -D flags it is compiled with."""
        return f"/* cflags: {' '.join(self._flags)} */\n{self._source}"

    @_locked
    def load(self) -> None:
        if self._compiled is not None:
            return
        ensure_mounts(self.tracefs)
        if self.options.debug_dump:
            log.info("BPF program:\n%s", self.dump())
        compiled = compile_probes(self._source, self._flags, self.options, self.tracefs, self.probes_dir,
                                  self._ring.on_event)
        self._compiled = compiled
        self._status = compiled.status
        # launcher.c runs inside the process_* programs (probes/process.c).
        if self.options.launcher and all(compiled.status.get(p) for p in ("process_exec", "process_fork",
                                                                           "process_exit")):
            setup_exemption.arm(compiled.table("launcher_config"), self.options.launcher)
        self._skb.fds = compiled.skb_fds
        self._enforcement.egress.fds = compiled.egress_fds

    def _require_loaded(self) -> CompiledProbes:
        if self._compiled is None:
            raise CorralError("probes are not loaded", hint="call ProbeSet.load() first")
        return self._compiled

    def program_fds(self) -> dict[str, int]:
        """Every loaded program's fd by function name (tests and bench look at them)."""
        with self._lock:
            return self._require_loaded().program_fds()

    # -- watching ------------------------------------------------------------------------------

    @_locked
    def watch(self, cgroup_id: int, unified_dir: str) -> None:
        compiled = self._require_loaded()
        try:
            actual = os.stat(unified_dir).st_ino
        except OSError as error:
            raise KernelError(f"cgroup directory {unified_dir}: {error.strerror}") from None
        if actual != cgroup_id:
            raise InvalidArgument(f"cgroup id {cgroup_id} is not the id of {unified_dir} ({actual})")
        self._slots.acquire(compiled, cgroup_id)
        if self._status.get("network"):
            try:
                self._skb.attach(cgroup_id, unified_dir)
            except KernelError as error:        # counted; the container is watched without them
                log.warning("probe network: cannot count traffic of cgroup %s: %s", cgroup_id, error)

    @_locked
    def unwatch(self, cgroup_id: int, unified_dir: str | None) -> None:
        compiled = self._require_loaded()
        self._skb.detach(cgroup_id, unified_dir)
        self._enforcement.forget(cgroup_id, unified_dir)
        self._slots.release(compiled, cgroup_id, self.options.syscall_latency)

    # -- enforcement ---------------------------------------------------------------------------

    def enforcement(self) -> dict[str, bool]:
        """Which enforcement the loaded probes can do: syscall kill rules (the sys_exit
        program is attached) and egress rules (the sock_addr programs loaded)."""
        with self._lock:
            loaded = self._compiled is not None
            return {"syscall_kill": bool(loaded and self._status.get("syscalls")),
                    "egress": bool(loaded and self._enforcement.egress.loaded)}

    @_locked
    def set_syscall_actions(self, cgroup_id: int, kill: Iterable[int] | Mapping[int, int]) -> None:
        """Replace the container's syscall kill rules: syscall numbers (SIGKILL), or a mapping
        number -> signal. Empty clears them. The signal goes to the calling process when the
        call returns."""
        compiled = self._require_loaded()
        self._enforcement.set_kill(compiled, self._slots.of(cgroup_id), cgroup_id, kill)

    @_locked
    def set_egress(self, cgroup_id: int, unified_dir: str, policies: Sequence[EgressPolicy]) -> int:
        """Replace the container's egress rules (one EgressPolicy per selecting policy, enforcing
        and audit ones) and return the update's generation. The sock_addr programs are attached
        to `unified_dir` on first use and detached when `policies` is empty."""
        compiled = self._require_loaded()
        return self._enforcement.set_egress(compiled, self._slots.of(cgroup_id), cgroup_id, unified_dir,
                                            policies)

    @_locked
    def egress_attached(self) -> dict[int, str]:
        """cgroup id -> directory, for every container whose egress programs are attached."""
        return dict(self._enforcement.egress.dirs)

    @_locked
    def enforcement_in_kernel(self, cgroup_id: int, unified_dir: str) -> KernelEnforcement:
        compiled = self._require_loaded()
        return self._enforcement.in_kernel(compiled, self._slots.of(cgroup_id), unified_dir)

    # -- readings ------------------------------------------------------------------------------

    @_locked
    def syscall_counts(self) -> dict[int, dict[int, tuple[int, int]]]:
        return readings.syscall_counts(self._require_loaded(), self._slots.by_cgroup, self._syscall_memo)

    @_locked
    def syscall_latency(self) -> dict[int, dict[int, list[int]]]:
        compiled = self._require_loaded()
        if not self.options.syscall_latency:
            return {}
        return readings.syscall_latency(compiled, self._slots.by_cgroup)

    @_locked
    def network(self) -> dict[int, NetCounters]:
        return readings.network(self._require_loaded(), self._slots.by_cgroup, self.options.max_containers)

    @_locked
    def tcp(self) -> dict[int, TcpCounters]:
        return readings.tcp(self._require_loaded(), self._slots.by_cgroup, self.options.max_containers)

    @_locked
    def processes(self) -> dict[int, ProcessCounters]:
        return readings.processes(self._require_loaded(), self._slots.by_cgroup, self.options.max_containers)

    @_locked
    def oom_kills(self) -> dict[int, int]:
        return readings.oom_kills(self._require_loaded(), self._slots.by_cgroup, self.options.max_containers)

    @_locked
    def map_entries(self) -> dict[str, int]:
        """Entries held for watched cgroups in each keyed map: all 0 once every container is
        gone, which is what leak checks look at."""
        compiled = self._require_loaded()
        result = readings.map_entries(compiled, self._slots.by_cgroup, self.options.syscall_latency)
        result.update(setup_exemption.entries(compiled.table("launcher_tasks"), compiled.table("setup_tasks")))
        return result

    # -- events --------------------------------------------------------------------------------

    def _name_rule(self, event: EgressEvent) -> EgressEvent:
        with self._lock:
            return self._enforcement.name_rule(event)

    def poll_events(self, timeout_ms: int = 0) -> list[ProbeEvent]:
        with self._events_lock:
            bpf = self._require_loaded().bpf
            if timeout_ms > 0:
                bpf.ring_buffer_poll(timeout_ms)
            else:
                bpf.ring_buffer_consume()
            return self._ring.drain()

    # -- health --------------------------------------------------------------------------------

    @_locked
    def status(self) -> dict[str, bool]:
        return dict(self._status)

    def _count_py_error(self, probe: str) -> None:
        self._py_errors[probe] = self._py_errors.get(probe, 0) + 1

    @_locked
    def errors(self) -> dict[str, int]:
        result = {name: 0 for name in self._status}
        if self._compiled is not None:
            result.update(readings.probe_errors(self._compiled))
        for name, count in self._py_errors.items():
            result[name] = result.get(name, 0) + count
        return result

    def close(self) -> None:
        with self._events_lock, self._lock:
            self._close()

    def _close(self) -> None:
        if self._compiled is None:
            return
        try:
            self._skb.detach_all()
        except CorralError as error:
            log.warning("probe network: cannot detach: %s", error)
        self._enforcement.clear()
        self._slots.clear()
        try:
            self._compiled.cleanup()        # detaches every tracepoint and closes the programs
        finally:
            self._compiled = None
            self._skb.unload()
            self._enforcement.egress.unload()
            self._status = {name: False for name in self._status}

    def __enter__(self) -> ProbeSet:
        self.load()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
