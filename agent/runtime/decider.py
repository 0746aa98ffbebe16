"""`PolicyDecider`: what the runtime asks the policies while it creates and starts a container.

A query, not a subscriber: the runtime needs an answer (the cgroup limits, the seccomp deny
list) before the container's first instruction, and a query returns it where it is needed. An
event whose subscriber hands a result back would be the old callback under another name.
The daemon passes agent.policy.decider.LibraryDecider; without --policies, `NoPolicies`.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from agent.cgroups.driver import Limits


class PolicyDecider(Protocol):
    def limits(self, name: str, image: str, labels: Mapping[str, str], requested: Limits) -> Limits:
        """`requested` tightened by the policies selecting the container (the strictest wins)."""
        ...

    def seccomp_denied(self, name: str, image: str, labels: Mapping[str, str]) -> list[str]:
        """The syscalls the container's seccomp filter must refuse, sorted; [] for no filter."""
        ...


class NoPolicies:
    """No policy folder: containers get what they asked for."""

    def limits(self, name: str, image: str, labels: Mapping[str, str], requested: Limits) -> Limits:
        return requested

    def seccomp_denied(self, name: str, image: str, labels: Mapping[str, str]) -> list[str]:
        return []
