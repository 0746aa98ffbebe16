"""Policy enforcement tables in the probes (probes/enforce.c), per watched container: the
syscall kill table (checked in the sys_exit program) and the egress table (checked by cgroup
sock_addr programs, attached to the container's directory only while it has rules).

Each egress update gets a generation; the policies of the last `KEPT_GENERATIONS` updates are
kept so an event that raced an update is still given the name of the rule that refused it.
"""
from __future__ import annotations

import ctypes as ct
import dataclasses
from typing import Iterable, Mapping, Sequence

from agent.errors import InvalidArgument, KernelError
from agent.probes.attachments import CgroupAttachments
from agent.probes.compiled import CompiledProbes
from agent.probes.egress import EgressPolicy, encode, rule_of
from agent.probes.events import EgressEvent
from agent.probes.interface import KernelEnforcement
from agent.probes.rate_limits import RateLimits
from agent.probes.structs import NR_SYSCALLS, EgressTable, KillTable

KEPT_GENERATIONS = 4            # egress updates whose rule names late events can still be given


class EnforcementTables:
    def __init__(self, egress: CgroupAttachments) -> None:
        self.egress = egress
        self.generation = 0
        self.armed: set[int] = set()              # cgroup ids with syscall kill rules
        # cgroup id -> {generation: the policies of that update}, to name the rule of an event
        self._policies: dict[int, dict[int, tuple[EgressPolicy, ...]]] = {}

    def set_kill(self, probes: CompiledProbes, slot: int, cgroup_id: int,
                 kill: Iterable[int] | Mapping[int, int]) -> None:
        signals = dict(kill) if isinstance(kill, Mapping) else {nr: 9 for nr in kill}
        if signals and not probes.status.get("syscalls"):
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
        probes.table("kill_tables")[ct.c_uint32(slot)] = table
        if signals:
            self.armed.add(cgroup_id)
        else:
            self.armed.discard(cgroup_id)

    def set_egress(self, probes: CompiledProbes, slot: int, cgroup_id: int, unified_dir: str,
                   policies: Sequence[EgressPolicy]) -> int:
        policies = tuple(policies)
        if not policies:
            probes.table("egress_tables")[ct.c_uint32(slot)] = EgressTable()
            self._policies.pop(cgroup_id, None)
            self.egress.detach(cgroup_id, unified_dir)
            return self.generation
        if not self.egress.loaded:
            raise KernelError("egress rules need the cgroup sock_addr programs, which did not load",
                              hint="see the daemon log (kernel without BPF_PROG_TYPE_CGROUP_SOCK_ADDR?)")
        self.generation = (self.generation + 1) & 0xFFFFFFFF
        # The table first, then the programs: attached programs never see a half-set slot.
        probes.table("egress_tables")[ct.c_uint32(slot)] = encode(policies, self.generation)
        kept = self._policies.setdefault(cgroup_id, {})
        kept[self.generation] = policies
        for old in sorted(kept)[:-KEPT_GENERATIONS]:
            kept.pop(old)
        try:
            self.egress.attach(cgroup_id, unified_dir)
        except KernelError:
            self._policies.pop(cgroup_id, None)
            raise
        return self.generation

    def in_kernel(self, probes: CompiledProbes, slot: int, unified_dir: str) -> KernelEnforcement:
        """The slot's kill, egress and rate tables and the egress attachments, as the kernel has them."""
        table = probes.table("kill_tables")[ct.c_uint32(slot)]
        kill = {nr: int(signal) for nr, signal in enumerate(table.signal) if signal} if table.armed else {}
        egress = probes.table("egress_tables")[ct.c_uint32(slot)]
        rules = bytes(egress) != bytes(EgressTable())
        missing = self.egress.missing(unified_dir) if rules and self.egress.loaded else ()
        return KernelEnforcement(kill, rules, missing, RateLimits.in_kernel(probes, slot))

    def forget(self, cgroup_id: int, unified_dir: str | None) -> None:
        """The container is unwatched (its table rows are zeroed with its slot)."""
        self._policies.pop(cgroup_id, None)
        self.egress.detach(cgroup_id, unified_dir)
        self.armed.discard(cgroup_id)

    def name_rule(self, event: EgressEvent) -> EgressEvent:
        """The event with the policy and rule it names (by index) filled in."""
        policies = self._policies.get(event.cgroup_id, {}).get(event.generation, ())
        policy, rule = rule_of(policies, event.policy_index, event.rule_index)
        return dataclasses.replace(event, policy=policy, rule=rule)

    def clear(self, detach: bool = True) -> None:
        """Forget every container; `detach` False leaves the egress programs attached (they
        are pinned to outlive the daemon)."""
        if detach:
            self.egress.detach_all()
        else:
            self.egress.dirs.clear()
        self._policies.clear()
        self.armed.clear()
