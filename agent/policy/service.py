"""The policies in the running daemon: reload the folder, evaluate thresholds on snapshots,
act, count, and answer the API (`policy ls`, `explain`, `replay`, `unfreeze`).

`PolicyService` composes the library (agent/policy/*); it is the only part of the policy
package with a thread. Each tick (1 s by default) it reloads the folder, applies the limits of
changed policies live to running containers, takes one snapshot of every running container,
turns it into signals, records them for replay, advances the threshold engine and executes its
actions. `evaluate()` and `reload()` are public so tests can drive a tick by hand.

Syscall `alert` rules (and the deny/kill rules of audit policies, which only alert) are
evaluated here from the probes' per-cgroup syscall counters: one violation per rule and
syscall in each interval where the count went up, with the number of calls. `deny` rules are
seccomp filters the runtime installs at start (`policy_for`).

Syscall `kill` rules and network egress rules are enforced in BPF (probes/enforce.c): the
service pushes each container's rules to the probes (`ProbeSet.set_syscall_actions`,
`set_egress`) before the container's first instruction (`EnforcementHook.watch`, which the
runtime calls while placing the init, before it execs) and again whenever a tick finds that
they changed (reloads). The probes report each kill and each refused (or, in audit mode,
would-be refused) connection; the daemon's probe event pump hands them to
`record_enforcement`, which records the violation like any other.
"""
from __future__ import annotations

import functools
import logging
import os
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from agent.cgroups.driver import CgroupDriver, CgroupPaths, Limits
from agent.errors import CorralError, PolicyError
from agent.events import Event, EventLog
from agent.metrics.model import WatchedContainer
from agent.metrics.snapshot import ContainerSnapshot, take_snapshots
from agent.policy.actions import ActionExecutor, ActionResult
from agent.policy.engine import Action, ContainerRef, Engine, Evaluation, Resolution, Violation
from agent.policy.history import SignalHistory
from agent.policy.library import PolicyLibrary, ReloadReport
from agent.policy.merge import EffectivePolicy, Source, merge, selecting
from agent.policy.signals import compute_signals
from agent.probes.egress import EgressPolicy, EgressRuleSpec

log = logging.getLogger("corral.policy")

GIT_TIMEOUT = 2.0
RECENT_EVENTS = 20          # policy events of a container shown by `explain`
REPORT_INTERVAL = 1.0       # seconds: at most one event per container and BPF-enforced rule
SECCOMP_FILE = "seccomp.bpf"   # in the container's state directory, written by the runtime


class PolicyMetrics:
    """The policy metrics, as prometheus_client metrics on the daemon's registry."""

    def __init__(self, registry) -> None:
        from prometheus_client import Counter, Gauge

        self.violations = Counter("corral_policy_violations_total",
                                  "Policy rule violations, by action taken",
                                  ["policy", "rule", "action", "name"], registry=registry)
        self.actions = Counter("corral_policy_actions_total", "Policy actions executed, by result",
                               ["action", "result"], registry=registry)
        self.loaded = Gauge("corral_policy_loaded", "1 for each policy in force", ["policy", "mode"],
                            registry=registry)
        self.load_errors = Counter("corral_policy_load_errors_total",
                                   "Policy files that failed to load (previous version kept)",
                                   registry=registry)

    def count(self, evaluation: Evaluation, results: list[ActionResult]) -> None:
        for violation in evaluation.violations:
            for action in violation.actions:
                self.violations.labels(violation.policy, violation.rule, action, violation.container_name).inc()
        for result in results:
            self.actions.labels(result.action, result.result).inc()

    def set_loaded(self, policies) -> None:
        self.loaded.clear()
        for policy in policies:
            self.loaded.labels(policy.name, policy.mode).set(1)


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


class EnforcementHook:
    """Given to the runtime as one more container watcher (after the probes), and to the
    probe event pump as its callback: forwards to the policy service once it exists. The
    daemon builds the runtime and the pump before the service, hence `service_of`."""

    def __init__(self, service_of: Callable[[], "PolicyService | None"]) -> None:
        self._service_of = service_of

    def watch(self, cgroup_id: int, unified_dir: str) -> None:
        service = self._service_of()
        if service is not None:
            service.enforce_at_start(cgroup_id, unified_dir)

    def unwatch(self, cgroup_id: int, unified_dir: str | None) -> None:
        service = self._service_of()
        if service is not None:
            service.forget_enforcement(cgroup_id)

    def on_probe_event(self, container_id: str, name: str, event: Any) -> None:
        service = self._service_of()
        if service is not None:
            service.record_enforcement(container_id, name, event)


