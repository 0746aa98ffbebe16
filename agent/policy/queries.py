"""The policy views of the API: `policy ls`, `explain` (with how each threshold is seen: in the
kernel or sampled), `replay`, and `unfreeze`.

`PolicyQueries` reads what the service and its Enforcer keep (engine states, signal history,
BPF rules pushed) and the catalogue, so Corral's own and observed containers are explained
alike. Only `unfreeze` acts: it thaws and resolves the rules that froze the container.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from agent.catalog.catalog import ContainerCatalog
from agent.catalog.entry import CatalogEntry
from agent.cgroups.driver import CgroupDriver
from agent.errors import CorralError, NotFound, PolicyError
from agent.events import Event, EventLog
from agent.policy.enforcer import Enforcer, limits_dict
from agent.policy.engine import ContainerRef, Engine
from agent.policy.history import SignalHistory
from agent.policy.library import PolicyLibrary
from agent.policy.merge import EffectivePolicy
from agent.policy.provenance import Provenance

RECENT_EVENTS = 20          # policy events of a container shown by `explain`


class PolicyQueries:
    def __init__(self, *, library: PolicyLibrary, catalog: ContainerCatalog, cgroups: CgroupDriver,
                 events: EventLog, engine: Engine, engine_lock: threading.RLock, history: SignalHistory,
                 enforcer: Enforcer, provenance: Provenance,
                 effective: Callable[[str, str, Mapping[str, str]], EffectivePolicy],
                 clock: Callable[[], float]) -> None:
        self.library = library
        self.catalog = catalog
        self.cgroups = cgroups
        self.events = events
        self.engine = engine
        self._lock = engine_lock            # the tick thread advances the engine under it
        self.history = history
        self.enforcer = enforcer
        self.provenance = provenance
        self._effective = effective
        self._clock = clock
        self._known: Callable[[str], bool] | None = None   # syscall table, for replayed files
        self.egress_recorded: Callable[[], bool] = lambda: False   # do the probes record destinations?
        # how each threshold is seen: in the kernel or sampled (agent/policy/detection.py)
        self.detections: Callable[[CatalogEntry, EffectivePolicy], list[dict]] = lambda container, effective: []

    def list_policies(self) -> dict:
        """Every policy in force with its mode, file, commit and the containers it selects."""
        running = self.catalog.list(running=True)
        policies = []
        for policy in sorted(self.library.policies(), key=lambda p: p.name):
            commit, modified = self.provenance.of(policy.source)
            policies.append({
                "name": policy.name, "mode": policy.mode, "file": policy.source, "commit": commit,
                "modified": modified, "description": policy.description,
                "containers": sorted(c.name for c in running
                                     if policy.selector.matches(c.name, c.image, c.labels)),
            })
        problems = {file: [str(p) for p in found] for file, found in self.library.problems().items()}
        return {"directory": self.library.directory, "policies": policies, "problems": problems}

    def explain(self, reference: str) -> dict:
        """Which policies and rules apply to a container and why, where each rule stands, the
        latest signals, the limits in force and the policy events of the container. A service's
        name (docs/services.md) answers for each of its replicas: {"service", "replicas": [...]}."""
        try:
            container = self.catalog.get(reference)
        except NotFound:
            replicas = [e for e in self.catalog.list() if e.labels.get("corral.service") == reference]
            if not replicas:
                raise NotFound(f"no such container or service: {reference}",
                               hint="`corral ps` lists containers, `corral service ls` services") from None
            return {"service": reference,
                    "replicas": [self.explain(entry.id) for entry in sorted(replicas, key=lambda e: e.name)]}
        effective = self._effective(container.name, container.image, container.labels)
        with self._lock:
            states = [{"policy": s.policy, "rule": s.rule, "phase": s.phase, "since": s.since,
                       "value": s.value, "fired_at": s.fired_at, "taken": list(s.taken)}
                      for s in self.engine.states(container.id)]
        latest = self.history.latest(container.id)
        in_force = None
        if container.running:
            try:
                in_force = limits_dict(self.cgroups.read_limits(container.cgroup))
            except (CorralError, OSError):
                in_force = None
        events = [e.to_dict() for e in self.events.since(0.0) if e.type == "policy" and e.id == container.id]
        return {"id": container.id, "name": container.name, "image": container.image,
                "labels": dict(container.labels), "state": container.state,
                "observed": container.observed, "runtime": container.runtime,
                "effective": effective.to_dict(), "limits_in_force": in_force,
                "seccomp": self._seccomp_view(container, effective),
                "enforcement": self.enforcer.bpf_view(container, effective),
                "states": states, "detection": self.detections(container, effective),
                "signals": latest.to_dict() if latest else None,
                "events": events[-RECENT_EVENTS:]}

    def _seccomp_view(self, container: CatalogEntry, effective: EffectivePolicy) -> dict:
        """The deny list of the policies now, and whether the container runs with that filter
        (a running container keeps the filter it started with)."""
        denied = effective.seccomp_denied()
        if container.observed:
            return {"denied": denied, "filter_in_force": "not applicable: seccomp applies only to "
                                                         "containers Corral starts"}
        # The filter merges the profile and the deny rules; its record says which deny list.
        from agent.security.container_filter import in_force as filter_record
        record = filter_record(Path(container.seccomp_file).parent) if container.seccomp_file else None
        started_with = record.get("denied") if record else None
        if not started_with:
            in_force = "none" if not denied else "none (started before these deny rules)"
        elif sorted(started_with) == sorted(denied):
            in_force = "current"
        else:
            in_force = "an older deny list (applies to containers started from now on)"
        return {"denied": denied, "filter_in_force": in_force}

    def replay(self, text: str, file: str, since: float) -> list[dict]:
        """What the policies of `text` would have done over the kept history since `since`."""
        from agent.policy.check import load_text
        from agent.policy.replay import replay
        if self._known is None:
            from agent.syscall_table import known_syscall, load_syscall_table
            self._known = known_syscall(load_syscall_table())
        loaded = load_text(text, file, self._known, self.library.limits)   # the folder's limits
        if loaded.problems:
            raise PolicyError("\n".join(str(p) for p in loaded.problems),
                              hint="`corral policy check FILE` shows the same problems without a daemon")
        return [replay(policy, self.history, since).to_dict() for policy in loaded.policies]

    def suggest(self, *, container: str | None, selector: dict | None, since: float, holdout: float,
                mode: str, name: str | None) -> dict:
        """A least-privilege policy from the history (agent/policy/suggest_query.py)."""
        from agent.policy.model import Selector
        from agent.policy.suggest_query import suggestion
        if self._known is None:
            from agent.syscall_table import known_syscall, load_syscall_table
            self._known = known_syscall(load_syscall_table())
        def globs(key: str) -> tuple[str, ...] | None:
            return None if selector is None or selector.get(key) is None else tuple(selector[key])
        chosen = None if selector is None else Selector(globs("names"), globs("images"),
                                                        dict(selector.get("labels") or {}), globs("services"))
        return suggestion(self.history, self.catalog, container=container, selector=chosen, since=since,
                          holdout=holdout, mode=mode, name=name, egress_recorded=self.egress_recorded(),
                          syscall_known=self._known)

    def unfreeze(self, reference: str) -> dict:
        """Thaw a container; the rules that froze it resolve (and start over if still true)."""
        container = self.catalog.get(reference)
        if not container.cgroup.unified and not container.cgroup.controllers:
            raise CorralError(f"container {container.name} has no cgroup to thaw")
        paths = container.cgroup
        self.cgroups.thaw(paths)
        ref = ContainerRef(container.id, container.name, container.image, dict(container.labels))
        with self._lock:
            evaluation = self.engine.released(ref, self._clock())
            self.enforcer.run_actions(evaluation, lambda _: paths)
        resolved = [f"{r.policy}/{r.rule}" for r in evaluation.resolutions]
        self.enforcer.metrics.actions.labels("thaw", "ok").inc()
        self.events.emit(Event("policy", "unfreeze", container.id, container.name,
                               attributes={"resolved": resolved}))
        return {"id": container.id, "name": container.name, "resolved": resolved}

