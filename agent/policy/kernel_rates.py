"""Rate thresholds the kernel checks for the policy service (probes/rates.c, written through
`ProbeControl.set_rate_limits`), and the crossings it reports.

A threshold is kernel-checked when it is a plain `above` on a container-wide rate (no
`syscall:`): `syscalls_per_second`, `syscall_errors_per_second`, `tcp_connects_per_second`,
`network_tx_bytes_per_second`, `network_rx_bytes_per_second`. The kernel holds one limit per
container and signal, the lowest such threshold's `above` rounded down (a whole count above it
is above the threshold), counted in 1 s windows. A crossing advances every kernel-checked rule
of that signal whose `above` the window's count already exceeds (Engine.cross); the others
(higher thresholds on the same signal, per-syscall rates, the other signals) stay with the
periodic evaluation, which also resolves a rule once its sampled rate falls back. Both paths
share the engine's one state per rule, so a rule never fires twice for one breach. After a
crossing that leaves a rule firing or pending, the next periodic evaluation takes these rates
over the time since the crossing (`since_crossing`): over a tick interval that began before
the storm, a storm just above the threshold would average below it, resolve the rule and
fire it again at the next tick.
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

log = logging.getLogger("corral.policy")

# policy signal -> the probes' rate signal (agent/probes/structs.py RATE_SIGNALS)
PROBE_SIGNAL = {"syscalls_per_second": "syscalls", "syscall_errors_per_second": "syscall_errors",
                "tcp_connects_per_second": "tcp_connects", "network_tx_bytes_per_second": "net_tx_bytes",
                "network_rx_bytes_per_second": "net_rx_bytes"}
POLICY_SIGNAL = {probe: policy for policy, probe in PROBE_SIGNAL.items()}
MAX_LIMIT = 2**63 - 1
STALE_SECONDS = 2.0      # a crossing older than this (a retired generation's ring) is left to sampling


def kernel_checked(entry: ThresholdEntry) -> bool:
    threshold = entry.threshold
    return (threshold.signal in PROBE_SIGNAL and threshold.syscall is None
            and 0 <= threshold.above < MAX_LIMIT)


def kernel_limits(effective: EffectivePolicy) -> dict[str, int]:
    """Probe signal -> limit: the lowest kernel-checked `above` of each signal, rounded down."""
    limits: dict[str, int] = {}
    for entry in effective.thresholds:
        if kernel_checked(entry):
            signal = PROBE_SIGNAL[entry.threshold.signal]
            limit = math.floor(entry.threshold.above)
            limits[signal] = min(limits.get(signal, limit), limit)
    return limits


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
        # container id -> (cgroup id, limits wanted, signals the kernel checks)
        self._written: dict[str, tuple[int, dict[str, int], tuple[str, ...]]] = {}
        self._lock = threading.Lock()
        self._crossings: list[tuple[str, RateEvent]] = []

    def sync(self, wanted: dict[str, tuple[int, dict[str, int]]]) -> None:
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

    def _write(self, container_id: str, cgroup_id: int, limits: dict[str, int]) -> tuple[str, ...] | None:
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
        """True when the kernel reports `entry` crossing (its limit is the one written)."""
        written = self._written.get(container_id)
        if written is None or not kernel_checked(entry):
            return False
        signal = PROBE_SIGNAL[entry.threshold.signal]
        return signal in written[2] and written[1].get(signal) == math.floor(entry.threshold.above)

    def offer(self, container_id: str, event: RateEvent) -> None:
        with self._lock:
            self._crossings.append((container_id, event))

    def take(self, now: float) -> list[tuple[str, RateEvent]]:
        """The crossings offered since the last call, without the stale ones."""
        with self._lock:
            crossings, self._crossings = self._crossings, []
        return [(cid, event) for cid, event in crossings if now - event.time <= STALE_SECONDS]
