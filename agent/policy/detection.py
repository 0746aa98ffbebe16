"""Which thresholds the kernel checks and which the periodic evaluation samples, and why: for
`policy explain` (from what the policy service armed and wrote) and `policy prove` (from the
rate levels read back from the kernel). docs/policies.md, "Which thresholds the kernel checks".

A threshold is checked in the kernel by a cgroup watch (memory thresholds, OOM kills, pressure
triggers: agent/policy/watches.py) or by the probes' rate levels (container-wide and per-syscall
rates: agent/policy/kernel_rates.py); everything else is sampled, and so is a checkable threshold
whose source is not armed now (a probe not attached, a host that refused the watch).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from agent.policy.kernel_rates import PROBE_SIGNAL, Number, describe_level, level_of, sampled_because
from agent.policy.merge import EffectivePolicy, ThresholdEntry
from agent.policy.watches import source_of

KERNEL = "kernel"
SAMPLED = "sampled"
NO_SOURCE = "no kernel event source: read at each periodic evaluation"


@dataclass(frozen=True)
class Detection:
    """How one threshold rule of one container is seen."""

    rule: str           # the rule as effective.to_dict() names it ("policy/rule")
    checked: str        # kernel | sampled
    by: str             # rate_limits | watch:memory | watch:oom | watch:pressure:... | sampling
    detail: str         # the level checked, or why it is sampled

    def to_dict(self) -> dict:
        return asdict(self)


def detect(entry: ThresholdEntry, effective: EffectivePolicy, *, rate_level_held: bool, watched: bool,
           number: Number, running: bool = True) -> Detection:
    """`rate_level_held`: the kernel holds this rule's rate level for the container; `watched`:
    a cgroup watch for its signal is armed; `number`: syscall name -> number on this host."""
    rule, signal = str(entry.source), entry.threshold.signal
    if not running:
        return Detection(rule, SAMPLED, "sampling", "the container is not running")
    watch = source_of(signal)
    if watch is not None:
        if watched:
            return Detection(rule, KERNEL, f"watch:{watch}", "a cgroup notification at the threshold")
        return Detection(rule, SAMPLED, "sampling",
                         "its cgroup watch is not armed (the host refused the source: the daemon log says which)")
    why = sampled_because(entry, effective, number)
    if signal in PROBE_SIGNAL and why is None:
        if rate_level_held:
            return Detection(rule, KERNEL, "rate_limits", f"{describe_level(entry)} in a 1 s window")
        return Detection(rule, SAMPLED, "sampling",
                         f"the kernel does not hold its level {level_of(entry)}: the probe counting "
                         f"{PROBE_SIGNAL[signal]} is not attached, or the container is not watched by the probes")
    return Detection(rule, SAMPLED, "sampling", why or NO_SOURCE)
