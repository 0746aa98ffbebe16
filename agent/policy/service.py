"""The policies in the running daemon: the tick loop that reloads the folder, evaluates
thresholds on snapshots and acts; the composition of the parts that do each job.

`PolicyService` composes the library (agent/policy/*) and is the only part of the policy
package with a thread. That thread blocks in the kernel watch's epoll (agent/cgroups/watch.py)
and wakes for whichever comes first:
- a kernel event of one container (a memory threshold crossed, an OOM kill, a pressure
  trigger): that container alone is evaluated at once (`evaluate_container`, in
  agent/policy/event_evaluation.py with `evaluate_crossing`);
- a rate limit crossed in the probes (agent/policy/kernel_rates.py), which the probe event pump
  hands over: the rules of that signal advance at once (`evaluate_crossing`);
- a container started or stopped (the bus) or a policy change: watches are re-armed;
- a pending rule's `for:` running out: everything is evaluated at that moment;
- the folder check (every second, or every interval when shorter): `reload()`, which has the
  `Enforcer` apply the limits of changed policies live to running containers;
- the periodic evaluation (`evaluate()`), only needed for signals without an event source:
  one snapshot of every running container in the catalogue (Corral's own and observed ones),
  turned into signals, recorded for replay, advanced through the threshold engine, actions
  executed by the Enforcer. Its interval adapts (agent/policy/watches.py, `Pace`): the
  configured one while a sampled signal is near a threshold, five times longer otherwise.
`evaluate()` and `reload()` are public so tests can drive a tick by hand.

Syscall `alert` rules (and the deny/kill rules of audit policies, which only alert) are
evaluated here from the probes' per-cgroup syscall counters: one violation per rule and
syscall in each interval where the count went up, with the number of calls. `deny` rules are
seccomp filters the runtime installs at start (it asks agent.policy.decider.LibraryDecider).
Syscall `kill` and egress rules are enforced in BPF: see agent/policy/enforcer.py. The API
views are `queries` (agent/policy/queries.py); file provenance is agent/policy/provenance.py; what a reload
reports, agent/policy/reload_report.py; rules that cannot reach observed containers,
agent/policy/not_applicable.py.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Mapping

from prometheus_client import CollectorRegistry

from agent.catalog.bus import BusEvent, ContainerHealth
from agent.catalog.catalog import ContainerCatalog
from agent.catalog.entry import CatalogEntry
from agent.cgroups.driver import CgroupDriver, CgroupPaths
from agent.cgroups.watch import PollingWatch, ThresholdWatch, WatchSpec
from agent.errors import CorralError
from agent.events import EventLog
from agent.metrics.sampler import Sampler
from agent.metrics.snapshot import ContainerSnapshot
from agent.policy.actions import ActionExecutor, AlertSink, BeforeAction
from agent.policy.detection import detect
from agent.policy.enforcer import Enforcer
from agent.policy.engine import ContainerRef, Engine, Evaluation
from agent.policy.event_evaluation import MIN_RATE_WINDOW, KernelEventEvaluation, Tracked
from agent.policy.history import SignalHistory
from agent.policy.kernel_rates import KernelRates, RateLimitsWanted, kernel_limits, since_crossing
from agent.policy.library import PolicyLibrary, ReloadReport
from agent.policy.merge import EffectivePolicy, merge, selecting
from agent.policy.metrics import PolicyMetrics
from agent.policy.not_applicable import NotApplicable
from agent.policy.provenance import Provenance
from agent.policy.queries import PolicyQueries
from agent.policy.reload_report import report_reload
from agent.policy.signals import SignalSample, compute_signals
from agent.policy.syscall_alerts import syscall_alerts
from agent.policy.watches import Pace, Watches, near, watch_spec
from agent.probes.events import EgressEvent, KillEvent, RateEvent
from agent.probes.interface import Probes

log = logging.getLogger("corral.policy")

RELOAD_EVERY = 1.0       # seconds between checks of the policy folder (at most the interval)


class PolicyService(KernelEventEvaluation):
    """Policies in force in the daemon; `start()` runs the tick thread, `stop()` ends it."""

    def __init__(self, library: PolicyLibrary, *, catalog: ContainerCatalog, cgroups: CgroupDriver,
                 events: EventLog, probes: Probes | None = None,
                 engine: Engine | None = None, history: SignalHistory | None = None,
                 executor: ActionExecutor | None = None, alert_sink: AlertSink | None = None,
                 registry: CollectorRegistry | None = None, metrics: PolicyMetrics | None = None,
                 sampler: Sampler | None = None,
                 interval: float = 1.0, syscall_name: Callable[[int], str | None] | None = None,
                 before_action: BeforeAction | None = None,
                 watch: ThresholdWatch | None = None, slow_factor: float = 5.0,
                 clock: Callable[[], float] = time.time) -> None:
        if interval <= 0:
            raise ValueError(f"policy interval {interval!r}: must be above 0 seconds")
        self.library = library
        # Every container, Corral's own and observed ones: observed ones are evaluated like its
        # own and acted on through `cgroups` (the daemon passes a driver that reaches their cgroups).
        self.catalog = catalog
        self.cgroups = cgroups
        self.events = events
        self.probes = probes
        self.engine = engine or Engine()
        self.history = history or SignalHistory(capacity=max(1, int(3600 / interval)))
        self.metrics = metrics or PolicyMetrics(registry if registry is not None else CollectorRegistry())
        self.interval = interval
        self.pace = Pace(interval, slow_factor)
        # Without a kernel watch (unit tests, a host without one) every signal is sampled.
        self.watches = Watches(watch or PollingWatch())
        self.rates = KernelRates(probes, number=lambda name: self.enforcer.syscall_number(name))
        self._resync = threading.Event()        # containers or policies changed: re-arm
        self._resync.set()
        self._clock = clock
        self._lock = threading.RLock()          # the tick thread and API threads share engine state
        self._tracked: dict[str, Tracked] = {}
        self._rate_base: dict[str, ContainerSnapshot] = {}    # snapshot at a container's last crossing
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.provenance = Provenance(library.directory)
        self.not_applicable = NotApplicable(events, self.policy_for)
        self.enforcer = Enforcer(effective=self.policy_for, cgroups=cgroups, events=events, metrics=self.metrics,
                                 executor=executor or ActionExecutor(cgroups, events=events, alert_sink=alert_sink,
                                                                    before_action=before_action),
                                 probes=probes, syscall_name=syscall_name)
        # The same reader (and error policy) as the metrics: the daemon passes its one Sampler.
        self.sampler = sampler or Sampler(cgroups, probes, self.enforcer.syscall_label)
        self.queries = PolicyQueries(library=library, catalog=catalog, cgroups=cgroups, events=events,
                                     engine=self.engine, engine_lock=self._lock, history=self.history,
                                     enforcer=self.enforcer, provenance=self.provenance,
                                     effective=self.policy_for, clock=clock)
        self.queries.egress_recorded = lambda: probes is not None and bool(probes.status().get("tcp_connect"))
        self.queries.detections = self._detections

    # --- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Load the folder now (before any container starts), then tick in a thread."""
        self.reload()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="corral-policy", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.watches.watch.wake()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.watches.close()

    def on_container(self, event: BusEvent) -> None:
        """The ContainerBus subscriber: a container placed, started, stopped or removed has its
        watches re-armed or closed by the policy thread, now rather than at the next tick."""
        if not isinstance(event, ContainerHealth):
            self._resync.set()
            self.watches.watch.wake()

    def _run(self) -> None:
        """Wait for a kernel event, a container change, a due `for:` hold, the folder check or
        the periodic evaluation, whichever comes first (docs/policies.md, "How fast actions
        happen"); a `for:` hold is timed exactly, not rounded up to the next tick."""
        reload_every = min(self.interval, RELOAD_EVERY)
        next_reload = time.monotonic() + reload_every
        next_tick = time.monotonic() + self.pace.current
        while True:
            wait = min(next_tick, next_reload) - time.monotonic()
            with self._lock:
                due = self.engine.next_due()
            if due is not None:
                wait = min(wait, due - self._clock() + 0.001)
            fired = self.watches.watch.wait(0.0 if self._resync.is_set() else max(0.0, wait))
            if self._stop.is_set():
                return
            try:
                if time.monotonic() >= next_reload:
                    self.reload()
                    next_reload = time.monotonic() + reload_every
                if self._resync.is_set():
                    self._resync.clear()
                    armed = self._sync_watches()
                    if armed:       # their values are not known yet: sample at the configured pace
                        next_tick = min(next_tick, time.monotonic() + self.interval)
                    fired.update(armed)
                ticked = time.monotonic() >= next_tick
                if ticked or (due is not None and self._clock() >= due):
                    self.evaluate()
                    fired.clear()
                for container_id in sorted(fired):
                    self.evaluate_container(container_id)
                for container_id, crossing in self.rates.take(self._clock()):
                    self.evaluate_crossing(container_id, crossing)
            except Exception:  # one bad evaluation must not end enforcement
                log.exception("policy evaluation failed")
                ticked = time.monotonic() >= next_tick
            if ticked:
                next_tick = max(next_tick + self.pace.current, time.monotonic())

    def policy_for(self, name: str, image: str, labels: Mapping[str, str] | None = None) -> EffectivePolicy:
        return merge(selecting(self.library.policies(), name, image, dict(labels or {})))

    def record_enforcement(self, container: CatalogEntry, event: KillEvent | EgressEvent | RateEvent) -> None:
        """The probe event pump's EnforcementReports: the Enforcer records them; a rate limit
        crossing wakes the policy thread, which evaluates it."""
        if isinstance(event, RateEvent):
            self.rates.offer(container.id, event)
            self.watches.watch.wake()
            return
        self.enforcer.record_enforcement(container, event)

    # --- reload -------------------------------------------------------------------------------

    def reload(self) -> ReloadReport:
        report = self.library.reload()
        report_reload(report, library=self.library, events=self.events, provenance=self.provenance,
                      metrics=self.metrics)
        if report.changed:
            self.metrics.set_loaded(self.library.policies())
            self.apply_live_limits()
            self._resync.set()      # thresholds moved: re-arm (on the policy thread)
        return report

    def enforce_running(self) -> None:
        """Push the BPF rules of every running container now, not at the first tick: at start,
        before the probes retire the rules a previous daemon left pinned."""
        policies = self.library.policies()
        containers = self._running()
        self.enforcer.sync(containers, {c.id: merge(selecting(policies, c.name, c.image, c.labels))
                                        for c in containers})

    def apply_live_limits(self) -> None:
        self.enforcer.apply_live_limits(self._running())

    # --- evaluation -----------------------------------------------------------------------------

    def evaluate(self) -> list[Evaluation]:
        """One tick: snapshot every running container, advance its rules, act."""
        policies = self.library.policies()
        containers = self._running()
        effective = {c.id: merge(selecting(policies, c.name, c.image, c.labels)) for c in containers}
        # Per-syscall counts always: the history keeps every syscall seen (`policy suggest`).
        snapshots = self.sampler.snapshots(containers, with_syscalls=True, clock=self._clock)
        destinations = self.sampler.destinations(containers) or {}
        by_id = {c.id: c for c in containers}
        self.enforcer.sync(containers, effective)
        self._sync_watches(containers, effective)
        evaluations = []
        close = False
        with self._lock:
            for snapshot in snapshots:
                container = by_id[snapshot.id]
                ref = ContainerRef(container.id, container.name, container.image, dict(container.labels))
                previous = self._tracked.get(container.id)
                sample = compute_signals(previous.snapshot if previous else None, snapshot)
                self._tracked[container.id] = Tracked(ref, container.cgroup, snapshot)
                self.history.record(ref, sample, syscall_totals=snapshot.by_syscall,
                                    tcp_destinations=destinations.get(container.id))
                base = self._rate_base.pop(container.id, None)
                if base is not None:        # kernel-checked rates since the crossing, not since the last tick
                    sample = since_crossing(sample, base, snapshot, MIN_RATE_WINDOW)
                    if snapshot.time - base.time < MIN_RATE_WINDOW:
                        self._rate_base[container.id] = base
                evaluation = self.engine.evaluate(ref, effective[container.id], sample)
                syscall_alerts(ref, effective[container.id], previous.snapshot if previous else None, snapshot,
                               self._started_at(ref.id, snapshot.time), evaluation)
                self.enforcer.run_actions(evaluation, self._paths_of)
                evaluations.append(evaluation)
                close = close or previous is None or self._close(container.id, effective[container.id], sample)
            evaluations.extend(self._forget_gone(set(by_id)))
        self.pace.settle(close)
        return evaluations

    def _sync_watches(self, containers: list[CatalogEntry] | None = None,
                      effective: dict[str, EffectivePolicy] | None = None) -> list[str]:
        """Arm each running container's kernel watches for its thresholds (closing those of
        containers gone); the ids newly armed. Without arguments (a container or the policies
        changed) it also resolves the rules of containers that stopped."""
        if containers is None:
            containers = self._running()
            with self._lock:
                self._forget_gone({c.id for c in containers})
        if effective is None:
            effective = {c.id: self.policy_for(c.name, c.image, c.labels) for c in containers}
        wanted: dict[str, tuple[CgroupPaths, WatchSpec]] = {}
        rates: dict[str, tuple[int, RateLimitsWanted]] = {}
        for container in containers:
            policy = effective[container.id]
            if policy.thresholds:
                wanted[container.id] = (container.cgroup,
                                        watch_spec(policy, self._memory_limit(container, policy),
                                                   own=not container.observed))
                if container.cgroup_id:
                    rates[container.id] = (container.cgroup_id, kernel_limits(policy, self.rates.number))
        self.rates.sync(rates)
        return self.watches.sync(wanted)

    def _memory_limit(self, container: CatalogEntry, effective: EffectivePolicy) -> int | None:
        """The limit a memory_percent_of_limit rule is a share of (read only when one exists)."""
        if not any(e.threshold.signal == "memory_percent_of_limit" for e in effective.thresholds):
            return None
        tracked = self._tracked.get(container.id)
        if tracked is not None and tracked.snapshot.memory_limit_bytes:
            return tracked.snapshot.memory_limit_bytes
        try:
            return self.cgroups.read_limits(container.cgroup).memory_bytes
        except (CorralError, OSError):
            return None

    def _close(self, container_id: str, effective: EffectivePolicy, sample: SignalSample) -> bool:
        """Whether this container keeps the periodic evaluation at its configured pace: a rule
        pending or firing, or a sampled signal (one without a kernel watch) near its threshold."""
        if self.engine.states(container_id):
            return True
        return any(not self.watches.evented(container_id, entry) and not self.rates.evented(container_id, entry)
                   and near(sample.value(entry.threshold.signal, entry.threshold.syscall),
                            entry.threshold.above, self.pace.margin)
                   for entry in effective.thresholds)

    def _forget_gone(self, running: set[str]) -> list[Evaluation]:
        return [self._gone(self._tracked.pop(gone)) for gone in set(self._tracked) - running]

    def _running(self) -> list[CatalogEntry]:
        """Running containers, Corral's own (with a cgroup id) and observed ones."""
        running = [c for c in self.catalog.list(running=True) if c.observed or c.cgroup_id]
        self.not_applicable.report([c for c in running if c.observed])
        return running

    def _detections(self, container: CatalogEntry, effective: EffectivePolicy) -> list[dict]:
        """How each threshold of `container` is seen now: in the kernel or sampled (explain)."""
        return [detect(e, effective, rate_level_held=self.rates.evented(container.id, e), number=self.rates.number,
                       watched=self.watches.evented(container.id, e), running=container.running).to_dict()
                for e in effective.thresholds]

    def _paths_of(self, container_id: str) -> CgroupPaths | None:
        tracked = self._tracked.get(container_id)
        return tracked.paths if tracked else None

    def _started_at(self, container_id: str, default: float) -> float:
        container = self.catalog.by_id(container_id)
        return (container.started_at if container is not None else 0.0) or default

    def _gone(self, tracked: Tracked) -> Evaluation:
        """A container stopped or was removed: its firing rules resolve (alerts are resolved;
        nothing is left to restore or thaw), then its state is dropped."""
        evaluation = self.engine.gone(tracked.ref, self._clock())
        self.enforcer.run_actions(evaluation, lambda _: tracked.paths)
        self.engine.forget(tracked.ref.id)
        self._rate_base.pop(tracked.ref.id, None)
        self.enforcer.forget(tracked.ref.id)
        return evaluation

