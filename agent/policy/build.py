"""From a YAML document to a Policy: the one path, `parse_policy`.

The document is checked against the schema with the semantic checks on top (every problem,
each with its path), then msgspec builds the typed document and it is compiled into the
model's dataclasses with its values read (bytes, seconds, signal numbers, normalised CIDRs).
"""
from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

import msgspec
from msgspec import UNSET

from agent.cgroups.driver import Limits
from agent.policy import schema
from agent.policy.model import EgressRule, NetworkPolicy, Policy, Selector, SyscallRule, Threshold
from agent.policy.semantics import above_value, checks, size_of
from agent.policy.validate import FieldError, validate
from agent.units import parse_duration, parse_signal


def parse_policy(data: Any, *, source: str = "",
                 syscall_known: Callable[[str], bool] | None = None) -> tuple[Policy | None, list[FieldError]]:
    """(policy, []) or (None, every problem found)."""
    errors = validate(data, schema.PolicyDocument, checks(syscall_known))
    if errors:
        return None, errors
    try:
        document = msgspec.convert(data, schema.PolicyDocument, strict=True)
    except msgspec.ValidationError as exc:     # the walk and msgspec disagree: still a located problem
        return None, [FieldError((), f"not a valid policy: {exc}")]
    return compile_policy(document, source), []


def compile_policy(document: schema.PolicyDocument, source: str = "") -> Policy:
    spec = document.spec
    return Policy(name=document.metadata.name, mode=spec.mode, selector=_selector(spec.selector),
                  limits=_limits(spec.limits), syscalls=_syscalls(spec.syscalls), network=_network(spec.network),
                  thresholds=_thresholds(spec.thresholds), description=document.metadata.description,
                  source=source, kill_order=_kill_order(spec.limits))


def _selector(selector: schema.Selector | Any) -> Selector:
    if selector is UNSET:
        return Selector()
    # `tier: 1` in YAML is an int and `canary: yes` a bool; labels are text.
    labels = {key: str(value).lower() if isinstance(value, bool) else str(value)
              for key, value in (selector.labels or {}).items()} if selector.labels is not UNSET else {}
    return Selector(names=tuple(selector.names) if selector.names is not UNSET else None,
                    images=tuple(selector.images) if selector.images is not UNSET else None,
                    labels=labels, services=tuple(selector.services) if selector.services is not UNSET else None)


def _kill_order(limits: schema.Limits | Any) -> str | None:
    return None if limits is UNSET or limits.killOrder is UNSET else str(limits.killOrder)


def _limits(limits: schema.Limits | Any) -> Limits:
    if limits is UNSET:
        return Limits()
    return Limits.from_cpus(size_of(limits.memory) if limits.memory is not UNSET else None,
                            float(limits.cpus) if limits.cpus is not UNSET else None,
                            limits.pids if limits.pids is not UNSET else None)


def _name(rule: Any) -> str | None:
    return rule.name if rule.name is not UNSET else None


def _syscalls(rules: list[schema.SyscallRule] | Any) -> tuple[SyscallRule, ...]:
    if rules is UNSET:
        return ()
    return tuple(SyscallRule(names=tuple(rule.names), action=rule.action,
                             signal=parse_signal(rule.signal) if rule.signal is not UNSET else 9,
                             name=_name(rule), index=i)
                 for i, rule in enumerate(rules))


def _network(network: schema.Network | Any) -> NetworkPolicy:
    if network is UNSET or network.egress is UNSET:
        return NetworkPolicy()
    egress = network.egress
    rules = egress.rules if egress.rules is not UNSET else []
    return NetworkPolicy(egress_default=egress.default, egress=tuple(
        EgressRule(action=rule.action, cidr=str(ipaddress.ip_network(rule.cidr)),
                   ports=tuple(sorted(set(rule.ports))) if rule.ports is not UNSET else (),
                   protocol=rule.protocol if rule.protocol is not UNSET else None,   # None: tcp and udp
                   name=_name(rule), index=i)
        for i, rule in enumerate(rules)))


def _thresholds(rules: list[schema.Threshold] | Any) -> tuple[Threshold, ...]:
    if rules is UNSET:
        return ()
    return tuple(Threshold(signal=rule.signal, above=above_value(rule.above, rule.signal),
                           for_seconds=parse_duration(rule.for_) if rule.for_ is not UNSET else 0.0,
                           actions=tuple(dict.fromkeys(rule.actions)) if rule.actions is not UNSET else ("alert",),
                           syscall=rule.syscall if rule.syscall is not UNSET else None,
                           name=_name(rule), index=i)
                 for i, rule in enumerate(rules))
