"""Proof that a container's enforcing rules are in force: each rule checked against what the
kernel holds now, never against what the daemon remembers pushing.

KubeArmor's users found rules silently not applied; a rule here is `enforced` only when the
kernel shows it:

| rule | evidence read back |
|---|---|
| syscall `kill` | the container's slot of the probes' kill table holds the syscall and its signal |
| syscall `deny` | every process in the cgroup runs under a seccomp filter (`Seccomp: 2` in /proc) made with that deny list (the filter's record) |
| egress | the egress table has rules and every egress program is attached to the container's directory (BPF_PROG_QUERY) |
| limits | the cgroup's limit is at or below the rule's; `killOrder`: every process's oom_score_adj |
| threshold | how it is seen, not whether it is enforced (no metric, no exit status): `checked` is `kernel` when the container's rate_limits (or syscall_rate_limits) row holds its level (or its cgroup watch is armed), `sampled` with the reason otherwise (agent/policy/detection.py) |

This module is the pure judgement (`prove`); `prover.EnforcementProver` gathers the evidence,
exports `corral_policy_enforced` and raises the alert.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

from agent.cgroups.driver import Limits
from agent.policy.detection import KERNEL, SAMPLED, detect
from agent.policy.kernel_rates import PROBE_SIGNAL, kernel_checked, key_of, level_of
from agent.policy.merge import EffectivePolicy, LimitValue, ThresholdEntry
from agent.probes.interface import KernelEnforcement

SECCOMP_FILTER = 2          # /proc/PID/status "Seccomp:" mode of a process under a BPF filter


@dataclass(frozen=True)
class RuleProof:
    """One enforcing rule of one container: in force or not, and why not."""

    container_id: str
    name: str
    policy: str
    rule: str
    kind: str                   # syscall_kill | syscall_deny | egress | limits | threshold
    enforced: bool
    reason: str = ""            # why not (or why it does not apply); for a threshold, how it is seen
    applicable: bool = True     # False: the kernel cannot hold it for this container (no metric)
    checked: str = ""           # a threshold: kernel | sampled (detection.Detection.checked)

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.container_id, self.policy, self.rule, self.kind)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Evidence:
    """What was read from the kernel for one container."""

    kernel: KernelEnforcement | None        # None: the probes could not be asked (see probe_error)
    probe_error: str = ""
    seccomp: Mapping[int, int] | None = None    # pid -> seccomp mode; None: not read (observed)
    filter_denied: tuple[str, ...] | None = None    # the deny list its filter was made with
    limits: Limits | None = None
    observed: bool = False
    oom_adj: Mapping[int, int] | None = None        # pid -> oom_score_adj


def prove(container_id: str, name: str, effective: EffectivePolicy, evidence: Evidence,
          number: Callable[[str], int | None],
          watched: Callable[[ThresholdEntry], bool] = lambda entry: False) -> list[RuleProof]:
    """Every enforcing rule of `effective`, judged on `evidence` (audit rules enforce nothing);
    and each threshold rule, checked in the kernel or sampled (`watched`: its cgroup watch is
    armed)."""
    proofs: list[RuleProof] = []

    def add(policy: str, rule: str, kind: str, problem: str | None, applicable: bool = True) -> None:
        proofs.append(RuleProof(container_id, name, policy, rule, kind, problem is None and applicable,
                                problem or "", applicable))

    # One proof per rule (a rule names many syscalls): its first syscall the kernel lacks.
    rules: dict[tuple[str, str, str], list[str | None]] = {}
    for entry in effective.syscalls:
        if entry.source.mode != "enforce" or entry.action not in ("kill", "deny"):
            continue
        key = (entry.source.policy, entry.source.rule, entry.action)
        if entry.action == "kill":
            problem = _kill_problem(entry.syscall, entry.signal, number(entry.syscall), evidence)
        elif evidence.observed:
            problem = "seccomp applies only to containers Corral starts"
        else:
            problem = _seccomp_problem(entry.syscall, evidence)
        rules.setdefault(key, []).append(problem)
    for (policy, rule, action), problems in rules.items():
        first = next((p for p in problems if p), None)
        if action == "kill":
            add(policy, rule, "syscall_kill", first)
        else:
            add(policy, rule, "syscall_deny", first, applicable=not evidence.observed)
    for part in effective.egress:
        if part.source.mode == "enforce":
            add(part.source.policy, part.source.rule or "network.egress", "egress", _egress_problem(evidence))
    for resource, value in (("memory", effective.memory), ("cpus", effective.cpus), ("pids", effective.pids)):
        if value is not None and value.source.mode == "enforce":
            add(value.source.policy, value.source.rule or f"limits.{resource}", "limits",
                _limit_problem(resource, value, evidence.limits))
    order = effective.kill_order
    if order is not None and order.source.mode == "enforce":
        add(order.source.policy, order.source.rule, "limits", _kill_order_problem(int(order.value), evidence))
    proofs.extend(_threshold_detection(container_id, name, effective, evidence, watched, number))
    return proofs


def _threshold_detection(container_id: str, name: str, effective: EffectivePolicy, evidence: Evidence,
                         watched: Callable[[ThresholdEntry], bool],
                         number: Callable[[str], int | None]) -> list[RuleProof]:
    """Each threshold of an enforcing policy: in the kernel (its rate level read back from the
    container's rate_limits or syscall_rate_limits row, or its cgroup watch armed) or sampled, and why."""
    levels = evidence.kernel.rate_levels if evidence.kernel is not None else {}
    found = []
    for entry in effective.thresholds:
        if entry.source.mode != "enforce":
            continue
        signal = PROBE_SIGNAL.get(entry.threshold.signal)
        key = key_of(entry, number) if kernel_checked(entry) else None
        held = key is not None and level_of(entry) in levels.get(key, ())
        seen = detect(entry, effective, rate_level_held=held, watched=watched(entry), number=number)
        detail = seen.detail
        if signal is not None and not held and evidence.kernel is None and seen.checked == SAMPLED:
            detail += f" ({evidence.probe_error or 'the probes are not loaded'})"
        found.append(RuleProof(container_id, name, entry.source.policy, entry.source.rule, "threshold",
                               seen.checked == KERNEL, detail, applicable=False, checked=seen.checked))
    return found


def _kill_problem(syscall: str, signal: int, nr: int | None, evidence: Evidence) -> str | None:
    if nr is None:
        return f"syscall {syscall} has no number on this host"
    if evidence.kernel is None:
        return f"the probes cannot be read: {evidence.probe_error or 'not loaded'}"
    held = evidence.kernel.kill.get(nr)
    if held is None:
        return f"{syscall} is not in the kernel's kill table for this container"
    if held != signal:
        return f"the kernel's kill table sends signal {held} on {syscall}, the rule wants {signal}"
    return None


def _seccomp_problem(syscall: str, evidence: Evidence) -> str | None:
    if evidence.filter_denied is None or syscall not in evidence.filter_denied:
        return "its seccomp filter was made without this rule (it applies from the container's next start)"
    unfiltered = sorted(pid for pid, mode in (evidence.seccomp or {}).items() if mode != SECCOMP_FILTER)
    if unfiltered:
        return f"process {unfiltered[0]} runs without a seccomp filter" + \
            (f" (and {len(unfiltered) - 1} more)" if len(unfiltered) > 1 else "")
    return None


def _egress_problem(evidence: Evidence) -> str | None:
    if evidence.kernel is None:
        return f"the probes cannot be read: {evidence.probe_error or 'not loaded'}"
    if not evidence.kernel.egress_rules:
        return "the kernel's egress table for this container is empty"
    if evidence.kernel.egress_missing:
        return "egress programs not attached to its cgroup: " + ", ".join(evidence.kernel.egress_missing)
    return None


def _limit_problem(resource: str, value: LimitValue, limits: Limits | None) -> str | None:
    if limits is None:
        return "its cgroup's limits cannot be read"
    if resource == "memory":
        held, wanted = limits.memory_bytes, int(value.value)
    elif resource == "pids":
        held, wanted = limits.pids_max, int(value.value)
    else:
        held, wanted = limits.cpu_quota_us, int(float(value.value) * limits.cpu_period_us)
    if held is None or held > wanted:
        shown = "unlimited" if held is None else str(held)
        return f"the cgroup's {resource} limit is {shown}, the rule wants at most {wanted}"
    return None


def _kill_order_problem(wanted: int, evidence: Evidence) -> str | None:
    if evidence.oom_adj is None:
        return "its processes' oom_score_adj cannot be read"
    wrong = sorted(pid for pid, adj in evidence.oom_adj.items() if adj != wanted)
    if wrong:
        return f"process {wrong[0]} has oom_score_adj {evidence.oom_adj[wrong[0]]}, the kill order wants {wanted}"
    return None


def seccomp_modes(pids: list[int], proc: str = "/proc") -> dict[int, int]:
    """pid -> the Seccomp mode /proc reports (processes gone meanwhile are left out)."""
    modes: dict[int, int] = {}
    for pid in pids:
        try:
            with open(f"{proc}/{pid}/status", "rb") as handle:
                for line in handle:
                    if line.startswith(b"Seccomp:"):
                        modes[pid] = int(line.split()[1])
                        break
        except (OSError, ValueError, IndexError):
            continue
    return modes
