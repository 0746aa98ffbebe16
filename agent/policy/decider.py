"""`LibraryDecider`: the runtime's PolicyDecider over the daemon's policy library, and the one
place an effective policy is worked out for a container (`effective`)."""
from __future__ import annotations

from collections.abc import Mapping

from agent.cgroups.driver import Limits
from agent.policy.library import PolicyLibrary
from agent.policy.merge import EffectivePolicy, merge, selecting


class LibraryDecider:
    """Answers from the policies in force now; an empty library answers like NoPolicies."""

    def __init__(self, library: PolicyLibrary) -> None:
        self.library = library

    def effective(self, name: str, image: str, labels: Mapping[str, str] | None = None) -> EffectivePolicy:
        return merge(selecting(self.library.policies(), name, image, dict(labels or {})))

    def limits(self, name: str, image: str, labels: Mapping[str, str], requested: Limits) -> Limits:
        return self.effective(name, image, labels).cgroup_limits(requested)

    def seccomp_denied(self, name: str, image: str, labels: Mapping[str, str]) -> list[str]:
        return self.effective(name, image, labels).seccomp_denied()
