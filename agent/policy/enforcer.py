"""`Enforcer`: what the policies do to containers. Threshold actions (agent.policy.actions),
live limits that follow a reload, and the rules enforced in BPF (probes/enforce.c): syscall
`kill` rules and network egress rules.

The BPF rules of a container are pushed to the probes (`set_syscall_actions`, `set_egress`)
before its first instruction (`on_container`, a ContainerBus subscriber, on `placed`: the
runtime publishes it while the init waits to exec) and again whenever a tick finds that they
changed (`sync`, after reloads). The probes report each kill and each refused (or, in audit
mode, would-be refused) connection; the probe event pump hands them to `record_enforcement`,
which records the violation like any other, at most one event per container and rule each
REPORT_INTERVAL.
"""
from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from agent.catalog.bus import (
    BusEvent,
    ContainerPlaced,
    ContainerRemoved,
    ContainerStopped,
)
from agent.catalog.entry import CatalogEntry
from agent.cgroups.driver import CgroupDriver, CgroupPaths, Limits
from agent.errors import CorralError, PolicyError
from agent.events import Event, EventLog
from agent.policy import kill_order
from agent.policy.actions import ActionExecutor, ActionResult
from agent.policy.engine import Action, Evaluation, Violation
from agent.policy.merge import EffectivePolicy, Source
from agent.policy.metrics import PolicyMetrics
from agent.probes.egress import EgressPolicy, EgressRuleSpec
from agent.probes.events import EgressEvent, KillEvent
from agent.probes.interface import ProbeControl

log = logging.getLogger("corral.policy")

REPORT_INTERVAL = 1.0       # seconds: at most one event per container and BPF-enforced rule


@dataclass(frozen=True)
class _Enforced:
    """The BPF rules last pushed to the probes for one container (compared each tick)."""

    container_id: str
    kill: tuple[tuple[int, int], ...]           # (syscall number, signal), sorted
    egress: tuple[EgressPolicy, ...]
    kill_sources: tuple[tuple[int, Source], ...] = ()   # syscall number -> the rule it comes from
    egress_sources: tuple[Source, ...] = ()     # one per EgressPolicy, same order

    def rules(self) -> tuple:
        return (self.kill, self.egress)



