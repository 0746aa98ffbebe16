"""Syscall `alert` rules (and the deny/kill rules of audit policies, which only alert), from the
probes' per-container syscall counters: one violation per rule and syscall in each interval
where the syscall's count went up, with the number of calls as its value."""
from __future__ import annotations

from agent.metrics.snapshot import ContainerSnapshot
from agent.policy.engine import Action, ContainerRef, Evaluation, Violation
from agent.policy.merge import EffectivePolicy


def syscall_alerts(ref: ContainerRef, effective: EffectivePolicy, previous: ContainerSnapshot | None,
                   snapshot: ContainerSnapshot, started_at: float, evaluation: Evaluation) -> None:
    """Add the interval's syscall alerts to `evaluation`; `previous` is the container's last
    snapshot (None: count from `started_at`)."""
    alerted = effective.alerted_syscalls()
    if not alerted:
        return
    if any(e == "probes:syscalls" for e in snapshot.errors + (previous.errors if previous else ())):
        return      # no counts to compare this interval (a failed read is not zero calls)
    before = previous.by_syscall if previous else {}
    since = previous.time if previous else started_at
    for syscall, sources in sorted(alerted.items()):
        calls = snapshot.by_syscall.get(syscall, (0, 0))[0] - before.get(syscall, (0, 0))[0]
        if calls <= 0:
            continue
        for source in sources:
            entry = next(e for e in effective.syscalls if e.syscall == syscall and e.source == source)
            violation = Violation(ref.id, ref.name, source.policy, source.rule, "syscall", syscall,
                                  float(calls), 0.0, since, snapshot.time, source.mode, ("alert",),
                                  () if entry.action == "alert" else (entry.action,))
            evaluation.violations.append(violation)
            evaluation.actions.append(Action("alert", ref.id, ref.name, source.policy, source.rule, violation))
