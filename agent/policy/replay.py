"""`corral policy replay`: what a proposed policy would have done, and when, over the signal
history the daemon kept, without acting.

Each container in the history that the policy selects is run through a fresh Engine, sample
by sample, as if the policy had been in force (whatever its mode, so a user sees what
enforcing would do; `mode` is reported). Because nothing was actually throttled or frozen,
the history after a would-be action is what really happened, not what would have followed;
the report says so.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from agent.policy.engine import Engine
from agent.policy.history import SignalHistory
from agent.policy.merge import merge
from agent.policy.model import Policy


@dataclass(frozen=True)
class ReplayEvent:
    time: float
    container_id: str
    container_name: str
    policy: str
    rule: str
    kind: str                  # "fire" | "resolve" | "syscall"
    value: float | None
    actions: tuple[str, ...]
    detail: str = ""

    def to_dict(self) -> dict:
        return dict(self.__dict__, actions=list(self.actions))


@dataclass(frozen=True)
class ReplayReport:
    policy: str
    mode: str
    since: float
    containers: tuple[str, ...]            # names of the containers the policy selects
    samples: int                           # samples evaluated
    events: tuple[ReplayEvent, ...] = field(default_factory=tuple)
    note: str = ("actions are not applied during a replay: samples after a would-be throttle, "
                 "freeze or kill show what really happened")

    def to_dict(self) -> dict:
        return {"policy": self.policy, "mode": self.mode, "since": self.since,
                "containers": list(self.containers), "samples": self.samples,
                "events": [e.to_dict() for e in self.events], "note": self.note}


def replay(policy: Policy, history: SignalHistory, since: float = 0.0) -> ReplayReport:
    """Evaluate `policy` against every selected container's samples at or after `since`."""
    enforcing = replace(policy, mode="enforce")
    effective = merge([enforcing])
    denied = {e.syscall: e for e in effective.syscalls}
    events: list[ReplayEvent] = []
    selected: list[str] = []
    count = 0
    for container in history.containers():
        if not policy.selector.matches(container.name, container.image, container.labels):
            continue
        selected.append(container.name)
        engine = Engine()
        seen_syscalls: set[str] = set()
        for sample in history.samples(container.id, since):
            count += 1
            evaluation = engine.evaluate(container, effective, sample)
            for violation in evaluation.violations:
                events.append(ReplayEvent(violation.time, container.id, container.name, policy.name,
                                          violation.rule, "fire", violation.value, violation.actions,
                                          f"{violation.signal} {violation.value:g} > {violation.above:g} "
                                          f"since {violation.since:.0f}"))
            for resolution in evaluation.resolutions:
                events.append(ReplayEvent(resolution.time, container.id, container.name, policy.name,
                                          resolution.rule, "resolve", resolution.value, resolution.actions,
                                          resolution.reason))
            # Syscall rules: the first call of a ruled syscall in the history (per container) is
            # when the rule would have acted; later calls would repeat it.
            for name, (calls, _errors) in sample.syscalls.items():
                entry = denied.get(name)
                if entry is None or calls <= 0 or name in seen_syscalls:
                    continue
                seen_syscalls.add(name)
                events.append(ReplayEvent(sample.time, container.id, container.name, policy.name,
                                          entry.source.rule, "syscall", calls, (entry.action,),
                                          f"{name} called ({calls:g}/s)"))
    events.sort(key=lambda e: (e.time, e.container_name, e.rule))
    return ReplayReport(policy.name, policy.mode, since, tuple(selected), count, tuple(events))


