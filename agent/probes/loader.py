"""`ProbeSet`: Corral's probes (probes/*.c), following containers, read when asked.

A facade over one module per job: source.py (the C text and its -D flags), cache.py (compiled
by BCC in a child, build.py, once per kernel and source), compiled.py (loaded and attached
through bpf(); no bcc in this process), slots.py (each watched container's counter row),
attachments.py (cgroup programs on container directories), enforcement.py (kill and egress
tables), readings.py over percpu.py (the counters; ProbeSet's methods that read them are
reading_methods.py), ring.py (the event ring buffer). It implements interface.py's seams;
double.ProbeDouble stands in for it in unit tests.

Containers are counted once `watch()` registered their cgroup id; maps are read when asked (at
scrape time), never on a timer. Enforcement (probes/enforce.c) is set per watched container:
`set_syscall_actions` (checked in sys_exit), `set_rate_limits`, `set_egress` (cgroup sock_addr
programs, attached only while the container has rules). `unwatch` clears them, `close` detaches
everything but what pins.py keeps in force while the daemon is down; a restarted daemon's
`adopt_pinned` retires that once its own rules are pushed.
"""
from __future__ import annotations

import ctypes as ct
import logging
import os
import threading
import time
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from agent.errors import CorralError, InvalidArgument, KernelError
from agent.probes import cgroup_programs, percpu, readings, setup_exemption
from agent.probes.attachments import CgroupAttachments
from agent.probes.cache import ProbeCache
from agent.probes.compiled import EGRESS_PROGRAMS, SKB_PROGRAMS, CompiledProbes, drain_ring, load_probes
from agent.probes.egress import EgressPolicy
from agent.probes.enforcement import EnforcementTables
from agent.probes.events import EgressEvent
from agent.probes.interface import KernelEnforcement, ProbeEvent
from agent.probes.locking import locked
from agent.probes.mounts import ensure_mounts
from agent.probes.pins import LINK, PINNED_MAPS, PinnedEnforcement, sweep_orphans
from agent.probes.rate_limits import Limits, RateKey, RateLimits
from agent.probes.reading_methods import ProbeReadings
from agent.probes.ring import EventRing
from agent.probes.slots import Slots
from agent.probes.source import (
    PROBE_FILES,
    WATCH_INDEX_SIZE,
    ProbeOptions,
    build_source,
    cflags,
)
from agent.probes.structs import LOST_REASONS

__all__ = ["PROBE_FILES", "ProbeOptions", "ProbeSet", "ensure_mounts"]

log = logging.getLogger("corral.probes")

HEARTBEAT_NS = 500_000_000          # how often poll_events tells the programs a daemon reads


