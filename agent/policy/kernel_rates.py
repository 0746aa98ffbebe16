"""Rate thresholds the kernel checks for the policy service (probes/rates.c, written through
`ProbeControl.set_rate_limits`), and the crossings it reports.

A threshold is kernel-checked when it is a plain `above` on a rate the probes count:
`syscalls_per_second`, `syscall_errors_per_second` (container-wide, or of one syscall with
`syscall:`), `tcp_connects_per_second`, `network_tx_bytes_per_second`,
`network_rx_bytes_per_second`. The kernel holds up to RATE_LEVELS levels per container and key
(a signal, or a signal of one syscall): each distinct `above` of that key rounded down (a whole
count above it is above the threshold), the lowest RATE_LEVELS of them, counted in 1 s windows,
and it reports each level's first crossing in a window; per-syscall keys are held for the first
RATE_SYSCALL_LIMITS (syscall, signal) pairs of the container's policies. So an alert at 1000/s
and a kill at 5000/s on one signal are two levels, and each rule fires from its own crossing with
its own actions. A crossing advances every kernel-checked rule of that key whose `above` the
window's count already exceeds (Engine.cross); the others (levels beyond RATE_LEVELS, per-syscall
pairs beyond RATE_SYSCALL_LIMITS, a syscall without a number here, the other signals) stay with
the periodic evaluation, which also resolves a rule once its sampled rate falls back. Both paths
share the engine's one state per rule, so a rule never fires twice for one breach. After a
crossing that leaves a rule firing or pending, the next periodic evaluation takes these rates
over the time since the crossing (`since_crossing`): over a tick interval that began before the
storm, a storm just above the threshold would average below it, resolve the rule and fire it
again at the next tick.

The limits are written again whenever the probes give the container a new slot (a restart in
the same cgroup, a reload of the probes: `ProbeControl.watch_epoch` changes), not only when the
thresholds change. `checked_by` says for `policy explain` which of these applies to a rule, and why.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import threading
from typing import Callable

from agent.errors import CorralError
from agent.metrics.snapshot import ContainerSnapshot
from agent.policy.merge import EffectivePolicy, ThresholdEntry
from agent.policy.signals import SignalSample, compute_signals
from agent.probes.events import RateEvent
from agent.probes.interface import ProbeControl
from agent.probes.rate_limits import RateKey
from agent.probes.structs import RATE_LEVELS, RATE_SYSCALL_LIMITS

log = logging.getLogger("corral.policy")

# policy signal -> the probes' rate signal (agent/probes/structs.py RATE_SIGNALS)
PROBE_SIGNAL = {"syscalls_per_second": "syscalls", "syscall_errors_per_second": "syscall_errors",
                "tcp_connects_per_second": "tcp_connects", "network_tx_bytes_per_second": "net_tx_bytes",
                "network_rx_bytes_per_second": "net_rx_bytes"}
POLICY_SIGNAL = {probe: policy for policy, probe in PROBE_SIGNAL.items()}
MAX_LIMIT = 2**63 - 1
STALE_SECONDS = 2.0      # a crossing older than this (a retired generation's ring) is left to sampling
Number = Callable[[str], "int | None"]      # a syscall's number on this host (agent.syscall_table)
RateLimitsWanted = dict[RateKey, tuple[int, ...]]    # key -> its levels, as written


def kernel_checked(entry: ThresholdEntry) -> bool:
    """Whether the kernel can check `entry` (whether it does: `kernel_limits`, KernelRates.evented)."""
    threshold = entry.threshold
    return threshold.signal in PROBE_SIGNAL and 0 <= threshold.above < MAX_LIMIT


def level_of(entry: ThresholdEntry) -> int:
    return math.floor(entry.threshold.above)


def key_of(entry: ThresholdEntry, number: Number) -> RateKey | None:
    """The probes' key of a kernel-checkable rule: its signal, or (signal, syscall number); None
    for a syscall this host has no number for."""
    signal = PROBE_SIGNAL[entry.threshold.signal]
    if entry.threshold.syscall is None:
        return signal
    nr = number(entry.threshold.syscall)
    return None if nr is None else (signal, nr)


def kernel_limits(effective: EffectivePolicy, number: Number) -> RateLimitsWanted:
    """Key -> its levels: the distinct kernel-checkable `above`s of the key rounded down,
    ascending, the lowest RATE_LEVELS of them; per-syscall keys for the first
    RATE_SYSCALL_LIMITS (syscall, signal) pairs in the policies' order."""
    levels: dict[RateKey, set[int]] = {}
    for entry in effective.thresholds:
        key = key_of(entry, number) if kernel_checked(entry) else None
        if key is None:
            continue
        if key not in levels and not isinstance(key, str) and \
                sum(1 for k in levels if not isinstance(k, str)) >= RATE_SYSCALL_LIMITS:
            continue
        levels.setdefault(key, set()).add(level_of(entry))
    return {key: tuple(sorted(found)[:RATE_LEVELS]) for key, found in levels.items()}


# The rates without a kernel source, and why (docs/policies.md, "Which thresholds the kernel checks").
SAMPLED_RATES = {
    "cpu_percent": "no probe counts CPU time: it is read from the cgroup's cpuacct",
    "cpu_throttled_percent": "read from the cgroup's cpu.stat; the kernel has no event for it",
    "memory_growth_bytes_per_second": "a slope of two memory readings; the kernel has no event for it",
}


