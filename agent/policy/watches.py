"""Which thresholds the kernel watches for the policy service, and how fast it samples the rest.

`watch_spec()` turns a container's effective policy into what to arm (agent/cgroups/watch.py):
memory thresholds (bytes, or percent of the container's limit), OOM kills, and pressure
triggers. `Watches` keeps one armed set per running container, re-arming only when the wanted
set or the cgroup changes, and says which signals of a container have an event source.

`Pace` is the adaptive interval of the periodic evaluation (docs/policies.md, "How fast
actions happen"): the configured interval while some container is within `margin` of a
threshold that has no event source (or has a rule pending or firing, or was just started),
`slow_factor` times it otherwise.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from agent.cgroups.driver import CgroupPaths
from agent.cgroups.watch import MEMORY, OOM, PSI_WINDOW_US, Armed, PressureTrigger, ThresholdWatch, WatchSpec
from agent.policy.merge import EffectivePolicy, ThresholdEntry

log = logging.getLogger("corral.policy")

MEMORY_SIGNALS = ("memory_bytes", "memory_percent_of_limit")
PRESSURE_SIGNALS = {"memory_pressure_some_percent": ("memory", "some"),
                    "memory_pressure_full_percent": ("memory", "full"),
                    "cpu_pressure_some_percent": ("cpu", "some")}


def source_of(signal: str) -> str | None:
    """The watch source that reports `signal`, None for signals only sampling sees."""
    if signal in MEMORY_SIGNALS:
        return MEMORY
    if signal == "oom_kills":
        return OOM
    if signal in PRESSURE_SIGNALS:
        resource, kind = PRESSURE_SIGNALS[signal]
        return f"pressure:{resource}:{kind}"
    return None


def watch_spec(effective: EffectivePolicy, memory_limit: int | None, *, own: bool) -> WatchSpec:
    """What to arm for a container under `effective`. memory.high (v2) is allowed only when
    every memory rule is enforcing and may throttle, and only on Corral's own containers:
    it slows the container at the threshold, which only a throttle action may do."""
    memory: set[int] = set()
    throttles = own
    oom = False
    stalls: dict[tuple[str, str], int] = {}
    for entry in effective.thresholds:
        threshold = entry.threshold
        if threshold.signal == "memory_bytes":
            memory.add(max(0, int(threshold.above)))
        elif threshold.signal == "memory_percent_of_limit":
            if not memory_limit:
                continue             # unlimited: the percentage has no value to arm
            memory.add(max(0, int(memory_limit * threshold.above / 100)))
        elif threshold.signal == "oom_kills":
            oom = True
            continue
        elif threshold.signal in PRESSURE_SIGNALS:
            stall = int(PSI_WINDOW_US * threshold.above / 100)
            key = PRESSURE_SIGNALS[threshold.signal]
            stalls[key] = min(stalls.get(key, PSI_WINDOW_US), max(1, min(PSI_WINDOW_US, stall)))
            continue
        else:
            continue
        if entry.source.mode != "enforce" or "throttle" not in threshold.actions:
            throttles = False
    pressure = tuple(PressureTrigger(resource, kind, stall) for (resource, kind), stall in sorted(stalls.items()))
    return WatchSpec(tuple(sorted(memory)), oom, pressure, memory_high=throttles and bool(memory))


@dataclass(frozen=True)
class _Armed:
    paths: CgroupPaths
    spec: WatchSpec
    armed: Armed


class Watches:
    """The armed watch of every running container, by container id. Used from the policy
    thread only."""

    def __init__(self, watch: ThresholdWatch) -> None:
        self.watch = watch
        self._armed: dict[str, _Armed] = {}

    def sync(self, wanted: dict[str, tuple[CgroupPaths, WatchSpec]]) -> list[str]:
        """Arm what changed, disarm containers no longer wanted; the ids newly armed (their
        value may already be past a threshold: a crossing event would never come)."""
        for gone in set(self._armed) - set(wanted):
            self.forget(gone)
        changed = []
        for container_id, (paths, spec) in wanted.items():
            current = self._armed.get(container_id)
            if current is not None and current.spec == spec and current.paths == paths:
                continue
            if spec.is_empty():
                self.forget(container_id)
                continue
            armed = self.watch.arm(container_id, paths, spec)
            for problem in armed.problems:
                log.warning("container %s: threshold not watched by the kernel, sampled instead: %s",
                            container_id[:12], problem)
            self._armed[container_id] = _Armed(paths, spec, armed)
            changed.append(container_id)
        return changed

    def forget(self, container_id: str) -> None:
        if self._armed.pop(container_id, None) is not None:
            self.watch.disarm(container_id)

    def evented(self, container_id: str, entry: ThresholdEntry) -> bool:
        """True when the kernel tells of `entry`'s signal for this container."""
        current = self._armed.get(container_id)
        source = source_of(entry.threshold.signal)
        return current is not None and source is not None and source in current.armed.sources

    def close(self) -> None:
        for container_id in list(self._armed):
            self.forget(container_id)
        self.watch.close()


def near(value: float | None, above: float, margin: float) -> bool:
    """Within `margin` (a fraction of the threshold) of crossing it. Unknown is not near (a
    signal the host never reports would pin the pace; a container's first sample, whose rates
    are all unknown, keeps the pace by itself). A threshold at or below zero has no scale to
    take a margin of: only crossing it counts."""
    if value is None:
        return False
    if above <= 0:
        return value > above
    return value >= above * (1.0 - margin)


@dataclass
class Pace:
    """The periodic evaluation's interval: `interval`, or `interval * slow_factor` while
    nothing sampled is near a threshold."""

    interval: float
    slow_factor: float = 5.0
    margin: float = 0.5
    current: float = 0.0

    def __post_init__(self) -> None:
        self.current = self.interval

    def settle(self, close: bool) -> float:
        """After an evaluation: `close` says whether anything sampled was near a threshold."""
        self.current = self.interval if close else self.interval * self.slow_factor
        return self.current
