"""Egress rules as the BPF table of probes/enforce.c: the encoding, and the same scan in Python.

`encode(policies)` turns the egress parts of the policies selecting one container into one
`struct egress_table` (structs.EgressTable): every rule becomes one entry per port, in order,
tagged with its policy's index, so each policy keeps its first-match semantics; the policies'
defaults and modes are bit masks. `scan(table, address, port, protocol)` runs the algorithm of
enforce.c's `egress_verdict` on an encoded table, so tests compare the encoding with
agent.policy.merge.EffectivePolicy.egress_verdict (the reference) without a kernel.

This module knows nothing of the policy package: the policy service converts its
EffectivePolicy into `EgressPolicy` values (data flows down, never up).
"""
from __future__ import annotations

import ipaddress
import sys
from dataclasses import dataclass
from typing import Sequence

from agent.errors import InvalidArgument
from agent.probes.structs import (
    EGRESS_ALLOW,
    EGRESS_DEFAULT_RULE,
    EGRESS_DENY,
    EGRESS_MAX_POLICIES,
    EGRESS_MAX_RULES,
    EgressTable,
)

PROTOCOL_NUMBERS = {"tcp": 6, "udp": 17}
ACTIONS = {"allow": EGRESS_ALLOW, "deny": EGRESS_DENY}


@dataclass(frozen=True)
class EgressRuleSpec:
    """One rule: traffic to `cidr` (and `ports`/`protocol` when given) is allowed or denied."""

    action: str                         # allow | deny
    cidr: str
    ports: tuple[int, ...] = ()         # empty: every port
    protocol: str | None = None         # tcp | udp | None: both
    name: str = ""                      # reported back in EgressEvent.rule


@dataclass(frozen=True)
class EgressPolicy:
    """The egress part of one policy: its rules in order, and its default."""

    name: str
    default: str = "allow"              # allow | deny
    rules: tuple[EgressRuleSpec, ...] = ()
    audit: bool = False                 # audit: reported, never refused


@dataclass(frozen=True)
class ScanResult:
    """What the BPF scan decides: `blocked`, and the policy and rule that decided (rule None:
    the policy's default). An audit-only finding has blocked False."""

    blocked: bool
    policy_index: int
    rule_index: int | None


def words(packed: bytes) -> list[int]:
    """Network-order address bytes as the native u32 words the BPF side compares."""
    padded = packed + bytes(16 - len(packed))
    return [int.from_bytes(padded[i:i + 4], sys.byteorder) for i in range(0, 16, 4)]


def encode(policies: Sequence[EgressPolicy], generation: int = 0) -> EgressTable:
    """The table for these policies; InvalidArgument names what does not fit."""
    if len(policies) > EGRESS_MAX_POLICIES:
        raise InvalidArgument(f"{len(policies)} policies with egress rules select one container; "
                              f"the BPF table holds at most {EGRESS_MAX_POLICIES}",
                              hint="merge some of them into one policy")
    table = EgressTable()
    table.generation = generation & 0xFFFFFFFF
    count = 0
    for index, policy in enumerate(policies):
        if policy.default not in ACTIONS:
            raise InvalidArgument(f"policy {policy.name}: egress default {policy.default!r}: expected allow or deny")
        bit = 1 << index
        if policy.default == "deny":
            table.deny_default |= bit
        if policy.audit:
            table.audit |= bit
        for rule_index, rule in enumerate(policy.rules):
            for entry in _entries(policy, rule):
                if count >= EGRESS_MAX_RULES:
                    raise InvalidArgument(
                        f"policy {policy.name}: the egress rules of this container need more than "
                        f"{EGRESS_MAX_RULES} entries (one per port of each rule)",
                        hint="use fewer ports per rule, or a CIDR that covers several rules")
                slot = table.rules[count]
                slot.addr[:], slot.mask[:], slot.port, slot.protocol, slot.family = entry
                slot.action = ACTIONS[rule.action]
                slot.policy = index
                slot.rule = rule_index
                count += 1
    table.count = count
    return table


def _entries(policy: EgressPolicy, rule: EgressRuleSpec):
    if rule.action not in ACTIONS:
        raise InvalidArgument(f"policy {policy.name}: egress rule {rule.name or rule.cidr}: "
                              f"action {rule.action!r}: expected allow or deny")
    if rule.protocol is not None and rule.protocol not in PROTOCOL_NUMBERS:
        raise InvalidArgument(f"policy {policy.name}: egress rule {rule.name or rule.cidr}: "
                              f"protocol {rule.protocol!r}: expected tcp or udp")
    try:
        network = ipaddress.ip_network(rule.cidr)
    except ValueError as error:
        raise InvalidArgument(f"policy {policy.name}: egress rule {rule.name or rule.cidr}: {error}") from None
    addr, mask = words(network.network_address.packed), words(network.netmask.packed)
    protocol = PROTOCOL_NUMBERS.get(rule.protocol, 0) if rule.protocol else 0
    for port in rule.ports or (0,):
        if not 0 <= port <= 65535 or (rule.ports and port == 0):
            raise InvalidArgument(f"policy {policy.name}: egress rule {rule.name or rule.cidr}: "
                                  f"port {port}: expected 1-65535")
        yield addr, mask, port, protocol, network.version


def destination(address: str) -> tuple[int, list[int]]:
    """(family, words) as the BPF programs see a destination: a v4-mapped IPv6 address is the
    IPv4 address it reaches."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.version, words(ip.packed)


def scan(table: EgressTable, address: str, port: int, protocol: str) -> ScanResult | None:
    """enforce.c's egress_verdict on `table`: None when nothing is refused or reported."""
    family, addr = destination(address)
    proto = PROTOCOL_NUMBERS.get(protocol, 0)
    decided = 0
    found: ScanResult | None = None
    for i in range(EGRESS_MAX_RULES):               # unused entries have family 0: no match
        rule = table.rules[i]
        bit = 1 << (rule.policy & 31)
        if decided & bit or not _matches(rule, family, addr, port, proto):
            continue
        decided |= bit
        if rule.action != EGRESS_DENY:
            continue
        if table.audit & bit:
            found = found or ScanResult(False, rule.policy, rule.rule)
            continue
        found = ScanResult(True, rule.policy, rule.rule)
        break
    pending = table.deny_default & ~decided
    enforcing = pending & ~table.audit
    if found is not None and found.blocked:
        enforcing &= (1 << found.policy_index) - 1     # an earlier policy's default is named first
    audited = 0 if found else pending & table.audit
    for p in range(EGRESS_MAX_POLICIES):
        bit = 1 << p
        if enforcing & bit:
            return ScanResult(True, p, None)
        if audited & bit and found is None:
            found = ScanResult(False, p, None)
    return found


def _matches(rule, family: int, addr: list[int], port: int, protocol: int) -> bool:
    if rule.family != family:
        return False
    if rule.port and rule.port != port:
        return False
    if rule.protocol and rule.protocol != protocol:
        return False
    count = 1 if family == 4 else 4
    return all(addr[i] & rule.mask[i] == rule.addr[i] for i in range(count))


def rule_of(policies: Sequence[EgressPolicy], policy_index: int, rule_index: int | None) -> tuple[str, str]:
    """(policy name, rule name) of a scan result or event; rule "" is the policy's default."""
    if not 0 <= policy_index < len(policies):
        return "", ""
    policy = policies[policy_index]
    if rule_index is None or rule_index == EGRESS_DEFAULT_RULE or not 0 <= rule_index < len(policy.rules):
        return policy.name, ""
    return policy.name, policy.rules[rule_index].name
