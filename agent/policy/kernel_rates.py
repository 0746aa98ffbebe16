"""Rate thresholds the kernel checks for the policy service (probes/rates.c, written through
`ProbeControl.set_rate_limits`), and the crossings it reports.

A threshold is kernel-checked when it is a plain `above` on a container-wide rate (no
`syscall:`): `syscalls_per_second`, `syscall_errors_per_second`, `tcp_connects_per_second`,
`network_tx_bytes_per_second`, `network_rx_bytes_per_second`. The kernel holds up to RATE_LEVELS
levels per container and signal: each distinct `above` of that signal rounded down (a whole
count above it is above the threshold), the lowest RATE_LEVELS of them, counted in 1 s windows,
and it reports each level's first crossing in a window. So an alert at 1000/s and a kill at
5000/s on one signal are two levels, and each rule fires from its own crossing with its own
actions. A crossing advances every kernel-checked rule of that signal whose `above` the
window's count already exceeds (Engine.cross); the others (a fifth distinct level and above,
per-syscall rates, the other signals) stay with the periodic evaluation, which also resolves a
rule once its sampled rate falls back. Both paths share the engine's one state per rule, so a
rule never fires twice for one breach. After a crossing that leaves a rule firing or pending,
the next periodic evaluation takes these rates over the time since the crossing
(`since_crossing`): over a tick interval that began before the storm, a storm just above the
threshold would average below it, resolve the rule and fire it again at the next tick.

`checked_by` says for `policy explain` which of these applies to a rule, and why.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import threading

from agent.errors import CorralError
from agent.metrics.snapshot import ContainerSnapshot
from agent.policy.merge import EffectivePolicy, ThresholdEntry
from agent.policy.signals import SignalSample, compute_signals
from agent.probes.events import RateEvent
from agent.probes.interface import ProbeControl
from agent.probes.structs import RATE_LEVELS

log = logging.getLogger("corral.policy")

# policy signal -> the probes' rate signal (agent/probes/structs.py RATE_SIGNALS)
PROBE_SIGNAL = {"syscalls_per_second": "syscalls", "syscall_errors_per_second": "syscall_errors",
                "tcp_connects_per_second": "tcp_connects", "network_tx_bytes_per_second": "net_tx_bytes",
                "network_rx_bytes_per_second": "net_rx_bytes"}
POLICY_SIGNAL = {probe: policy for policy, probe in PROBE_SIGNAL.items()}
MAX_LIMIT = 2**63 - 1
STALE_SECONDS = 2.0      # a crossing older than this (a retired generation's ring) is left to sampling


def kernel_checked(entry: ThresholdEntry) -> bool:
    """Whether the kernel can check `entry` (whether it does: `kernel_limits`, KernelRates.evented)."""
    threshold = entry.threshold
    return (threshold.signal in PROBE_SIGNAL and threshold.syscall is None
            and 0 <= threshold.above < MAX_LIMIT)


def level_of(entry: ThresholdEntry) -> int:
    return math.floor(entry.threshold.above)


def kernel_limits(effective: EffectivePolicy) -> dict[str, tuple[int, ...]]:
    """Probe signal -> its levels: the distinct kernel-checkable `above`s of the signal rounded
    down, ascending, the lowest RATE_LEVELS of them."""
    levels: dict[str, set[int]] = {}
    for entry in effective.thresholds:
        if kernel_checked(entry):
            levels.setdefault(PROBE_SIGNAL[entry.threshold.signal], set()).add(level_of(entry))
    return {signal: tuple(sorted(found)[:RATE_LEVELS]) for signal, found in levels.items()}


# The rates without a kernel source, and why (docs/policies.md, "Which thresholds the kernel checks").
SAMPLED_RATES = {
    "cpu_percent": "no probe counts CPU time: it is read from the cgroup's cpuacct",
    "cpu_throttled_percent": "read from the cgroup's cpu.stat; the kernel has no event for it",
    "memory_growth_bytes_per_second": "a slope of two memory readings; the kernel has no event for it",
}


def sampled_because(entry: ThresholdEntry, effective: EffectivePolicy) -> str | None:
    """Why the kernel does not check this rate rule under `effective`; None when it does (or
    would, once its probe is attached and the container watched)."""
    threshold = entry.threshold
    if threshold.signal not in PROBE_SIGNAL:
        return None if threshold.signal not in SAMPLED_RATES else SAMPLED_RATES[threshold.signal]
    if threshold.syscall is not None:
        return ("a per-syscall rate: the probes count it per CPU, which cannot be compared with a limit "
                "in the kernel")
    if not kernel_checked(entry):
        return f"its value is beyond the kernel's counters (at most {MAX_LIMIT})"
    if level_of(entry) not in kernel_limits(effective).get(PROBE_SIGNAL[threshold.signal], ()):
        return f"the kernel checks the lowest {RATE_LEVELS} levels of a signal; this one is above them"
    return None


def crossed_rules(effective: EffectivePolicy, event: RateEvent) -> tuple[ThresholdEntry, ...]:
    """The kernel-checked rules on the signal of `event`."""
    signal = POLICY_SIGNAL.get(event.signal)
    return tuple(e for e in effective.thresholds if e.threshold.signal == signal and kernel_checked(e))


def since_crossing(sample: SignalSample, base: ContainerSnapshot, snapshot: ContainerSnapshot,
                   min_window: float) -> SignalSample:
    """`sample` with its kernel-checked rates taken over [base, snapshot] (`base`: the
    container's snapshot at a crossing), unknown while that is shorter than `min_window`."""
    since = compute_signals(base, snapshot) if snapshot.time - base.time >= min_window else None
    values = dict(sample.values)
    for signal in PROBE_SIGNAL:
        values[signal] = since.values.get(signal) if since is not None else None
    return dataclasses.replace(sample, values=values)


class KernelRates:
    """The limits written for each running container (by container id), and the crossings
    waiting for the policy thread. `sync` and `take` run on the policy thread; `offer` on the
    probe event pump's."""

    def __init__(self, probes: ProbeControl | None) -> None:
        self.probes = probes
        # container id -> (cgroup id, levels wanted, signals the kernel checks)
        self._written: dict[str, tuple[int, dict[str, tuple[int, ...]], tuple[str, ...]]] = {}
        self._lock = threading.Lock()
        self._crossings: list[tuple[str, RateEvent]] = []

    def sync(self, wanted: dict[str, tuple[int, dict[str, tuple[int, ...]]]]) -> None:
        """Write the limits that changed (container id -> (cgroup id, limits)); clear those of
        containers no longer wanted. A container the probes do not watch stays sampled."""
        if self.probes is None:
            return
        for gone in set(self._written) - set(wanted):
            cgroup_id = self._written.pop(gone)[0]
            self._write(gone, cgroup_id, {})
        for container_id, (cgroup_id, limits) in wanted.items():
            current = self._written.get(container_id)
            if current is not None and current[:2] == (cgroup_id, limits):
                continue
            if current is None and not limits:
                continue
            armed = self._write(container_id, cgroup_id, limits)
            if armed is None:
                self._written.pop(container_id, None)      # retried at the next sync
            elif limits:
                self._written[container_id] = (cgroup_id, limits, armed)
            else:
                self._written.pop(container_id, None)

    def _write(self, container_id: str, cgroup_id: int,
               limits: dict[str, tuple[int, ...]]) -> tuple[str, ...] | None:
        assert self.probes is not None
        try:
            armed = self.probes.set_rate_limits(cgroup_id, limits)
        except CorralError as error:     # not watched (yet, or any more): sampled meanwhile
            log.debug("container %s: rate limits not written: %s", container_id[:12], error)
            return None
        for signal in sorted(set(limits) - set(armed)):
            log.warning("container %s: %s is sampled, not checked in the kernel: its probe is not attached",
                        container_id[:12], POLICY_SIGNAL[signal])
        return armed

    def evented(self, container_id: str, entry: ThresholdEntry) -> bool:
        """True when the kernel reports `entry` crossing (its level is one written and armed)."""
        written = self._written.get(container_id)
        if written is None or not kernel_checked(entry):
            return False
        signal = PROBE_SIGNAL[entry.threshold.signal]
        return signal in written[2] and level_of(entry) in written[1].get(signal, ())

    def offer(self, container_id: str, event: RateEvent) -> None:
        with self._lock:
            self._crossings.append((container_id, event))

    def take(self, now: float) -> list[tuple[str, RateEvent]]:
        """The crossings offered since the last call, without the stale ones."""
        with self._lock:
            crossings, self._crossings = self._crossings, []
        return [(cid, event) for cid, event in crossings if now - event.time <= STALE_SECONDS]