class Enforcer:
    """Acts on containers for the policies; shared by the tick thread, API threads (container
    start, unfreeze) and the probe event pump, each part under its own lock."""

    def __init__(self, *, effective: Callable[[str, str, Mapping[str, str]], EffectivePolicy],
                 cgroups: CgroupDriver, events: EventLog, metrics: PolicyMetrics, executor: ActionExecutor,
                 probes: ProbeControl | None = None,
                 syscall_name: Callable[[int], str | None] | None = None,
                 syscall_number: Callable[[str], int | None] | None = None, proc: str = "/proc") -> None:
        self._effective = effective
        self.cgroups = cgroups
        self.events = events
        self.metrics = metrics
        self.executor = executor
        self.probes = probes
        # The probes' table reads a header per call: keep the names once asked for.
        self._syscall_name: Callable[[int], str | None] = \
            functools.lru_cache(maxsize=1024)(syscall_name) if syscall_name else str
        self._numbers = syscall_number
        self._actions_lock = threading.RLock()       # the executor keeps per-container state
        # BPF enforcement: the API thread (container start), the tick and the event pump share it.
        self._enforce_lock = threading.RLock()
        self._enforced: dict[int, _Enforced] = {}        # cgroup id -> rules pushed
        self._enforce_errors: dict[int, str] = {}        # cgroup id -> last push failure
        self._reported: dict[tuple, tuple[float, int]] = {}   # (id, policy, rule) -> (last event, held back)
        self._kill_orders: dict[str, int] = {}           # container id -> oom_score_adj written
        self.is_canary: Callable[[int], bool] = lambda pid: False   # set by the daemon with canaries
        self._proc = proc

    def syscall_label(self, nr: int) -> str:
        """A syscall number's name, or the number as text when the table does not know it."""
        return self._syscall_name(nr) or str(nr)

    # --- threshold actions and live limits --------------------------------------------------------

    def run_actions(self, evaluation: Evaluation, paths_of: Callable[[str], CgroupPaths | None]) -> list[ActionResult]:
        with self._actions_lock:
            results = self.executor.run(evaluation, paths_of)
        for result in results:
            if not result.ok:
                log.warning("policy action %s failed: %s", result.action, result.reason)
        self.metrics.count(evaluation, results)
        return results

    def forget(self, container_id: str) -> None:
        with self._actions_lock:
            self.executor.forget(container_id)
            self._kill_orders.pop(container_id, None)

    def apply_kill_order(self, container: CatalogEntry, effective: EffectivePolicy) -> None:
        """Every process's oom_score_adj from the policies' killOrder (agent/policy/kill_order.py);
        back to 0 when a reload drops it."""
        wanted = int(effective.kill_order.value) if effective.kill_order is not None else None
        with self._actions_lock:
            had = self._kill_orders.get(container.id)
            if wanted is None and had is None:
                return
            try:
                pids = self.cgroups.procs(container.cgroup)
            except (CorralError, OSError):
                return          # exited meanwhile
            failed = kill_order.apply(pids, 0 if wanted is None else wanted, self._proc)
            if wanted is None:
                self._kill_orders.pop(container.id, None)
            else:
                self._kill_orders[container.id] = wanted
        if failed:
            log.warning("kill order of container %s: oom_score_adj not written for pids %s", container.name, failed)

    def apply_live_limits(self, running: list[CatalogEntry]) -> None:
        """Limits of running containers follow the policies at once (the strictest wins)."""
        for container in running:
            effective = self._effective(container.name, container.image, container.labels)
            self.apply_kill_order(container, effective)
            paths = container.cgroup
            try:
                before = self.cgroups.read_limits(paths)
            except (CorralError, OSError):
                continue        # exited meanwhile
            if container.requested is None:
                if effective.memory is None and effective.cpus is None and effective.pids is None:
                    continue    # a foreign container's own limits are never touched without cause
                base = before   # never loosen what its own runtime set
            else:
                base = container.requested
            with self._actions_lock:
                result = self.executor.apply_limits(container.id, paths, effective.cgroup_limits(base))
            self.metrics.actions.labels("limits", result.result).inc()
            if not result.ok:
                log.warning("policy limits for container %s: %s", container.name, result)
                continue
            after = self.cgroups.read_limits(paths)
            if after != before:
                log.info("policy limits for container %s: %s", container.name, _limits_text(after))
                self.events.emit(Event("policy", "limits", container.id, container.name,
                                       attributes=limits_dict(after)))

    # --- BPF enforcement: syscall kill rules and egress rules -----------------------------------

    def syscall_number(self, name: str) -> int | None:
        if self._numbers is None:
            from agent.syscall_table import load_syscall_table
            self._numbers = load_syscall_table().number
        return self._numbers(name)

    def _wanted(self, container_id: str, effective: EffectivePolicy) -> _Enforced:
        """The BPF rules of an effective policy: enforcing kill rules (audit ones only alert,
        from the counters), and every egress part (audit ones are reported, never refuse)."""
        kill: dict[int, int] = {}
        sources: dict[int, Source] = {}
        for entry in effective.syscalls:
            if entry.action != "kill" or entry.source.mode != "enforce":
                continue
            nr = self.syscall_number(entry.syscall)
            if nr is None:
                log.warning("policy %s: syscall %s has no number on this host; not killed",
                            entry.source, entry.syscall)
                continue
            kill.setdefault(nr, entry.signal)       # the first signal wins, as killed_syscalls()
            sources.setdefault(nr, entry.source)
        return _Enforced(container_id, tuple(sorted(kill.items())), egress_policies(effective),
                         tuple(sorted(sources.items())),
                         tuple(part.source for part in effective.egress))

    def _push(self, container_id: str, name: str, cgroup_id: int, unified_dir: str,
              wanted: _Enforced) -> None:
        """Give the probes the container's rules when they differ from what they hold."""
        with self._enforce_lock:
            previous = self._enforced.get(cgroup_id)
            if previous is not None and previous.rules() == wanted.rules():
                return
            if self.probes is None:
                return
            self.probes.set_syscall_actions(cgroup_id, dict(wanted.kill))
            self.probes.set_egress(cgroup_id, unified_dir, wanted.egress)
            self._enforced[cgroup_id] = wanted
            self._enforce_errors.pop(cgroup_id, None)
        if previous is None and not wanted.kill and not wanted.egress:
            return                  # nothing to enforce, and nothing was: not worth an event
        self.metrics.actions.labels("enforce", "ok").inc()
        self.events.emit(Event("policy", "enforce", container_id, name, attributes={
            "kill": [self._syscall_name(nr) or str(nr) for nr, _ in wanted.kill],
            "egress": [p.name + (" (audit)" if p.audit else "") for p in wanted.egress]}))

    def on_container(self, event: BusEvent) -> None:
        """The ContainerBus subscriber: rules pushed at `placed`, forgotten at `removed` (or an
        aborted start)."""
        entry = event.entry
        if isinstance(event, ContainerPlaced):
            self.enforce_at_start(entry)
        elif isinstance(event, ContainerRemoved) or (isinstance(event, ContainerStopped) and event.aborted):
            self.forget_enforcement(entry.cgroup_id)

    def enforce_at_start(self, container: CatalogEntry) -> None:
        """A container's init is in its cgroup and the probes watch it: push its rules before it
        execs. A container of Corral's whose enforcing kill or egress rules cannot be pushed does
        not start (a gap in a deny rule is worse than a failed start); an observed one (already
        running) is retried each tick like any rule that failed to apply."""
        effective = self._effective(container.name, container.image, container.labels)
        self.apply_kill_order(container, effective)     # on the waiting init: its children inherit it
        if self.probes is None or not container.cgroup_id:
            return
        wanted = self._wanted(container.id, effective)
        try:
            self._push(container.id, container.name, container.cgroup_id, container.cgroup.unified, wanted)
        except CorralError as error:
            self.metrics.actions.labels("enforce", "failed").inc()
            if container.observed:
                log.warning("policy rules of observed container %s not enforced yet: %s", container.name, error)
            elif wanted.kill or any(not p.audit for p in wanted.egress):
                raise PolicyError(f"container {container.name}: cannot enforce its policies' syscall kill "
                                  f"or egress rules: {error}",
                                  hint="`corral info` shows the probes; `corral policy explain` the rules") from None
            log.warning("policy audit egress rules of container %s not set: %s", container.name, error)

    def repair(self, container: CatalogEntry) -> bool:
        """Push the container's BPF rules again whatever the daemon believes it pushed (the
        prover found the kernel without them); limits are written again too. True when the
        push went through."""
        with self._enforce_lock:
            self._enforced.pop(container.cgroup_id, None)
        try:
            self.enforce_at_start(container)
        except CorralError as error:
            log.error("policy rules of container %s could not be put back: %s", container.name, error)
            return False
        self.apply_live_limits([container])
        return True

    def forget_enforcement(self, cgroup_id: int) -> None:
        """The probes forgot the container (removed): so does the service."""
        with self._enforce_lock:
            gone = self._enforced.pop(cgroup_id, None)
            self._enforce_errors.pop(cgroup_id, None)
            if gone is not None:
                for key in [k for k in self._reported if k[0] == gone.container_id]:
                    self._reported.pop(key, None)

    def sync(self, containers: list[CatalogEntry], effective: dict[str, EffectivePolicy]) -> None:
        """Each tick: push the rules of running containers that changed (reloads), and the
        rules of containers adopted after a daemon restart (nothing pushed yet)."""
        if self.probes is None:
            return
        for container in containers:
            if not container.cgroup_id:
                continue        # an observed container without a v2 directory: no BPF reaches it
            wanted = self._wanted(container.id, effective[container.id])
            unified = container.cgroup.unified
            try:
                self._push(container.id, container.name, container.cgroup_id, unified, wanted)
            except CorralError as error:
                message = str(error)
                with self._enforce_lock:
                    known = self._enforce_errors.get(container.cgroup_id) == message
                    self._enforce_errors[container.cgroup_id] = message
                if not known:       # once per failure, not once per tick
                    log.error("policy rules of container %s not enforced: %s", container.name, message)
                    self.metrics.actions.labels("enforce", "failed").inc()
                    self.events.emit(Event("policy", "enforce_error", container.id, container.name,
                                           attributes={"error": message}))

    def record_enforcement(self, container: CatalogEntry, event: KillEvent | EgressEvent) -> None:
        """A probe report (the probe event pump's EnforcementReports) as a violation; a
        canary's own (agent/policy/canary.py, known by pid) is not one."""
        if self.is_canary(event.pid):
            return
        if isinstance(event, KillEvent):
            self._record_kill(container.id, container.name, event)
        elif isinstance(event, EgressEvent):
            self._record_egress(container.id, container.name, event)

    def _record_kill(self, container_id: str, name: str, event: KillEvent) -> None:
        with self._enforce_lock:
            enforced = self._enforced.get(event.cgroup_id)
        source = dict(enforced.kill_sources).get(event.nr) if enforced else None
        policy, rule = (source.policy, source.rule) if source else ("unknown", "unknown")
        syscall = self._syscall_name(event.nr) or str(event.nr)
        violation = Violation(container_id, name, policy, rule, "syscall", syscall, 1.0, 0.0, event.time,
                              event.time, "enforce", ("kill",))
        self.metrics.violations.labels(policy, rule, "kill", name).inc()
        self.metrics.actions.labels("kill_process", "ok" if event.result == 0 else "failed").inc()
        self._report(violation, {"pid": event.pid, "comm": event.comm, "signal": event.signal,
                                 "result": "ok" if event.result == 0 else f"failed ({os.strerror(-event.result)})"})

    def _record_egress(self, container_id: str, name: str, event: EgressEvent) -> None:
        policy = event.policy or "unknown"
        rule = egress_rule_name(event.rule)
        suppressed: tuple[str, ...]
        if event.blocked:
            mode, actions, suppressed = "enforce", ("deny",), ()
        else:
            mode, actions, suppressed = "audit", ("alert",), ("deny",)
        violation = Violation(container_id, name, policy, rule, "egress", None, 1.0, 0.0, event.time,
                              event.time, mode, actions, suppressed)
        self.metrics.violations.labels(policy, rule, actions[0], name).inc()
        if event.blocked:
            self.metrics.actions.labels("deny_connect", "ok").inc()
        host = f"[{event.address}]" if ":" in event.address else event.address
        reported = self._report(violation, {"destination": f"{host}:{event.port}", "protocol": event.protocol,
                                            "pid": event.pid, "comm": event.comm})
        if reported and not event.blocked:
            with self._actions_lock:
                result = self.executor.execute(Action("alert", container_id, name, policy, rule, violation), None)
            self.metrics.actions.labels("alert", result.result).inc()

    def _report(self, violation: Violation, extra: dict) -> bool:
        """The violation as an event, at most one per container and rule each REPORT_INTERVAL
        (a connect loop must not flood the log); `value` counts the occurrences since the last
        event. The metric counts every occurrence. False when held back."""
        key = (violation.container_id, violation.policy, violation.rule)
        with self._enforce_lock:
            last, held = self._reported.get(key, (None, 0))
            if last is not None and 0 <= violation.time - last < REPORT_INTERVAL:
                self._reported[key] = (last, held + 1)
                return False
            self._reported[key] = (violation.time, 0)
        attributes = dict(violation.to_dict(), value=float(held + 1), **extra)
        self.events.emit(Event("policy", "violation", violation.container_id, violation.container_name,
                               time=violation.time, attributes=attributes))
        return True

    def bpf_view(self, container: CatalogEntry, effective: EffectivePolicy) -> dict:
        """Whether the container's kill and egress rules are in force in the probes now."""
        available = self.probes.enforcement() if self.probes is not None else {}
        with self._enforce_lock:
            pushed = self._enforced.get(container.cgroup_id)
            error = self._enforce_errors.get(container.cgroup_id)
        wanted = self._wanted(container.id, effective)

        def state(kind: str, want, have) -> str:
            if not want:
                return "none"
            if not available.get(kind):
                return "not enforced: the probes cannot (see `corral info` and the daemon log)"
            if container.state != "running":
                return "enforced while the container runs"
            if error:
                return f"not enforced: {error}"
            return "enforced" if have == want else "being applied (within one evaluation interval)"

        return {
            "syscall_kill": {"syscalls": sorted(effective.killed_syscalls()),
                             "state": state("syscall_kill", wanted.kill, pushed.kill if pushed else None)},
            "egress": {"policies": [p.name + (" (audit)" if p.audit else "") for p in wanted.egress],
                       "state": state("egress", wanted.egress, pushed.egress if pushed else None)},
        }

    # --- the API --------------------------------------------------------------------------------


def egress_policies(effective: EffectivePolicy) -> tuple[EgressPolicy, ...]:
    """The egress parts of an effective policy as the probes take them, in the same order."""
    return tuple(
        EgressPolicy(part.source.policy, part.default,
                     tuple(EgressRuleSpec(r.action, r.cidr, tuple(r.ports), r.protocol, r.rule_id)
                           for r in part.rules),
                     audit=part.source.mode != "enforce")
        for part in effective.egress)


def egress_rule_name(rule: str) -> str:
    """A probe-reported rule name as EffectivePolicy.egress_verdict names it ("" is the default)."""
    return f"network.{rule}" if rule else "network.egress"




def limits_dict(limits: Limits) -> dict:
    return {"memory_bytes": limits.memory_bytes, "cpu_quota_us": limits.cpu_quota_us,
            "cpu_period_us": limits.cpu_period_us, "pids_max": limits.pids_max}


def _limits_text(limits: Limits) -> str:
    return ", ".join(f"{k}={'unlimited' if v is None else v}" for k, v in limits_dict(limits).items())

