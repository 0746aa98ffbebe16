"""The policy model: the compiled policies the engine, the merge and the daemon work with.

Frozen dataclasses, with values already read (sizes in bytes, durations in seconds, CIDRs
normalised, signals as numbers). They are built by one path, agent.policy.build.parse_policy:
a YAML document is checked against the schema (agent.policy.schema, which also says what
the document looks like) and the semantic checks (agent.policy.semantics), then compiled.
docs/policies.md is the reference of every field.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.cgroups.driver import Limits
from agent.errors import PolicyError

# --- the objects --------------------------------------------------------------------------

def normalise_image(reference: str) -> str:
    """docker.io/library/busybox -> busybox; a reference without tag or digest gets :latest."""
    for prefix in ("docker.io/library/", "index.docker.io/library/", "docker.io/"):
        if reference.startswith(prefix):
            reference = reference[len(prefix):]
            break
    last = reference.rsplit("/", 1)[-1]
    if "@" not in reference and ":" not in last:
        reference += ":latest"
    return reference


SERVICE_LABEL = "corral.service"   # agent.services.model.SERVICE_LABEL, which imports the runtime


@dataclass(frozen=True)
class Selector:
    """Which containers a policy applies to: every given field must match; globs allowed.
    A field left out matches every container; a policy without a selector applies to all."""

    names: tuple[str, ...] | None = None
    images: tuple[str, ...] | None = None
    labels: dict[str, str] = field(default_factory=dict)
    services: tuple[str, ...] | None = None     # replicas of these services (their corral.service label)

    def matches(self, name: str, image: str, labels: dict[str, str] | None = None) -> bool:
        labels = labels or {}
        if self.names is not None and not any(fnmatch.fnmatchcase(name, g) for g in self.names):
            return False
        if self.services is not None and not any(fnmatch.fnmatchcase(labels.get(SERVICE_LABEL, ""), g)
                                                 and SERVICE_LABEL in labels for g in self.services):
            return False
        if self.images is not None and not any(_image_matches(image, g) for g in self.images):
            return False
        return all(k in labels and fnmatch.fnmatchcase(str(labels[k]), v) for k, v in self.labels.items())

    def to_dict(self) -> dict:
        data: dict[str, Any] = {}
        if self.names is not None:
            data["names"] = list(self.names)
        if self.images is not None:
            data["images"] = list(self.images)
        if self.labels:
            data["labels"] = dict(self.labels)
        if self.services is not None:
            data["services"] = list(self.services)
        return data


def _image_matches(image: str, pattern: str) -> bool:
    """A pattern without a tag matches every tag of that repository ("busybox" ~ "busybox:1.36")."""
    image = normalise_image(image)
    last = pattern.rsplit("/", 1)[-1]
    if "@" not in pattern and ":" not in last:
        return fnmatch.fnmatchcase(image.split("@")[0].rsplit(":", 1)[0], _strip_hub(pattern))
    return fnmatch.fnmatchcase(image, normalise_image(pattern))


def _strip_hub(pattern: str) -> str:
    for prefix in ("docker.io/library/", "index.docker.io/library/", "docker.io/"):
        if pattern.startswith(prefix):
            return pattern[len(prefix):]
    return pattern


@dataclass(frozen=True)
class SyscallRule:
    """deny: EPERM via seccomp (containers started under the policy); kill: the probe sends
    `signal` to the caller, live; alert: an event and an alert, nothing else."""

    names: tuple[str, ...]
    action: str
    signal: int = 9
    name: str | None = None
    index: int = 0

    @property
    def rule_id(self) -> str:
        return self.name or f"syscalls[{self.index}]"


@dataclass(frozen=True)
class EgressRule:
    """Traffic leaving the container to `cidr` (and `ports`/`protocol` when given)."""

    action: str
    cidr: str
    ports: tuple[int, ...] = ()        # empty: every port
    protocol: str | None = None        # None: tcp and udp
    name: str | None = None
    index: int = 0

    @property
    def rule_id(self) -> str:
        return self.name or f"egress[{self.index}]"

    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_network(self.cidr)


@dataclass(frozen=True)
class NetworkPolicy:
    """Egress control: `default` for traffic no rule matches; the first matching rule decides."""

    egress_default: str = "allow"
    egress: tuple[EgressRule, ...] = ()


@dataclass(frozen=True)
class Threshold:
    """When `signal` stays above `above` for `for_seconds`, take `actions`; resolve when it clears."""

    signal: str
    above: float
    for_seconds: float = 0.0
    actions: tuple[str, ...] = ("alert",)
    syscall: str | None = None         # only for the per-syscall signals
    name: str | None = None
    index: int = 0

    @property
    def rule_id(self) -> str:
        return self.name or f"thresholds[{self.index}]"


@dataclass(frozen=True)
class Policy:
    name: str
    mode: str = "enforce"
    selector: Selector = field(default_factory=Selector)
    limits: Limits = field(default_factory=Limits)
    syscalls: tuple[SyscallRule, ...] = ()
    network: NetworkPolicy = field(default_factory=NetworkPolicy)
    thresholds: tuple[Threshold, ...] = ()
    description: str = ""
    source: str = field(default="", compare=False)      # file it was loaded from
    kill_order: str | None = None      # limits.killOrder: first | early | normal | late | last

    @property
    def enforcing(self) -> bool:
        return self.mode == "enforce"

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["selector"] = self.selector.to_dict()
        data["limits"] = self.limits.in_user_units()
        if self.kill_order is not None:
            data["limits"]["killOrder"] = self.kill_order
        data.pop("kill_order", None)
        return data

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "",
                  syscall_known: Callable[[str], bool] | None = None) -> Policy:
        """The policy of one document, or PolicyError listing every problem."""
        from agent.policy.build import parse_policy  # build imports this module
        policy, errors = parse_policy(data, source=source, syscall_known=syscall_known)
        if errors:
            where = f"{source}: " if source else ""
            raise PolicyError("; ".join(f"{where}{e.dotted}: {e.message}" for e in errors))
        assert policy is not None
        return policy
