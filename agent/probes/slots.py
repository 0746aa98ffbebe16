"""Slots: which per-CPU counter row each watched container owns, and the watch index the BPF
programs use to find a task's slot from its cgroup id.

The index is an array of `WATCH_INDEX_SIZE` cells addressed by `cgroup_id & mask`; an id whose
cell is taken goes to the `watch_overflow` hash. The invariant kept here: an empty cell means
no watched id maps to it (so the programs skip the hash lookup for unwatched tasks).
"""
from __future__ import annotations

import ctypes as ct

from agent.errors import Conflict, InvalidArgument
from agent.probes import percpu
from agent.probes.compiled import CompiledProbes
from agent.probes.structs import (
    NR_SYSCALLS,
    EgressTable,
    KillTable,
    NetCountersC,
    ProcessCountersC,
    RateTable,
    SyscallCount,
    TcpCountersC,
    WatchEntry,
)


class Slots:
    def __init__(self, max_containers: int, index_mask: int) -> None:
        self.max_containers = max_containers
        self._mask = index_mask
        self.by_cgroup: dict[int, int] = {}      # cgroup id -> slot
        # cgroup id -> the acquisition that gave it its slot: numbered across reloads (clear()
        # keeps the count), so a slot given again never has the epoch of an earlier one.
        self._epochs: dict[int, int] = {}
        self._acquired = 0

    def __contains__(self, cgroup_id: int) -> bool:
        return cgroup_id in self.by_cgroup

    def of(self, cgroup_id: int) -> int:
        slot = self.by_cgroup.get(cgroup_id)
        if slot is None:
            raise InvalidArgument(f"cgroup {cgroup_id} is not watched by the probes",
                                  hint="call ProbeSet.watch() first (the runtime does at start)")
        return slot

    def epoch(self, cgroup_id: int) -> int | None:
        return self._epochs.get(cgroup_id)

    def acquire(self, probes: CompiledProbes, cgroup_id: int) -> int:
        """The container's slot, zeroed and registered in the index on first use."""
        if cgroup_id in self.by_cgroup:
            return self.by_cgroup[cgroup_id]
        free = sorted(set(range(self.max_containers)) - set(self.by_cgroup.values()))
        if not free:
            raise Conflict(f"cannot watch cgroup {cgroup_id}: all {self.max_containers} "
                           "probe slots are in use", hint="raise ProbeOptions.max_containers")
        slot = free[0]
        zero(probes, slot)
        self._register(probes, cgroup_id, slot)
        self.by_cgroup[cgroup_id] = slot
        self._acquired += 1
        self._epochs[cgroup_id] = self._acquired
        return slot

    def release(self, probes: CompiledProbes, cgroup_id: int, latency: bool) -> None:
        """Free the slot and every map entry keyed by the container's cgroup id."""
        slot = self.by_cgroup.pop(cgroup_id, None)
        self._epochs.pop(cgroup_id, None)
        if slot is None:
            return
        self._unregister(probes, cgroup_id)
        zero(probes, slot)
        owners = probes.table("tcp_owner")
        for key, value in list(owners.items()):
            if value.value == cgroup_id:
                owners.pop(key, None)
        destinations = probes.table("tcp_destinations")
        for key in [k for k in destinations.keys() if k.cgroup_id == cgroup_id]:
            destinations.pop(key, None)
        if latency:
            table = probes.table("syscall_latency")
            for key in [k for k in table.keys() if k.cgroup_id == cgroup_id]:
                table.pop(key, None)

    def clear(self) -> None:
        self.by_cgroup.clear()
        self._epochs.clear()

    def _register(self, probes: CompiledProbes, cgroup_id: int, slot: int) -> None:
        index_table, overflow = probes.table("watch_index"), probes.table("watch_overflow")
        index = ct.c_uint32(cgroup_id & self._mask)
        if index_table[index].cgroup_id == 0:
            index_table[index] = WatchEntry(cgroup_id, slot, 0)
        else:
            overflow[ct.c_uint64(cgroup_id)] = ct.c_uint32(slot)

    def _unregister(self, probes: CompiledProbes, cgroup_id: int) -> None:
        """Free the id's cell; an overflow id of the same cell moves in, keeping the invariant."""
        index_table, overflow = probes.table("watch_index"), probes.table("watch_overflow")
        index = ct.c_uint32(cgroup_id & self._mask)
        if index_table[index].cgroup_id != cgroup_id:
            overflow.pop(ct.c_uint64(cgroup_id), None)
            return
        heir = next(((key.value, value.value) for key, value in overflow.items()
                     if key.value & self._mask == index.value), None)
        if heir is None:
            index_table[index] = WatchEntry(0, 0, 0)
            return
        index_table[index] = WatchEntry(heir[0], heir[1], 0)
        overflow.pop(ct.c_uint64(heir[0]), None)


def zero(probes: CompiledProbes, slot: int) -> None:
    """Zero the slot's row in every per-container map (a new container starts at 0)."""
    ncpus = probes.ncpus
    percpu.zero_range(probes.table("syscall_counts"), SyscallCount, ncpus, slot * NR_SYSCALLS, NR_SYSCALLS)
    for name, ctype in (("net_counters", NetCountersC), ("tcp_counters", TcpCountersC),
                        ("process_counters", ProcessCountersC), ("oom_kills", ct.c_uint64)):
        percpu.zero_range(probes.table(name), ctype, ncpus, slot, 1)
    probes.table("kill_tables")[ct.c_uint32(slot)] = KillTable()
    probes.table("egress_tables")[ct.c_uint32(slot)] = EgressTable()
    # syscall_rate_limits is read only under rate_limits' RATE_PER_SYSCALL bit: its row is
    # written whole before that bit is set, so an old row is never read.
    probes.table("rate_limits")[ct.c_uint32(slot)] = RateTable()
