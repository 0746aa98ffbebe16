"""Alerts for what the event log records: policy kills, freezes and throttles, and OOM kills.

The ActionExecutor alerts only for rules whose actions include `alert`; issue 6 wants every
enforcement and every OOM kill known too. These arrive as events (agent.events), so this
listener, subscribed to the EventLog, turns them into alerts on the same sink:

| event | alert | severity | ends |
|---|---|---|---|
| policy `kill` | CorralContainerKilled | critical | one-shot: active for `event_hold` |
| policy `freeze` | CorralContainerFrozen | critical | resolved by the rule's `thaw` |
| policy `throttle` | CorralContainerThrottled | warning | resolved by the rule's `restore` |
| policy `enforcement_lost` | CorralPolicyNotEnforced | critical | resolved by `enforcement_restored` (agent/policy/prover.py) |
| `oom` (type oom, or container/oom) | CorralContainerOOMKilled | critical | one-shot |
| container `die` / `destroy` | — | — | resolves every alert still active for the container |

It runs in the emitting thread, so it does no more than put messages on the sink's queues.
"""
from __future__ import annotations

import time
from typing import Protocol

from agent.events import Event
from agent.incidents.store import incident_id
from agent.policy.actions import Alert

# policy action -> (alertname, severity, the action that ends it or None for one-shot)
ENFORCEMENT = {
    "kill": ("CorralContainerKilled", "critical", None),
    "freeze": ("CorralContainerFrozen", "critical", "thaw"),
    "throttle": ("CorralContainerThrottled", "warning", "restore"),
    "enforcement_lost": ("CorralPolicyNotEnforced", "critical", "enforcement_restored"),
}
ENDED_BY = {end: start for start, (_, _, end) in ENFORCEMENT.items() if end}
OOM_ALERT = "CorralContainerOOMKilled"


class EventSink(Protocol):
    def fire(self, alert: Alert) -> None: ...

    def resolve(self, alert: Alert) -> None: ...

    def notify(self, alert: Alert, hold: float | None = None) -> None: ...

    def resolve_container(self, container_id: str, at: float | None = None) -> None: ...


class EventAlerts:
    """Callable on each Event; subscribe it with `events.subscribe(EventAlerts(sink))`."""

    def __init__(self, sink: EventSink) -> None:
        self.sink = sink

    def __call__(self, event: Event) -> None:
        if event.type == "policy":
            self._policy(event)
        elif event.type == "oom" or (event.type == "container" and event.action == "oom"):
            self._oom(event)
        elif event.type == "container" and event.action in ("die", "destroy"):
            self.sink.resolve_container(event.id, event.time)

    def _policy(self, event: Event) -> None:
        attributes = event.attributes or {}
        policy, rule = str(attributes.get("policy", "")), str(attributes.get("rule", ""))
        if event.action in ENFORCEMENT:
            alertname, severity, ends_with = ENFORCEMENT[event.action]
            result = str(attributes.get("result", "ok"))
            alert = Alert(
                key=f"{event.id}/{policy}/{rule}/{event.action}", container_id=event.id,
                container_name=event.name, policy=policy, rule=rule, signal="", value=None, above=None,
                mode="enforce", time=event.time,
                summary=(f"{event.name}: rule {policy}/{rule} is not enforced: {attributes.get('reason', '')}"
                         if event.action == "enforcement_lost" else
                         f"{event.name}: {event.action} by policy {policy}, rule {rule} ({result})"),
                labels={"alertname": alertname, "severity": severity, "action": event.action},
                incident=str(attributes.get("incident", "")))
            if ends_with is None:
                self.sink.notify(alert)
            else:
                self.sink.fire(alert)
        elif event.action in ENDED_BY:
            started = ENDED_BY[event.action]
            alertname, severity, _ = ENFORCEMENT[started]
            self.sink.resolve(Alert(
                key=f"{event.id}/{policy}/{rule}/{started}", container_id=event.id,
                container_name=event.name, policy=policy, rule=rule, signal="", value=None, above=None,
                mode="enforce", time=event.time, summary=f"{event.name}: {event.action} by policy {policy}",
                labels={"alertname": alertname, "severity": severity, "action": started}))

    def _oom(self, event: Event) -> None:
        attributes = event.attributes or {}
        process = attributes.get("comm") or attributes.get("process") or ""
        detail = f" ({process}, pid {attributes['pid']})" if process and "pid" in attributes else ""
        when = event.time or time.time()
        self.sink.notify(Alert(
            key=f"{event.id}/oom", container_id=event.id, container_name=event.name, policy="", rule="",
            signal="oom_kills", value=None, above=None, mode="enforce", time=when,
            summary=f"{event.name}: a process was killed by the kernel's OOM killer{detail}",
            labels={"alertname": OOM_ALERT, "severity": "critical"},
            # The recorder (agent/incidents) names the bundle of this event the same way.
            incident=incident_id(event.id, "oom", when) if event.id else ""))
