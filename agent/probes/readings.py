"""Reading the probes' maps for the watched containers, at scrape or tick time (never on a
timer): per-CPU columns summed into one figure per container."""
from __future__ import annotations

import ctypes as ct
import ipaddress
import socket
from typing import Any, Callable, Mapping

from agent.probes import percpu
from agent.probes.compiled import CompiledProbes
from agent.probes.interface import NetCounters, ProcessCounters, TcpCounters
from agent.probes.structs import (
    NR_SYSCALLS,
    PROBE_ERRORS,
    LatencyHist,
    NetCountersC,
    ProcessCountersC,
    SyscallCount,
    TcpCountersC,
)
from agent.syscall_table import OTHER

Slots = Mapping[int, int]       # cgroup id -> slot


# cgroup id -> (the raw per-CPU counter bytes last read, the per-syscall figures made from them)
SyscallMemo = dict[int, tuple[bytes, dict[int, tuple[int, int]]]]


def syscall_counts(probes: CompiledProbes, slots: Slots,
                   memo: SyscallMemo | None = None) -> dict[int, dict[int, tuple[int, int]]]:
    """cgroup id -> {syscall nr: (calls, errors)}, summed over CPUs.

    With `memo`, a container whose raw counters did not move since the last read gets the very
    same dict object back without summing again: an idle container costs one memcmp of its
    row range instead of ~1000 additions in Python, on every policy tick and every scrape, and
    consumers (the /metrics renderer) can tell "unchanged" by identity. Callers never mutate
    the dicts they are given.
    """
    result: dict[int, dict[int, tuple[int, int]]] = {}
    fresh: SyscallMemo = {}
    ncpus = probes.ncpus
    table = probes.table("syscall_counts")
    step = 2 * ncpus      # u64 words per syscall: (calls, errors) for each CPU
    for cgroup_id, slot in slots.items():
        values = percpu.lookup_range(table, SyscallCount, ncpus, slot * NR_SYSCALLS, NR_SYSCALLS)
        words: Any
        if values is None:
            words = [w for row in percpu.read_range(table, SyscallCount, ncpus, slot * NR_SYSCALLS, NR_SYSCALLS)
                     for value in row for w in (value.calls, value.errors)]
        else:
            raw = bytes(values)
            last = memo.get(cgroup_id) if memo is not None else None
            if last is not None and last[0] == raw:
                fresh[cgroup_id] = last
                result[cgroup_id] = last[1]
                continue
            words = memoryview(raw).cast("Q")
        # Summing per-CPU columns with slices and zip keeps the loop in C: the policy tick
        # and every scrape read 512 x ncpu counters per container.
        calls = [sum(column) for column in zip(*(words[2 * c::step] for c in range(ncpus)))]
        errors = [sum(column) for column in zip(*(words[2 * c + 1::step] for c in range(ncpus)))]
        figures = {OTHER if nr == NR_SYSCALLS - 1 else nr: (count, errors[nr])
                   for nr, count in enumerate(calls) if count}
        result[cgroup_id] = figures
        if values is not None:
            fresh[cgroup_id] = (raw, figures)
    if memo is not None:
        memo.clear()          # containers gone since the last read drop out
        memo.update(fresh)
    return result


def syscall_latency(probes: CompiledProbes, slots: Slots) -> dict[int, dict[int, list[int]]]:
    result: dict[int, dict[int, list[int]]] = {cgroup_id: {} for cgroup_id in slots}
    for key, hist in probes.table("syscall_latency").items():
        if key.cgroup_id in result:
            nr = OTHER if key.nr == NR_SYSCALLS - 1 else key.nr
            result[key.cgroup_id][nr] = list(LatencyHist.from_buffer_copy(hist).buckets)
    return result


def _per_slot(probes: CompiledProbes, slots: Slots, max_containers: int, name: str, ctype: percpu.CType,
              build: Callable[[list[Any]], Any]) -> dict[int, Any]:
    if not slots:
        return {}
    rows = percpu.read_range(probes.table(name), ctype, probes.ncpus, 0, max_containers)
    return {cgroup_id: build(rows[slot]) for cgroup_id, slot in slots.items()}


def network(probes: CompiledProbes, slots: Slots, max_containers: int) -> dict[int, NetCounters]:
    return _per_slot(probes, slots, max_containers, "net_counters", NetCountersC, lambda cpus: NetCounters(
        sum(c.rx_bytes for c in cpus), sum(c.rx_packets for c in cpus),
        sum(c.tx_bytes for c in cpus), sum(c.tx_packets for c in cpus)))


def tcp(probes: CompiledProbes, slots: Slots, max_containers: int) -> dict[int, TcpCounters]:
    return _per_slot(probes, slots, max_containers, "tcp_counters", TcpCountersC, lambda cpus: TcpCounters(
        sum(c.connects for c in cpus), sum(c.retransmits for c in cpus)))


def tcp_destinations(probes: CompiledProbes, slots: Slots) -> dict[int, dict[tuple[str, int], int]]:
    """cgroup id -> (address, port) -> connects, for the watched containers."""
    result: dict[int, dict[tuple[str, int], int]] = {}
    for key, connects in probes.table("tcp_destinations").items():
        if key.cgroup_id not in slots:
            continue
        raw = bytes(key.addr)
        address = ipaddress.ip_address(raw[:4] if key.family == socket.AF_INET else raw)
        per = result.setdefault(key.cgroup_id, {})
        per[(str(address), key.port)] = per.get((str(address), key.port), 0) + connects.value
    return result


def processes(probes: CompiledProbes, slots: Slots, max_containers: int) -> dict[int, ProcessCounters]:
    return _per_slot(probes, slots, max_containers, "process_counters", ProcessCountersC,
                     lambda cpus: ProcessCounters(sum(c.execs for c in cpus), sum(c.forks for c in cpus),
                                                  sum(c.exits for c in cpus)))


def oom_kills(probes: CompiledProbes, slots: Slots, max_containers: int) -> dict[int, int]:
    return _per_slot(probes, slots, max_containers, "oom_kills", ct.c_uint64, percpu.total)


def map_entries(probes: CompiledProbes, slots: Slots, latency: bool) -> dict[str, int]:
    """Entries held for watched cgroups in each keyed map: all 0 once every container is
    gone, which is what leak checks look at."""
    result = {
        "slots": len(slots),
        "watch_index": sum(1 for cell in probes.table("watch_index").values() if cell.cgroup_id),
        "watch_overflow": len(probes.table("watch_overflow")),
        "tcp_owner": len(probes.table("tcp_owner")),
        "tcp_destinations": len(probes.table("tcp_destinations")),
        "kill_tables": sum(1 for cell in probes.table("kill_tables").values() if cell.armed),
        "egress_tables": sum(1 for cell in probes.table("egress_tables").values()
                             if cell.count or cell.deny_default),
    }
    if latency:
        result["syscall_latency"] = len(probes.table("syscall_latency"))
    return result


def probe_errors(probes: CompiledProbes) -> dict[str, int]:
    """The BPF programs' own error counters (enum probe_error), by probe name; only the
    non-zero ones (the caller adds every attached probe at 0)."""
    rows = percpu.read_range(probes.table("probe_errors"), ct.c_uint64, probes.ncpus, 0, len(PROBE_ERRORS))
    return {name: percpu.total(cpus) for name, cpus in zip(PROBE_ERRORS, rows) if any(cpus)}