class ProbeSet(ProbeReadings):
    """The loaded probes of one daemon: load once, watch/unwatch containers, read, close."""

    def __init__(self, probes_dir: Path, options: ProbeOptions,
                 tracefs: Path = Path("/sys/kernel/tracing"), *,
                 watch_index_size: int = WATCH_INDEX_SIZE, pin_dir: Path | None = None,
                 pin: bool = True, owner: str = "", cache_dir: Path | None = None) -> None:
        """`watch_index_size` (cells of the filter array) is for tests that force collisions.
        `pin_dir` (pins.pin_dir_of the daemon's root): where enforcement is pinned, and where an
        earlier daemon's is found; `pin` False only retires what is found there. `owner` (the
        daemon's root) is pinned beside, so a generation whose root is gone can be swept.
        `cache_dir`: where the compiled probes are kept between starts (cache.py); None
        compiles at every load."""
        self.probes_dir = Path(probes_dir)
        self.options = options
        self.tracefs = Path(tracefs)
        self._flags = cflags(options, watch_index_size)
        self._source = build_source(self.probes_dir)
        self._compiled: CompiledProbes | None = None
        self.cache = ProbeCache(cache_dir)
        self._status: dict[str, bool] = {}
        self._py_errors: dict[str, int] = {}
        self._slots = Slots(options.max_containers, watch_index_size - 1)
        self._syscall_memo = {}                 # reading_methods.py
        self._skb = CgroupAttachments("probe network", SKB_PROGRAMS, lambda: self._count_py_error("network"))
        self._enforcement = EnforcementTables(
            CgroupAttachments("egress enforcement", EGRESS_PROGRAMS, lambda: self._count_py_error("egress")))
        self._rates = RateLimits()
        self._ring = EventRing(self._count_py_error, self._name_rule)
        self.pin_dir = pin_dir
        self._pin = pin and pin_dir is not None
        self._owner = owner
        self._pins: PinnedEnforcement | None = None
        self._dirs: dict[int, str] = {}          # watched cgroup id -> unified directory
        self._heartbeat = 0
        # The collector reads from its scrape thread while the daemon watches and unwatches.
        self._lock = threading.RLock()
        self._events_lock = threading.Lock()

    # -- loading -------------------------------------------------------------------------------

    def dump(self) -> str:
        """The final BPF C text, with the -D flags it is compiled with."""
        return f"/* cflags: {' '.join(self._flags)} */\n{self._source}"

    @locked
    def load(self) -> None:
        if self._compiled is not None:
            return
        ensure_mounts(self.tracefs)
        if self.options.debug_dump:
            log.info("BPF program:\n%s", self.dump())
        compiled = load_probes(self.cache.obtain(self._source, self._flags), self.options, self.tracefs,
                               self._ring.on_event)
        self._compiled = compiled
        self._status = compiled.status
        # launcher.c runs inside the process_* programs (probes/process.c).
        if self.options.launcher and all(compiled.status.get(p) for p in ("process_exec", "process_fork",
                                                                           "process_exit")):
            setup_exemption.arm(compiled.table("launcher_config"), self.options.launcher)
        self._skb.fds = compiled.skb_fds
        if self.pin_dir is not None:
            sweep_orphans(self.pin_dir.parent)
        self._pins = PinnedEnforcement(self.pin_dir if self._pin else None, found_in=self.pin_dir)
        self._beat(compiled)

    def _require_loaded(self) -> CompiledProbes:
        if self._compiled is None:
            raise CorralError("probes are not loaded", hint="call ProbeSet.load() first")
        return self._compiled

    def _with_egress(self) -> CompiledProbes:
        """The loaded probes, once their egress programs are (compiled.py loads them on a thread)."""
        compiled = self._require_loaded()
        self._enforcement.egress.fds = compiled.egress_ready()
        return compiled

    def program_fds(self) -> dict[str, int]:
        """Every loaded program's fd by function name (tests and bench look at them)."""
        with self._lock:
            return self._require_loaded().program_fds()

    # -- watching ------------------------------------------------------------------------------

    @locked
    def watch(self, cgroup_id: int, unified_dir: str) -> None:
        compiled = self._require_loaded()
        try:
            actual = os.stat(unified_dir).st_ino
        except OSError as error:
            raise KernelError(f"cgroup directory {unified_dir}: {error.strerror}") from None
        if actual != cgroup_id:
            raise InvalidArgument(f"cgroup id {cgroup_id} is not the id of {unified_dir} ({actual})")
        self._slots.acquire(compiled, cgroup_id)
        self._dirs[cgroup_id] = unified_dir
        if self._status.get("network"):
            try:
                self._skb.attach(cgroup_id, unified_dir)
            except KernelError as error:        # counted; the container is watched without them
                log.warning("probe network: cannot count traffic of cgroup %s: %s", cgroup_id, error)

    @locked
    def unwatch(self, cgroup_id: int, unified_dir: str | None) -> None:
        compiled = self._with_egress()
        self._skb.detach(cgroup_id, unified_dir)
        self._enforcement.forget(cgroup_id, unified_dir)
        self._slots.release(compiled, cgroup_id, self.options.syscall_latency)
        self._dirs.pop(cgroup_id, None)
        self._update_pins(compiled)

    # -- enforcement ---------------------------------------------------------------------------

    def enforcement(self) -> dict[str, bool]:
        """Which enforcement the loaded probes can do: syscall kill rules (the sys_exit
        program is attached) and egress rules (the sock_addr programs loaded)."""
        with self._lock:
            loaded = self._compiled is not None
            if loaded:
                self._with_egress()
            return {"syscall_kill": bool(loaded and self._status.get("syscalls")),
                    "egress": bool(loaded and self._enforcement.egress.loaded)}

    @locked
    def set_syscall_actions(self, cgroup_id: int, kill: Iterable[int] | Mapping[int, int]) -> None:
        """Replace the container's syscall kill rules: syscall numbers (SIGKILL), or a mapping
        number -> signal. Empty clears them. The signal goes to the calling process when the
        call returns."""
        compiled = self._require_loaded()
        self._enforcement.set_kill(compiled, self._slots.of(cgroup_id), cgroup_id, kill)
        self._update_pins(compiled)

    @locked
    def set_rate_limits(self, cgroup_id: int, limits: Limits) -> tuple[RateKey, ...]:
        """Replace the container's rate limits (probes/rates.c; interface.ProbeControl says how)."""
        return self._rates.set(self._require_loaded(), self._slots.of(cgroup_id), limits)

    @locked
    def watch_epoch(self, cgroup_id: int) -> int | None:
        return self._slots.epoch(cgroup_id)

    @locked
    def rate_limits_in_kernel(self, cgroup_id: int) -> dict[RateKey, tuple[int, ...]]:
        """The container's rate limits as the kernel holds them (tests read them back)."""
        return self._rates.in_kernel(self._require_loaded(), self._slots.of(cgroup_id))

    @locked
    def set_egress(self, cgroup_id: int, unified_dir: str, policies: Sequence[EgressPolicy]) -> int:
        """Replace the container's egress rules (one EgressPolicy per selecting policy, enforcing
        and audit ones) and return the update's generation. The sock_addr programs are attached
        to `unified_dir` on first use and detached when `policies` is empty."""
        compiled = self._with_egress()
        try:
            return self._enforcement.set_egress(compiled, self._slots.of(cgroup_id), cgroup_id, unified_dir,
                                                policies)
        finally:
            self._update_pins(compiled)

    def _update_pins(self, compiled: CompiledProbes) -> None:
        """Pinned while some container has rules (so they outlive the daemon), else not."""
        if self._pins is None:
            return
        if not (self._enforcement.armed or self._enforcement.egress.dirs):
            self._pins.release()
            return
        link = compiled.link_fd(LINK)
        if link is None:
            return                              # no sys_exit program: no rule was set either
        objects = {LINK: link, **{name: compiled.table(name).map_fd for name in PINNED_MAPS}}
        self._pins.hold(f"gen-{cgroup_programs.program_id(compiled.program_fds()['corral_sys_exit'])}",
                        objects, self._owner)

    def pinned(self) -> str | None:
        """The directory this daemon's enforcement is pinned in, None when it is not."""
        with self._lock:
            held = self._pins.held if self._pins is not None else None
            return str(held) if held is not None else None

    def adopt_pinned(self) -> int:
        """Retire what an earlier daemon left pinned, once this one's rules are pushed: its
        waiting events are delivered (by the next poll_events), its egress programs come off
        the directories this daemon gave no egress rules, its link is unpinned. Returns the
        events it lost while no daemon ran (also in `events_lost`)."""
        with self._events_lock, self._lock:
            compiled = self._require_loaded()
            if self._pins is None or not self._pins.previous:
                return 0                        # nothing to retire: no wait for the egress programs
            self._with_egress()
            late = EventRing(self._count_py_error, lambda event: event)
            lost = self._pins.retire_previous(compiled.ncpus, lambda fd: drain_ring(fd, late.on_event))
            self._ring.push(late.drain())
            for cgroup_id, directory in self._dirs.items():
                if cgroup_id not in self._enforcement.egress.dirs and self._enforcement.egress.loaded:
                    self._enforcement.egress.detach_leftovers(directory)
            return lost

    @locked
    def events_lost(self) -> dict[str, int]:
        """Events that found the ring buffer full, by reason: `ring_full` (read too slowly)
        and `daemon_down` (no daemon read; an earlier generation's included once retired)."""
        compiled = self._require_loaded()
        cpus = percpu.read_range(compiled.table("event_loss"), ct.c_uint64, compiled.ncpus, 0, len(LOST_REASONS))
        result = {reason: percpu.total(values) for reason, values in zip(LOST_REASONS, cpus)}
        result["daemon_down"] += self._pins.adopted_lost if self._pins is not None else 0
        return result

    @locked
    def egress_attached(self) -> dict[int, str]:
        """cgroup id -> directory, for every container whose egress programs are attached."""
        return dict(self._enforcement.egress.dirs)

    @locked
    def enforcement_in_kernel(self, cgroup_id: int, unified_dir: str) -> KernelEnforcement:
        compiled = self._with_egress()
        return self._enforcement.in_kernel(compiled, self._slots.of(cgroup_id), unified_dir)

    # -- events --------------------------------------------------------------------------------

    def _name_rule(self, event: EgressEvent) -> EgressEvent:
        with self._lock:
            return self._enforcement.name_rule(event)

    def poll_events(self, timeout_ms: int = 0) -> list[ProbeEvent]:
        with self._events_lock:
            compiled = self._require_loaded()
            if compiled.ring is not None:
                compiled.ring.poll(timeout_ms)
            self._beat(compiled)
            return self._ring.drain()

    def _beat(self, compiled: CompiledProbes) -> None:
        """Tell the programs a daemon reads the ring (probes/common.h `consumer`): an event
        lost long after the last beat is counted as lost while the daemon was down."""
        now = time.monotonic_ns()          # CLOCK_MONOTONIC: the clock of bpf_ktime_get_ns
        if now - self._heartbeat < HEARTBEAT_NS:
            return
        compiled.table("consumer")[ct.c_uint32(0)] = ct.c_uint64(now)
        self._heartbeat = now

    # -- health --------------------------------------------------------------------------------

    @locked
    def status(self) -> dict[str, bool]:
        return dict(self._status)

    def _count_py_error(self, probe: str) -> None:
        self._py_errors[probe] = self._py_errors.get(probe, 0) + 1

    @locked
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
        self._with_egress()
        try:
            self._skb.detach_all()
        except CorralError as error:
            log.warning("probe network: cannot detach: %s", error)
        # Pinned: the rules stay in force until the next daemon adopts them (pins.py).
        kept = self._pins is not None and self._pins.held is not None
        self._enforcement.clear(detach=not kept)
        for slot in self._slots.by_cgroup.values():     # a pinned sys_exit must not report for nobody
            RateLimits.clear(self._compiled, slot)
        self._slots.clear()
        self._dirs.clear()
        if kept:
            log.info("policy enforcement stays in force while the daemon is down (pinned in %s)",
                     self._pins.held if self._pins else "")
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