@dataclass(frozen=True)
class _Tracked:
    """What the service remembers of a container between ticks."""

    ref: ContainerRef
    paths: CgroupPaths
    snapshot: ContainerSnapshot


class PolicyService:
    """Policies in force in the daemon; `start()` runs the tick thread, `stop()` ends it."""

    def __init__(self, library: PolicyLibrary, *, runtime, cgroups: CgroupDriver, events: EventLog,
                 probes: Any | None = None, engine: Engine | None = None,
                 history: SignalHistory | None = None, executor: ActionExecutor | None = None,
                 alert_sink=None, registry=None, metrics: PolicyMetrics | None = None, interval: float = 1.0,
                 syscall_name: Callable[[int], str | None] | None = None,
                 observed: Callable[[], list] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        if interval <= 0:
            raise ValueError(f"policy interval {interval!r}: must be above 0 seconds")
        self.library = library
        self.runtime = runtime
        # Containers Corral did not start (agent.discovery.observed): evaluated like its own,
        # acted on through `cgroups` (the daemon passes a driver that reaches their cgroups).
        self._observed = observed
        self._not_applicable: set[tuple[str, str]] = set()   # (container id, policy) reported
        self.cgroups = cgroups
        self.events = events
        self.probes = probes
        self.engine = engine or Engine()
        self.history = history or SignalHistory(capacity=max(1, int(3600 / interval)))
        # alert_sink: the notification hook (agent.policy.actions.AlertSink) of the alerting issue.
        self.executor = executor or ActionExecutor(cgroups, events=events, alert_sink=alert_sink)
        if metrics is None:
            from prometheus_client import CollectorRegistry
            metrics = PolicyMetrics(registry if registry is not None else CollectorRegistry())
        self.metrics = metrics
        self.interval = interval
        # The probes' table reads a header per call: keep the names once asked for.
        self._syscall_name = functools.lru_cache(maxsize=1024)(syscall_name) if syscall_name else str
        self._clock = clock
        self._lock = threading.RLock()          # the tick thread and API threads share engine state
        self._tracked: dict[str, _Tracked] = {}
        self._commits: dict[str, tuple[str | None, bool]] = {}   # file -> (commit, modified)
        self._git = None                        # whether the folder is a git checkout; asked once
        self._known: Callable[[str], bool] | None = None   # syscall table, for replayed files
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # BPF enforcement: the API thread (container start), the tick and the event pump share it.
        self._enforce_lock = threading.RLock()
        self._enforced: dict[int, _Enforced] = {}        # cgroup id -> rules pushed
        self._enforce_errors: dict[int, str] = {}        # cgroup id -> last push failure
        self._reported: dict[tuple, tuple[float, int]] = {}   # (id, policy, rule) -> (last event, held back)
        self._numbers: Callable[[str], int | None] | None = None

    # --- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Load the folder now (before any container starts), then tick in a thread."""
        self.reload()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="corral-policy", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        """Reload and evaluate every interval; in between, evaluate once more at the moment a
        pending rule's `for:` runs out, so the action is not rounded up to the next tick."""
        next_tick = time.monotonic() + self.interval
        while True:
            wait = next_tick - time.monotonic()
            with self._lock:
                due = self.engine.next_due()
            if due is not None:
                wait = min(wait, due - self._clock() + 0.001)
            if self._stop.wait(max(0.0, wait)):
                return
            ticked = time.monotonic() >= next_tick
            try:
                if ticked:
                    self.reload()
                self.evaluate()
            except Exception:  # one bad tick must not end enforcement
                log.exception("policy evaluation failed")
            if ticked:
                next_tick = max(next_tick + self.interval, time.monotonic())

    # --- what the runtime asks at container start -----------------------------------------------

    def policy_for(self, name: str, image: str, labels: dict | None = None) -> EffectivePolicy:
        return merge(selecting(self.library.policies(), name, image, labels or {}))

    # --- reload -------------------------------------------------------------------------------

    def reload(self) -> ReloadReport:
        report = self.library.reload()
        for file, problems in report.failed.items():
            for problem in problems:
                log.error("policy %s (the previous version of the file stays in force)", problem)
            self.events.emit(Event("policy", "load_error", name=file,
                                   attributes={"problems": [str(p) for p in problems],
                                               "kept": "previous version" if self._was_loaded(file) else "none"}))
            self.metrics.load_errors.inc()
        for file in report.loaded:
            self._commits[file] = self._commit_of(file)
            log.info("policy file %s loaded", file)
            self.events.emit(Event("policy", "reload", name=file,
                                   attributes={"policies": [p.name for p in self.library.policies()
                                                            if p.source == file],
                                               "commit": self._commits[file][0] or ""}))
        for file in report.removed:
            self._commits.pop(file, None)
            log.info("policy file %s removed", file)
            self.events.emit(Event("policy", "remove", name=file))
        if report.changed:
            self.metrics.set_loaded(self.library.policies())
            self.apply_live_limits()
        return report

    def _was_loaded(self, file: str) -> bool:
        return any(p.source == file for p in self.library.policies())

    def apply_live_limits(self) -> None:
        """Limits of running containers follow the policies at once (the strictest wins)."""
        for container in self._running():
            effective = self.policy_for(container.name, container.spec.image, container.spec.labels)
            paths = CgroupPaths.from_dict(container.cgroup)
            try:
                before = self.cgroups.read_limits(paths)
            except (CorralError, OSError):
                continue        # exited meanwhile
            if container.observed:
                if effective.memory is None and effective.cpus is None and effective.pids is None:
                    continue    # a foreign container's own limits are never touched without cause
                base = before   # never loosen what its own runtime set
            else:
                base = Limits.from_cpus(container.spec.memory, container.spec.cpus, container.spec.pids_limit)
            with self._lock:
                result = self.executor.apply_limits(container.id, paths, effective.cgroup_limits(base))
            self.metrics.actions.labels("limits", result.result).inc()
            if not result.ok:
                log.warning("policy limits for container %s: %s", container.name, result)
                continue
            after = self.cgroups.read_limits(paths)
            if after != before:
                log.info("policy limits for container %s: %s", container.name, _limits_text(after))
                self.events.emit(Event("policy", "limits", container.id, container.name,
                                       attributes=_limits_dict(after)))

    # --- evaluation -----------------------------------------------------------------------------

    def evaluate(self) -> list[Evaluation]:
        """One tick: snapshot every running container, advance its rules, act."""
        policies = self.library.policies()
        containers = self._running()
        effective = {c.id: merge(selecting(policies, c.name, c.spec.image, c.spec.labels)) for c in containers}
        watched = [WatchedContainer(id=c.id, name=c.name, image=c.spec.image,
                                    cgroup=CgroupPaths.from_dict(c.cgroup), cgroup_id=c.cgroup_id,
                                    started_at=c.started_at or c.created_at, labels=dict(c.spec.labels))
                   for c in containers]
        with_syscalls = any(t.threshold.syscall for e in effective.values() for t in e.thresholds) \
            or any(e.alerted_syscalls() for e in effective.values())
        snapshots = take_snapshots(watched, self.cgroups, self.probes, self._syscall_name,
                                   with_syscalls=with_syscalls, clock=self._clock)
        by_id = {w.id: w for w in watched}
        self._sync_enforcement(containers, effective)
        evaluations = []
        with self._lock:
            for snapshot in snapshots:
                container = by_id[snapshot.id]
                ref = ContainerRef(container.id, container.name, container.image, dict(container.labels))
                previous = self._tracked.get(container.id)
                sample = compute_signals(previous.snapshot if previous else None, snapshot)
                self._tracked[container.id] = _Tracked(ref, container.cgroup, snapshot)
                self.history.record(ref, sample)
                evaluation = self.engine.evaluate(ref, effective[container.id], sample)
                self._syscall_alerts(ref, effective[container.id], previous, snapshot, evaluation)
                self._execute(evaluation)
                evaluations.append(evaluation)
            for gone in set(self._tracked) - set(by_id):
                evaluations.append(self._gone(self._tracked.pop(gone)))
        return evaluations

    def _running(self) -> list:
        """Running containers Corral started, and the observed ones (as _Observed views)."""
        own = [c for c in self.runtime.list() if c.cgroup and c.cgroup_id]
        if self._observed is None:
            return own
        foreign = [_Observed.of(o) for o in self._observed()]
        self._report_not_applicable(foreign)
        return own + foreign

    def _report_not_applicable(self, foreign: list["_Observed"]) -> None:
        """Seccomp is installed by the launcher before exec, so a deny rule cannot reach a
        container Corral did not start: said once per container and policy, never skipped
        silently."""
        for container in foreign:
            effective = self.policy_for(container.name, container.spec.image, container.spec.labels)
            for entry in effective.syscalls:
                if entry.action != "deny" or entry.source.mode != "enforce":
                    continue
                key = (container.id, entry.source.policy)
                if key in self._not_applicable:
                    continue
                self._not_applicable.add(key)
                self.events.emit(Event("policy", "not_applicable", container.id, container.name,
                                       attributes={"policy": entry.source.policy, "rule": entry.source.rule,
                                                   "action": "deny",
                                                   "reason": "seccomp applies only to containers "
                                                             "Corral starts"}))

    def _execute(self, evaluation: Evaluation, paths: CgroupPaths | None = None) -> list[ActionResult]:
        def paths_of(container_id: str) -> CgroupPaths | None:
            if paths is not None:
                return paths
            tracked = self._tracked.get(container_id)
            return tracked.paths if tracked else None
        results = self.executor.run(evaluation, paths_of)
        for result in results:
            if not result.ok:
                log.warning("policy action %s failed: %s", result.action, result.reason)
        self.metrics.count(evaluation, results)
        return results

    def _syscall_alerts(self, ref: ContainerRef, effective: EffectivePolicy, previous: _Tracked | None,
                        snapshot: ContainerSnapshot, evaluation: Evaluation) -> None:
        """Alert rules (and audit deny/kill rules) on syscalls, from the probes' counters."""
        alerted = effective.alerted_syscalls()
        if not alerted:
            return
        before = previous.snapshot.by_syscall if previous else {}
        since = previous.snapshot.time if previous else self._started_at(ref.id, snapshot.time)
        for syscall, sources in sorted(alerted.items()):
            calls = snapshot.by_syscall.get(syscall, (0, 0))[0] - before.get(syscall, (0, 0))[0]
            if calls <= 0:
                continue
            for source in sources:
                entry = next(e for e in effective.syscalls if e.syscall == syscall and e.source == source)
                violation = Violation(ref.id, ref.name, source.policy, source.rule, "syscall", syscall,
                                      float(calls), 0.0, since, snapshot.time, source.mode, ("alert",),
                                      () if entry.action == "alert" else (entry.action,))
                evaluation.violations.append(violation)
                evaluation.actions.append(Action("alert", ref.id, ref.name, source.policy, source.rule, violation))

    def _started_at(self, container_id: str, default: float) -> float:
        try:
            container = self.runtime.get(container_id)
        except CorralError:
            return default
        return container.started_at or default

    def _gone(self, tracked: _Tracked) -> Evaluation:
        """A container stopped or was removed: its firing rules resolve (alerts are resolved;
        nothing is left to restore or thaw), then its state is dropped."""
        now = self._clock()
        evaluation = Evaluation()
        for state in self.engine.states(tracked.ref.id):
            if state.phase != "firing":
                continue
            kinds = ("resolve_alert",) if "alert" in state.taken else ()
            resolution = Resolution(tracked.ref.id, tracked.ref.name, state.policy, state.rule,
                                    state.entry.threshold.signal if state.entry else "", None,
                                    state.fired_at or state.since, now, "container gone", kinds)
            evaluation.resolutions.append(resolution)
            evaluation.actions.extend(Action(kind, tracked.ref.id, tracked.ref.name, state.policy, state.rule,
                                             resolution) for kind in kinds)
        self._execute(evaluation, tracked.paths)
        self.engine.forget(tracked.ref.id)
        self.executor.forget(tracked.ref.id)
        return evaluation

    # --- BPF enforcement: syscall kill rules and egress rules -----------------------------------

    def _syscall_number(self, name: str) -> int | None:
        if self._numbers is None:
            from agent.policy.syscall_table import load_syscall_table
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
            nr = self._syscall_number(entry.syscall)
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

    def enforce_at_start(self, cgroup_id: int, unified_dir: str) -> None:
        """The runtime placed a container's init in its cgroup and the probes watch it: push
        its rules before it execs. A container whose enforcing kill or egress rules cannot be
        pushed does not start (a gap in a deny rule is worse than a failed start)."""
        if self.probes is None:
            return
        container = next((c for c in self.runtime.list(all=True) if c.cgroup_id == cgroup_id), None)
        if container is None:
            return                  # not one of Corral's containers
        effective = self.policy_for(container.name, container.spec.image, container.spec.labels)
        wanted = self._wanted(container.id, effective)
        try:
            self._push(container.id, container.name, cgroup_id, unified_dir, wanted)
        except CorralError as error:
            self.metrics.actions.labels("enforce", "failed").inc()
            if wanted.kill or any(not p.audit for p in wanted.egress):
                raise PolicyError(f"container {container.name}: cannot enforce its policies' syscall kill "
                                  f"or egress rules: {error}",
                                  hint="`corral info` shows the probes; `corral policy explain` the rules") from None
            log.warning("policy audit egress rules of container %s not set: %s", container.name, error)

    def forget_enforcement(self, cgroup_id: int) -> None:
        """The probes forgot the container (removed): so does the service."""
        with self._enforce_lock:
            gone = self._enforced.pop(cgroup_id, None)
            self._enforce_errors.pop(cgroup_id, None)
            if gone is not None:
                for key in [k for k in self._reported if k[0] == gone.container_id]:
                    self._reported.pop(key, None)

    def _sync_enforcement(self, containers: list, effective: dict[str, EffectivePolicy]) -> None:
        """Each tick: push the rules of running containers that changed (reloads), and the
        rules of containers adopted after a daemon restart (nothing pushed yet)."""
        if self.probes is None:
            return
        for container in containers:
            if not container.cgroup_id:
                continue        # an observed container without a v2 directory: no BPF reaches it
            wanted = self._wanted(container.id, effective[container.id])
            unified = CgroupPaths.from_dict(container.cgroup).unified
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

    def record_enforcement(self, container_id: str, name: str, event: Any) -> None:
        """A probe report (agent.probes.events KillEvent or EgressEvent) as a violation."""
        from agent.probes.events import EgressEvent, KillEvent
        if isinstance(event, KillEvent):
            self._record_kill(container_id, name, event)
        elif isinstance(event, EgressEvent):
            self._record_egress(container_id, name, event)

    def _record_kill(self, container_id: str, name: str, event) -> None:
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

    def _record_egress(self, container_id: str, name: str, event) -> None:
        policy = event.policy or "unknown"
        rule = egress_rule_name(event.rule)
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
            with self._lock:
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

    def _bpf_view(self, container, effective: EffectivePolicy) -> dict:
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

    def list_policies(self) -> dict:
        """Every policy in force with its mode, file, commit and the containers it selects."""
        running = self.runtime.list()
        policies = []
        for policy in sorted(self.library.policies(), key=lambda p: p.name):
            commit, modified = self._commits.get(policy.source, (None, False))
            policies.append({
                "name": policy.name, "mode": policy.mode, "file": policy.source, "commit": commit,
                "modified": modified, "description": policy.description,
                "containers": sorted(c.name for c in running
                                     if policy.selector.matches(c.name, c.spec.image, c.spec.labels)),
            })
        problems = {file: [str(p) for p in found] for file, found in self.library.problems().items()}
        return {"directory": self.library.directory, "policies": policies, "problems": problems}

    def explain(self, reference: str) -> dict:
        """Which policies and rules apply to a container and why, where each rule stands, the
        latest signals, the limits in force and the policy events of the container."""
        container = self.runtime.get(reference)
        effective = self.policy_for(container.name, container.spec.image, container.spec.labels)
        with self._lock:
            states = [{"policy": s.policy, "rule": s.rule, "phase": s.phase, "since": s.since,
                       "value": s.value, "fired_at": s.fired_at, "taken": list(s.taken)}
                      for s in self.engine.states(container.id)]
        latest = self.history.latest(container.id)
        in_force = None
        if container.cgroup and container.state == "running":
            try:
                in_force = _limits_dict(self.cgroups.read_limits(CgroupPaths.from_dict(container.cgroup)))
            except (CorralError, OSError):
                in_force = None
        events = [e.to_dict() for e in self.events.since(0.0) if e.type == "policy" and e.id == container.id]
        return {"id": container.id, "name": container.name, "image": container.spec.image,
                "labels": dict(container.spec.labels), "state": container.state,
                "effective": effective.to_dict(), "limits_in_force": in_force,
                "seccomp": self._seccomp_view(container, effective),
                "enforcement": self._bpf_view(container, effective),
                "states": states, "signals": latest.to_dict() if latest else None,
                "events": events[-RECENT_EVENTS:]}

    def _seccomp_view(self, container, effective: EffectivePolicy) -> dict:
        """The deny list of the policies now, and whether the container runs with that filter
        (a running container keeps the filter it started with)."""
        denied = effective.seccomp_denied()
        directory = getattr(getattr(self.runtime, "store", None), "directory", None)
        path = directory(container.id) / SECCOMP_FILE if directory else None
        try:
            started_with = path.read_bytes() if path is not None else None
        except OSError:
            started_with = None
        if started_with is None:
            in_force = "none" if not denied else "none (started before these deny rules)"
        else:
            try:
                from agent.policy.seccomp import filter_bytes
                same = bool(denied) and filter_bytes(denied) == started_with
            except CorralError:
                same = False
            in_force = "current" if same else "an older deny list (applies to containers started from now on)"
        return {"denied": denied, "filter_in_force": in_force}

    def replay(self, text: str, file: str, since: float) -> list[dict]:
        """What the policies of `text` would have done over the kept history since `since`."""
        from agent.policy.check import load_text
        from agent.policy.replay import replay
        if self._known is None:
            from agent.policy.syscall_table import known_syscall, load_syscall_table
            self._known = known_syscall(load_syscall_table())
        loaded = load_text(text, file, self._known, self.library.limits)   # the folder's limits
        if loaded.problems:
            raise PolicyError("\n".join(str(p) for p in loaded.problems),
                              hint="`corral policy check FILE` shows the same problems without a daemon")
        return [replay(policy, self.history, since).to_dict() for policy in loaded.policies]

    def unfreeze(self, reference: str) -> dict:
        """Thaw a container; the rules that froze it resolve (and start over if still true)."""
        container = self.runtime.get(reference)
        if not container.cgroup:
            raise CorralError(f"container {container.name} has no cgroup to thaw")
        paths = CgroupPaths.from_dict(container.cgroup)
        self.cgroups.thaw(paths)
        ref = ContainerRef(container.id, container.name, container.spec.image, dict(container.spec.labels))
        with self._lock:
            evaluation = self.engine.released(ref, self._clock())
            self._execute(evaluation, paths)
        resolved = [f"{r.policy}/{r.rule}" for r in evaluation.resolutions]
        self.metrics.actions.labels("thaw", "ok").inc()
        self.events.emit(Event("policy", "unfreeze", container.id, container.name,
                               attributes={"resolved": resolved}))
        return {"id": container.id, "name": container.name, "resolved": resolved}

    # --- git --------------------------------------------------------------------------------

    def _commit_of(self, file: str) -> tuple[str | None, bool]:
        """The last commit that touched `file` and whether the file differs from it, when the
        folder is a git checkout (asked once per load, not per tick)."""
        directory = self.library.directory
        if self._git is None:
            self._git = _git(directory, "rev-parse", "--is-inside-work-tree") == "true"
        if not self._git:
            return None, False
        commit = _git(directory, "log", "-1", "--format=%h", "--", os.path.abspath(file)) or None
        status = _git(directory, "status", "--porcelain", "--", os.path.abspath(file))
        return commit, bool(status)


@dataclass(frozen=True)
class _ObservedSpec:
    image: str
    labels: dict
    memory: int | None = None
    cpus: float | None = None
    pids_limit: int | None = None


@dataclass(frozen=True)
class _Observed:
    """An observed container (agent.discovery.observed.ObservedContainer) seen through the
    attributes the service reads of Corral's own containers."""

    id: str
    name: str
    cgroup: dict
    cgroup_id: int
    spec: _ObservedSpec
    started_at: float
    created_at: float
    observed: bool = True

    @classmethod
    def of(cls, container) -> "_Observed":
        return cls(id=container.id, name=container.name, cgroup=container.cgroup.to_dict(),
                   cgroup_id=container.cgroup_id,
                   spec=_ObservedSpec(image=container.image, labels=dict(container.container.labels)),
                   started_at=container.started_at, created_at=container.first_seen)


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


def _git(directory: str, *args: str) -> str | None:
    try:
        result = subprocess.run(["git", "-C", directory, *args], capture_output=True, text=True,
                                timeout=GIT_TIMEOUT, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def _limits_dict(limits: Limits) -> dict:
    return {"memory_bytes": limits.memory_bytes, "cpu_quota_us": limits.cpu_quota_us,
            "cpu_period_us": limits.cpu_period_us, "pids_max": limits.pids_max}


def _limits_text(limits: Limits) -> str:
    return ", ".join(f"{k}={'unlimited' if v is None else v}" for k, v in _limits_dict(limits).items())
