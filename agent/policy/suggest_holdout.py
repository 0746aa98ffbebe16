"""The check of a suggestion on data it was not built from: the suggestion is made from the
first part of the window and replayed, without acting, over the rest (the held-out part).
Each finding is something the suggested policy would have blocked or reported there: a
syscall outside the allow-list or denied by a rule, a TCP destination the egress rules
refuse, a peak above a limit, a threshold that would have fired (agent/policy/replay.py).
An empty report means the suggestion held on data it had not seen.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from agent.policy.history import Behaviour, SignalHistory, parse_destination
from agent.policy.merge import merge
from agent.policy.model import Policy
from agent.policy.replay import replay
from agent.policy.suggest import Suggestion, observe

MiB = 1024 * 1024


@dataclass(frozen=True)
class Finding:
    time: float | None
    container: str
    what: str              # syscall | egress | limit | threshold
    detail: str
    action: str            # what the policy would have done: deny, refuse, oom, throttle, alert...

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class HoldoutReport:
    start: float
    end: float
    samples: int
    findings: tuple[Finding, ...]

    def to_dict(self) -> dict:
        return {"start": self.start, "end": self.end, "samples": self.samples,
                "findings": [f.to_dict() for f in self.findings]}


def holdout(suggestion: Suggestion, policy: Policy, behaviours: Iterable[Behaviour],
            start: float, end: float) -> HoldoutReport:
    """What `policy` (made from `suggestion`) would have blocked between `start` (exclusive)
    and `end` in each container's history."""
    behaviours = list(behaviours)
    effective = merge([policy])
    allowed, denied = set(suggestion.allowed), set(suggestion.denied)
    findings: list[Finding] = []
    samples = 0
    for behaviour in behaviours:
        name = behaviour.container.name
        for syscall, seen in sorted(behaviour.syscalls.items()):
            if seen.last <= start or syscall in allowed or syscall in suggestion.unnamed:
                continue
            when = max(seen.first, start)
            if syscall in denied:
                findings.append(Finding(when, name, "syscall", f"{syscall}: denied by rule never-used-dangerous",
                                        "deny"))
            else:
                findings.append(Finding(when, name, "syscall", f"{syscall}: not in the seccomp allow-list",
                                        "deny (with the profile)"))
        if suggestion.egress is not None:
            for key, seen in sorted(behaviour.destinations.items()):
                if seen.last <= start:
                    continue
                protocol, address, port = parse_destination(key)
                ok, source = effective.egress_verdict(address, port, protocol)
                if not ok:
                    findings.append(Finding(max(seen.first, start), name, "egress",
                                            f"{protocol} {address}:{port}: refused by {source}", "refuse"))
        held = observe([behaviour], start, end)
        held_samples = [s for s in behaviour.samples if start < s.time <= end]
        samples += len(held_samples)
        findings.extend(_limits(suggestion, held.peaks, name, held_samples))
        findings.extend(_thresholds(policy, behaviour, held_samples))
    findings.sort(key=lambda f: (f.time or 0.0, f.container, f.what))
    return HoldoutReport(start, end, samples, tuple(findings))


def _limits(suggestion: Suggestion, peaks: dict[str, float], name: str, samples: list) -> list[Finding]:
    out = []
    consequence = {"memory": ("memory_bytes", 1.0, "reclaim or OOM kill"),
                   "cpus": ("cpu_percent", 100.0, "throttle"), "pids": ("pids", 1.0, "fork fails")}
    for limit in suggestion.limits:
        signal, scale, action = consequence[limit.resource]
        peak = peaks.get(signal)
        if peak is None or peak <= limit.value * scale:
            continue
        when = next((s.time for s in samples if (s.values.get(signal) or 0) > limit.value * scale), None)
        shown = f"{peak / MiB:.1f} MiB" if limit.resource == "memory" else f"{peak / scale:g}"
        limit_shown = f"{limit.value / MiB:.0f} MiB" if limit.resource == "memory" else f"{limit.value:g}"
        out.append(Finding(when, name, "limit", f"{limit.resource} peak {shown} above the limit {limit_shown}",
                           action))
    return out


def _thresholds(policy: Policy, behaviour: Behaviour, samples: list) -> list[Finding]:
    if not policy.thresholds or not samples:
        return []
    scratch = SignalHistory(capacity=max(1, len(samples)), max_containers=1)
    for sample in samples:
        scratch.record(behaviour.container, sample)
    report = replay(policy, scratch)
    return [Finding(e.time, e.container_name, "threshold", f"{e.rule}: {e.detail}", ",".join(e.actions))
            for e in report.events if e.kind == "fire"]
