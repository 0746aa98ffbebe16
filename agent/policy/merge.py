"""Several policies selecting one container, merged into the one EffectivePolicy that applies.

Merge rules (docs/policies.md, "When several policies select a container"):
- limits: the strictest value of each resource wins (smallest memory, cpus, pids), among
  enforcing policies; audit policies' limits are shown but never applied;
- syscall, threshold and egress rules add up: every rule of every policy applies;
- egress: each policy decides on its own (its first matching rule, else its default) and a
  connection is allowed only if every enforcing policy allows it.
Every item keeps its provenance (policy, rule, mode) for `corral policy explain`.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterable

from agent.cgroups.driver import Limits as CgroupLimits
from agent.policy.kill_order import adjustment
from agent.policy.model import EgressRule, Policy, Threshold


@dataclass(frozen=True)
class Source:
    """Where an item of an effective policy comes from."""

    policy: str
    rule: str          # "limits.memory", "syscalls[0]", a rule's name, "egress.default"
    mode: str          # enforce | audit

    def __str__(self) -> str:
        return f"{self.policy}/{self.rule}" + (" (audit)" if self.mode == "audit" else "")


@dataclass(frozen=True)
class LimitValue:
    value: float | int
    source: Source


@dataclass(frozen=True)
class SyscallEntry:
    syscall: str
    action: str        # deny | kill | alert
    signal: int
    source: Source


@dataclass(frozen=True)
class EgressPart:
    """One policy's egress decision: its default and its rules in order."""

    default: str
    rules: tuple[EgressRule, ...]
    source: Source


@dataclass(frozen=True)
class ThresholdEntry:
    threshold: Threshold
    source: Source

    @property
    def key(self) -> tuple[str, str]:
        return (self.source.policy, self.source.rule)


@dataclass(frozen=True)
class EffectivePolicy:
    """What applies to one container and why."""

    policies: tuple[Source, ...] = ()          # one per selecting policy (rule "")
    memory: LimitValue | None = None
    cpus: LimitValue | None = None
    pids: LimitValue | None = None
    audit_limits: tuple[tuple[str, LimitValue], ...] = ()
    syscalls: tuple[SyscallEntry, ...] = ()
    egress: tuple[EgressPart, ...] = ()
    thresholds: tuple[ThresholdEntry, ...] = ()
    kill_order: LimitValue | None = None       # oom_score_adj; the earliest-killed order wins

    # --- what the runtime and probes need ---------------------------------------------------

    def seccomp_denied(self) -> list[str]:
        """Syscalls to deny with EPERM at start (enforcing deny rules only)."""
        return sorted({e.syscall for e in self.syscalls if e.action == "deny" and e.source.mode == "enforce"})

    def killed_syscalls(self) -> dict[str, int]:
        """syscall -> signal the probe sends (enforcing kill rules; the first signal wins)."""
        result: dict[str, int] = {}
        for entry in self.syscalls:
            if entry.action == "kill" and entry.source.mode == "enforce":
                result.setdefault(entry.syscall, entry.signal)
        return result

    def alerted_syscalls(self) -> dict[str, list[Source]]:
        """syscall -> the rules that want an alert on each call: alert rules, and deny/kill rules
        of audit policies (which record what they would have done)."""
        result: dict[str, list[Source]] = {}
        for entry in self.syscalls:
            if entry.action == "alert" or entry.source.mode == "audit":
                result.setdefault(entry.syscall, []).append(entry.source)
        return result

    def cgroup_limits(self, base: CgroupLimits | None = None) -> CgroupLimits:
        """The container's own limits (from `corral run`) tightened by the policies'."""
        base = base or CgroupLimits()
        memory = _min(base.memory_bytes, self.memory.value if self.memory else None)
        quota = base.cpu_quota_us
        if self.cpus is not None:
            quota = _min(quota, int(self.cpus.value * base.cpu_period_us))
        pids = _min(base.pids_max, self.pids.value if self.pids else None)
        return CgroupLimits(memory_bytes=None if memory is None else int(memory), cpu_quota_us=quota,
                            cpu_period_us=base.cpu_period_us, pids_max=None if pids is None else int(pids))

    def egress_verdict(self, address: str, port: int, protocol: str) -> tuple[bool, Source | None]:
        """Whether enforcing policies allow a connection, and the rule that denied it."""
        ip = ipaddress.ip_address(address)
        for part in self.egress:
            if part.source.mode != "enforce":
                continue
            action, source = part.default, part.source
            for rule in part.rules:
                if (ip.version == rule.network().version and ip in rule.network()
                        and (not rule.ports or port in rule.ports)
                        and (rule.protocol is None or rule.protocol == protocol)):
                    action = rule.action
                    source = Source(part.source.policy, f"network.{rule.rule_id}", part.source.mode)
                    break
            if action == "deny":
                return False, source
        return True, None

    def to_dict(self) -> dict:
        def limit(value: LimitValue | None):
            return None if value is None else {"value": value.value, "from": str(value.source)}
        return {
            "policies": [{"name": s.policy, "mode": s.mode} for s in self.policies],
            "limits": {"memory": limit(self.memory), "cpus": limit(self.cpus), "pids": limit(self.pids),
                       "kill_order": limit(self.kill_order)},
            "audit_limits": [{"resource": r, "value": v.value, "from": str(v.source)} for r, v in self.audit_limits],
            "syscalls": [{"syscall": e.syscall, "action": e.action, "signal": e.signal, "from": str(e.source)}
                         for e in self.syscalls],
            "egress": [{"default": p.default, "from": str(p.source),
                        "rules": [{"rule": r.rule_id, "action": r.action, "cidr": r.cidr, "ports": list(r.ports),
                                   "protocol": r.protocol} for r in p.rules]} for p in self.egress],
            "thresholds": [{"rule": str(t.source), "signal": t.threshold.signal, "syscall": t.threshold.syscall,
                            "above": t.threshold.above, "for": t.threshold.for_seconds,
                            "actions": list(t.threshold.actions)} for t in self.thresholds],
        }


