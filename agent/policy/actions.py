"""Carrying out the engine's actions on a container's cgroup, and telling people about them.

Each action returns an ActionResult ("ok" or "failed: reason") that the daemon counts in
`corral_policy_actions_total{action,result}`; no action raises, since one container's
failure must not stop the evaluation of the others.

Throttle halves the CPU quota in force. A container without a quota may use every CPU of the
host, so "half" of that is `period * host_cpus / 2` (one CPU on a two-CPU host). The quota
never goes below the kernel's minimum of 1 ms per period. The value in force before the
throttle is kept and put back by `restore`; limits applied live while a container is
throttled (a policy reload) become the value to restore, and the throttled quota is halved
from them, so a reload neither lifts a throttle nor is lost when it ends.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from typing import Callable, Protocol

from agent.cgroups.driver import CgroupDriver, CgroupPaths, Limits
from agent.errors import CorralError
from agent.events import Event, EventLog
from agent.policy.engine import Action, Evaluation, Resolution, Violation

MIN_QUOTA_US = 1000
log = logging.getLogger(__name__)
BeforeAction = Callable[[str, str, CgroupPaths, "Violation | Resolution"], str]


@dataclass(frozen=True)
class ActionResult:
    action: str
    ok: bool
    reason: str = ""

    @property
    def result(self) -> str:
        """The `result` label: "ok" or "failed" (the reason stays out of metric labels)."""
        return "ok" if self.ok else "failed"

    def __str__(self) -> str:
        return "ok" if self.ok else f"failed: {self.reason}"


@dataclass(frozen=True)
class Alert:
    """What an alert sink is told; `key` is stable from fire to resolve."""

    key: str                   # "<container id>/<policy>/<rule>"
    container_id: str
    container_name: str
    policy: str
    rule: str
    signal: str
    value: float | None
    above: float | None
    mode: str
    time: float
    summary: str
    labels: dict = field(default_factory=dict)
    incident: str = ""         # the evidence bundle of a freeze, kill or OOM (`corral incidents show ID`)


class AlertSink(Protocol):
    """The notification hook the alerting issue implements (webhook, Alertmanager, ...)."""

    def fire(self, alert: Alert) -> None: ...

    def resolve(self, alert: Alert) -> None: ...


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class ActionExecutor:
    """Executes engine actions through a cgroup driver; remembers throttled quotas to restore."""

    def __init__(self, driver: CgroupDriver, *, events: EventLog | None = None,
                 alert_sink: AlertSink | None = None, host_cpus: int | None = None,
                 clock: Callable[[], float] | None = None,
                 before_action: BeforeAction | None = None) -> None:
        self.driver = driver
        # Called before a freeze or kill with (action, container id, cgroup, record): saves the
        # evidence while the processes are still there (agent/incidents); answers the bundle's id.
        self.before_action = before_action
        self.events = events
        self.alert_sink = alert_sink
        self.host_cpus = host_cpus or _cpu_count()
        self._clock = clock
        self._saved: dict[str, int | None] = {}      # container id -> quota before the throttle
        self._alerts: dict[str, Alert] = {}

    # --- the engine's output ----------------------------------------------------------------

    def run(self, evaluation: Evaluation, paths_of: Callable[[str], CgroupPaths | None]) -> list[ActionResult]:
        """Record the evaluation's violations and resolutions as events and do its actions."""
        for violation in evaluation.violations:
            self._emit("violation", violation.container_id, violation.container_name, violation.to_dict())
        for resolution in evaluation.resolutions:
            self._emit("resolved", resolution.container_id, resolution.container_name, resolution.to_dict())
        results = []
        for action in evaluation.actions:
            paths = paths_of(action.container_id)
            results.append(self.execute(action, paths))
        return results

    def execute(self, action: Action, paths: CgroupPaths | None) -> ActionResult:
        kind = action.kind
        incident = ""
        if kind in ("freeze", "kill") and paths is not None and self.before_action is not None:
            incident = self._evidence(action, paths)
        if kind == "alert":
            result = self.alert(action.record)
        elif kind == "resolve_alert":
            result = self.resolve_alert(action.record)
        elif paths is None:
            result = ActionResult(kind, False, f"container {action.container_name} has no cgroup")
        elif kind == "throttle":
            result = self.throttle(action.container_id, paths)
        elif kind == "restore":
            result = self.restore(action.container_id, paths)
        elif kind == "freeze":
            result = self._call(kind, self.driver.freeze, paths)
        elif kind == "thaw":
            result = self._call(kind, self.driver.thaw, paths)
        elif kind == "kill":
            result = self._call(kind, self.driver.kill, paths)
        else:
            result = ActionResult(kind, False, f"unknown action {kind!r}")
        if kind not in ("alert", "resolve_alert"):
            self._emit(kind, action.container_id, action.container_name,
                       {"policy": action.policy, "rule": action.rule, "result": str(result),
                        **({"incident": incident} if incident else {})})
        return result

    def _evidence(self, action: Action, paths: CgroupPaths) -> str:
        assert self.before_action is not None
        try:
            return self.before_action(action.kind, action.container_id, paths, action.record)
        except Exception:  # noqa: BLE001 - the action itself must still happen
            log.exception("saving the evidence of %s on %s failed", action.kind, action.container_name)
            return ""

    # --- single actions -----------------------------------------------------------------------

    def throttle(self, container_id: str, paths: CgroupPaths) -> ActionResult:
        try:
            current = self.driver.read_limits(paths)
            if container_id not in self._saved:
                self._saved[container_id] = current.cpu_quota_us
            self.driver.set_limits(paths, replace(current, cpu_quota_us=self.halved(current)))
        except (CorralError, OSError) as exc:
            self._saved.pop(container_id, None)
            return ActionResult("throttle", False, str(exc))
        return ActionResult("throttle", True)

    def halved(self, limits: Limits) -> int:
        """Half the quota in force; for an unlimited container, half of the whole host."""
        full = limits.cpu_quota_us if limits.cpu_quota_us is not None else limits.cpu_period_us * self.host_cpus
        return max(MIN_QUOTA_US, full // 2)

    def restore(self, container_id: str, paths: CgroupPaths) -> ActionResult:
        if container_id not in self._saved:
            return ActionResult("restore", False, "the container is not throttled")
        try:
            current = self.driver.read_limits(paths)
            self.driver.set_limits(paths, replace(current, cpu_quota_us=self._saved[container_id]))
        except (CorralError, OSError) as exc:
            return ActionResult("restore", False, str(exc))
        del self._saved[container_id]
        return ActionResult("restore", True)

    def throttled(self, container_id: str) -> bool:
        return container_id in self._saved

    def apply_limits(self, container_id: str, paths: CgroupPaths, limits: Limits) -> ActionResult:
        """Limits applied live (policy reload); a throttled container stays throttled."""
        try:
            if container_id in self._saved:
                self._saved[container_id] = limits.cpu_quota_us
                limits = replace(limits, cpu_quota_us=self.halved(limits))
            self.driver.set_limits(paths, limits)
        except (CorralError, OSError) as exc:
            return ActionResult("limits", False, str(exc))
        return ActionResult("limits", True)

    def alert(self, violation: Violation | Resolution) -> ActionResult:
        if not isinstance(violation, Violation):
            return ActionResult("alert", False, "an alert needs a violation")
        alert = Alert(
            key=f"{violation.container_id}/{violation.policy}/{violation.rule}",
            container_id=violation.container_id, container_name=violation.container_name,
            policy=violation.policy, rule=violation.rule, signal=violation.signal, value=violation.value,
            above=violation.above, mode=violation.mode, time=violation.time,
            summary=(f"{violation.container_name}: {violation.signal}"
                     f"{'(' + violation.syscall + ')' if violation.syscall else ''} = {violation.value:g} "
                     f"above {violation.above:g} (policy {violation.policy}, rule {violation.rule})"),
            labels={"policy": violation.policy, "rule": violation.rule, "name": violation.container_name})
        self._alerts[alert.key] = alert
        self._emit("alert", violation.container_id, violation.container_name,
                   {"policy": violation.policy, "rule": violation.rule, "summary": alert.summary,
                    "mode": violation.mode})
        return self._notify("alert", "fire", alert)

    def resolve_alert(self, resolution: Violation | Resolution) -> ActionResult:
        key = f"{resolution.container_id}/{resolution.policy}/{resolution.rule}"
        alert = self._alerts.pop(key, None)
        if alert is None:
            return ActionResult("resolve_alert", True)    # fired before a restart: nothing to tell
        alert = replace(alert, time=resolution.time, value=getattr(resolution, "value", None))
        return self._notify("resolve_alert", "resolve", alert)

    def forget(self, container_id: str) -> None:
        """The container is gone: nothing to restore, alerts are dropped."""
        self._saved.pop(container_id, None)
        for key in [k for k, a in self._alerts.items() if a.container_id == container_id]:
            del self._alerts[key]

    # --- plumbing ---------------------------------------------------------------------------

    def _call(self, kind: str, method: Callable[[CgroupPaths], None], paths: CgroupPaths) -> ActionResult:
        try:
            method(paths)
        except (CorralError, OSError) as exc:
            return ActionResult(kind, False, str(exc))
        return ActionResult(kind, True)

    def _notify(self, kind: str, verb: str, alert: Alert) -> ActionResult:
        if self.alert_sink is None:
            return ActionResult(kind, True)
        try:
            getattr(self.alert_sink, verb)(alert)
        except Exception as exc:  # noqa: BLE001 - a broken sink must not stop enforcement
            return ActionResult(kind, False, f"alert sink: {type(exc).__name__}: {exc}")
        return ActionResult(kind, True)

    def _emit(self, action: str, container_id: str, name: str, attributes: dict) -> None:
        if self.events is None:
            return
        extra = {} if self._clock is None else {"time": self._clock()}
        self.events.emit(Event(type="policy", action=action, id=container_id, name=name,
                               attributes=attributes, **extra))
