"""Rules that cannot reach a container, said once per container and policy (PolicyService):
seccomp is installed by the launcher before exec, so a deny rule cannot reach a container
Corral did not start. Never skipped silently."""
from __future__ import annotations

from typing import Callable, Mapping

from agent.catalog.entry import CatalogEntry
from agent.events import Event, EventLog
from agent.policy.merge import EffectivePolicy


class NotApplicable:
    def __init__(self, events: EventLog,
                 policy_for: Callable[[str, str, Mapping[str, str] | None], EffectivePolicy]) -> None:
        self.events = events
        self.policy_for = policy_for
        self._reported: set[tuple[str, str]] = set()   # (container id, policy) reported

    def report(self, foreign: list[CatalogEntry]) -> None:
        for container in foreign:
            effective = self.policy_for(container.name, container.image, container.labels)
            for entry in effective.syscalls:
                if entry.action != "deny" or entry.source.mode != "enforce":
                    continue
                key = (container.id, entry.source.policy)
                if key in self._reported:
                    continue
                self._reported.add(key)
                self.events.emit(Event("policy", "not_applicable", container.id, container.name,
                                       attributes={"policy": entry.source.policy, "rule": entry.source.rule,
                                                   "action": "deny",
                                                   "reason": "seccomp applies only to containers "
                                                             "Corral starts"}))