def sampled_because(entry: ThresholdEntry, effective: EffectivePolicy, number: Number) -> str | None:
    """Why the kernel does not check this rate rule under `effective`; None when it does (or
    would, once its probe is attached and the container watched)."""
    threshold = entry.threshold
    if threshold.signal not in PROBE_SIGNAL:
        return None if threshold.signal not in SAMPLED_RATES else SAMPLED_RATES[threshold.signal]
    if not kernel_checked(entry):
        return f"its value is beyond the kernel's counters (at most {MAX_LIMIT})"
    key = key_of(entry, number)
    if key is None:
        return f"syscall {threshold.syscall} has no number on this host"
    held = kernel_limits(effective, number)
    if key not in held:
        return (f"the kernel checks per-syscall rates of at most {RATE_SYSCALL_LIMITS} (syscall, signal) "
                "pairs per container; this one comes after them")
    if level_of(entry) not in held[key]:
        return (f"the kernel checks the lowest {RATE_LEVELS} levels of a signal; this one is above them "
                "(policies selecting this container together have more distinct levels)")
    return None


def describe_level(entry: ThresholdEntry) -> str:
    """The level as explain shows it: "syscalls above 1000", "syscalls of read above 1000"."""
    syscall = entry.threshold.syscall
    signal = PROBE_SIGNAL[entry.threshold.signal]
    return f"{signal}{'' if syscall is None else f' of {syscall}'} above {level_of(entry)}"


def crossed_rules(effective: EffectivePolicy, event: RateEvent, number: Number) -> tuple[ThresholdEntry, ...]:
    """The kernel-checked rules on the key of `event` (its signal, and its syscall if it has one)."""
    key: RateKey = event.signal if event.nr is None else (event.signal, event.nr)
    return tuple(e for e in effective.thresholds if kernel_checked(e) and key_of(e, number) == key)


def since_crossing(sample: SignalSample, base: ContainerSnapshot, snapshot: ContainerSnapshot,
                   min_window: float) -> SignalSample:
    """`sample` with its kernel-checked rates taken over [base, snapshot] (`base`: the
    container's snapshot at a crossing), unknown while that is shorter than `min_window`. The
    per-syscall rates too when `base` has per-syscall counts."""
    since = compute_signals(base, snapshot) if snapshot.time - base.time >= min_window else None
    values = dict(sample.values)
    for signal in PROBE_SIGNAL:
        values[signal] = since.values.get(signal) if since is not None else None
    syscalls = sample.syscalls
    if base.by_syscall:
        syscalls = since.syscalls if since is not None else {}
    return dataclasses.replace(sample, values=values, syscalls=syscalls)


class KernelRates:
    """The limits written for each running container (by container id), and the crossings
    waiting for the policy thread. `sync` and `take` run on the policy thread; `offer` on the
    probe event pump's. `number`: syscall name -> number (per-syscall limits)."""

    def __init__(self, probes: ProbeControl | None, number: Number = lambda name: None) -> None:
        self.probes = probes
        self.number = number
        # container id -> (cgroup id, levels wanted, keys the kernel checks, the slot's watch epoch)
        self._written: dict[str, tuple[int, RateLimitsWanted, tuple[RateKey, ...], int | None]] = {}
        self._lock = threading.Lock()
        self._crossings: list[tuple[str, RateEvent]] = []

    def sync(self, wanted: dict[str, tuple[int, RateLimitsWanted]]) -> None:
        """Write the limits that changed (container id -> (cgroup id, limits)), and those of a
        container whose slot the probes gave again (a restart in the same cgroup, a reload of
        the probes: its row starts empty); clear those of containers no longer wanted. A
        container the probes do not watch stays sampled."""
        if self.probes is None:
            return
        for gone in set(self._written) - set(wanted):
            cgroup_id = self._written.pop(gone)[0]
            self._write(gone, cgroup_id, {})
        for container_id, (cgroup_id, limits) in wanted.items():
            current = self._written.get(container_id)
            if current is None and not limits:
                continue
            epoch = self.probes.watch_epoch(cgroup_id)
            if current is not None and current[:2] == (cgroup_id, limits) and current[3] == epoch:
                continue
            if current is not None and current[3] != epoch and epoch is not None:
                log.info("container %s: rate limits written again (its probe slot was given anew)",
                         container_id[:12])
            armed = self._write(container_id, cgroup_id, limits)
            if armed is None:
                self._written.pop(container_id, None)      # retried at the next sync
            elif limits:
                self._written[container_id] = (cgroup_id, limits, armed, epoch)
            else:
                self._written.pop(container_id, None)

    def _write(self, container_id: str, cgroup_id: int, limits: RateLimitsWanted) -> tuple[RateKey, ...] | None:
        assert self.probes is not None
        try:
            armed = self.probes.set_rate_limits(cgroup_id, limits)
        except CorralError as error:     # not watched (yet, or any more): sampled meanwhile
            log.debug("container %s: rate limits not written: %s", container_id[:12], error)
            return None
        for key in sorted(set(limits) - set(armed), key=str):
            log.warning("container %s: %s is sampled, not checked in the kernel: its probe is not attached",
                        container_id[:12], key if isinstance(key, str) else f"{key[0]} of syscall {key[1]}")
        return armed

    def evented(self, container_id: str, entry: ThresholdEntry) -> bool:
        """True when the kernel reports `entry` crossing (its level is one written and armed)."""
        written = self._written.get(container_id)
        if written is None or not kernel_checked(entry):
            return False
        key = key_of(entry, self.number)
        return key is not None and key in written[2] and level_of(entry) in written[1].get(key, ())

    def offer(self, container_id: str, event: RateEvent) -> None:
        with self._lock:
            self._crossings.append((container_id, event))

    def take(self, now: float) -> list[tuple[str, RateEvent]]:
        """The crossings offered since the last call, without the stale ones."""
        with self._lock:
            crossings, self._crossings = self._crossings, []
        return [(cid, event) for cid, event in crossings if now - event.time <= STALE_SECONDS]