def _min(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def selecting(policies: Iterable[Policy], name: str, image: str, labels: dict | None = None) -> list[Policy]:
    """The policies whose selector matches the container, by name for a stable order."""
    return sorted((p for p in policies if p.selector.matches(name, image, labels)), key=lambda p: p.name)


def merge(policies: Iterable[Policy]) -> EffectivePolicy:
    """The effective policy of a container selected by `policies`."""
    policies = sorted(policies, key=lambda p: p.name)
    best: dict[str, LimitValue] = {}
    audit_limits: list[tuple[str, LimitValue]] = []
    syscalls: list[SyscallEntry] = []
    egress: list[EgressPart] = []
    thresholds: list[ThresholdEntry] = []
    for policy in policies:
        for resource, value in policy.limits.in_user_units().items():
            if value is None:
                continue
            candidate = LimitValue(value, Source(policy.name, f"limits.{resource}", policy.mode))
            if not policy.enforcing:
                audit_limits.append((resource, candidate))
            elif resource not in best or value < best[resource].value:
                best[resource] = candidate
        if policy.kill_order is not None:
            candidate = LimitValue(adjustment(policy.kill_order), Source(policy.name, "limits.killOrder", policy.mode))
            if not policy.enforcing:
                audit_limits.append(("killOrder", candidate))
            elif "killOrder" not in best or candidate.value > best["killOrder"].value:
                best["killOrder"] = candidate       # the host's safety first: killed earliest wins
        for rule in policy.syscalls:
            source = Source(policy.name, rule.rule_id, policy.mode)
            syscalls.extend(SyscallEntry(name, rule.action, rule.signal, source) for name in rule.names)
        network = policy.network
        if network.egress or network.egress_default != "allow":
            egress.append(EgressPart(network.egress_default, network.egress,
                                     Source(policy.name, "network.egress", policy.mode)))
        thresholds.extend(ThresholdEntry(t, Source(policy.name, t.rule_id, policy.mode)) for t in policy.thresholds)
    return EffectivePolicy(
        policies=tuple(Source(p.name, "", p.mode) for p in policies),
        memory=best.get("memory"), cpus=best.get("cpus"), pids=best.get("pids"),
        kill_order=best.get("killOrder"), audit_limits=tuple(audit_limits), syscalls=tuple(syscalls), egress=tuple(egress),
        thresholds=tuple(thresholds))
