"""The policies in the running daemon: reload the folder, evaluate thresholds on snapshots,
act, count, and answer the API (`policy ls`, `explain`, `replay`, `unfreeze`).

`PolicyService` composes the library (agent/policy/*); it is the only part of the policy
package with a thread. Each tick (1 s by default) it reloads the folder, applies the limits of
changed policies live to running containers, takes one snapshot of every running container,
turns it into signals, records them for replay, advances the threshold engine and executes its
actions. `evaluate()` and `reload()` are public so tests can drive a tick by hand.

Syscall `alert` rules (and the deny/kill rules of audit policies, which only alert) are
evaluated here from the probes' per-cgroup syscall counters: one violation per rule and
syscall in each interval where the count went up, with the number of calls. Syscall `kill`
rules and network egress rules need BPF programs of their own (docs/policies.md, "Running
policies"); `deny` rules are seccomp filters the runtime installs at start (`policy_for`).
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
from agent.policy.merge import EffectivePolicy, merge, selecting
from agent.policy.signals import compute_signals

log = logging.getLogger("corral.policy")

GIT_TIMEOUT = 2.0
RECENT_EVENTS = 20          # policy events of a container shown by `explain`
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
                 clock: Callable[[], float] = time.time) -> None:
        if interval <= 0:
            raise ValueError(f"policy interval {interval!r}: must be above 0 seconds")
        self.library = library
        self.runtime = runtime
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
        while not self._stop.wait(self.interval):
            try:
                self.reload()
                self.evaluate()
            except Exception:  # one bad tick must not end enforcement
                log.exception("policy evaluation failed")

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
            base = Limits.from_cpus(container.spec.memory, container.spec.cpus, container.spec.pids_limit)
            paths = CgroupPaths.from_dict(container.cgroup)
            try:
                before = self.cgroups.read_limits(paths)
            except (CorralError, OSError):
                continue        # exited meanwhile
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
        """Running containers Corral started: observed (foreign) containers are never acted on."""
        return [c for c in self.runtime.list() if c.cgroup and c.cgroup_id and not getattr(c, "observed", False)]

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
        loaded = load_text(text, file, self._known)
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
