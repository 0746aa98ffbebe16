"""Egress rules as the BPF table (agent/probes/egress.py) decide exactly what the reference,
EffectivePolicy.egress_verdict, decides: the policies the service converts are encoded, the
Python copy of enforce.c's scan runs on the encoded ctypes table, and both answers (and the
rule each names) are compared on thousands of generated policies and destinations.
"""
from __future__ import annotations

import ipaddress
import random

import pytest

from agent.errors import InvalidArgument
from agent.policy.enforcer import egress_policies, egress_rule_name
from agent.policy.merge import merge
from agent.policy.model import Policy
from agent.probes.egress import EgressPolicy, EgressRuleSpec, destination, encode, rule_of, scan, words
from agent.probes.structs import EGRESS_MAX_POLICIES, EGRESS_MAX_RULES

CIDRS = ["10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.3/32", "0.0.0.0/0", "192.168.0.0/16",
         "127.0.0.0/8", "2001:db8::/32", "2001:db8::1/128", "::/0", "fd00::/8"]
ADDRESSES = ["10.1.2.3", "10.1.2.4", "10.1.9.9", "10.200.0.1", "192.168.1.1", "8.8.8.8", "127.0.0.1",
             "2001:db8::1", "2001:db8::2", "fd00::5", "2001:4860::8888", "::ffff:10.1.2.3"]
PORTS = [22, 53, 80, 443, 8080]


def policy(name: str, default: str = "allow", rules: list[dict] | None = None, mode: str = "enforce") -> Policy:
    egress = {"default": default, "rules": rules or []}
    return Policy.from_dict({"apiVersion": "corral/v1", "kind": "Policy", "metadata": {"name": name},
                             "spec": {"mode": mode, "network": {"egress": egress}}})


def random_policies(rng: random.Random) -> list[Policy]:
    policies = []
    for index in range(rng.randint(1, 3)):
        rules = []
        for _ in range(rng.randint(0, 5)):
            rule = {"action": rng.choice(["allow", "deny"]), "cidr": rng.choice(CIDRS)}
            if rng.random() < 0.5:
                rule["ports"] = rng.sample(PORTS, rng.randint(1, 3))
            if rng.random() < 0.6:
                rule["protocol"] = rng.choice(["tcp", "udp"])
            if rng.random() < 0.3:
                rule["name"] = f"r{len(rules)}"
            rules.append(rule)
        policies.append(policy(f"p{index}", rng.choice(["allow", "deny"]), rules,
                               rng.choice(["enforce", "enforce", "audit"])))
    return policies


def reference(address: str) -> str:
    """egress_verdict sees a v4-mapped address as IPv6; the kernel connects to the IPv4 one."""
    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)
    return str(mapped) if mapped is not None else address


def named(policies: tuple[EgressPolicy, ...], found) -> tuple[str, str]:
    name, rule = rule_of(policies, found.policy_index, found.rule_index)
    return name, egress_rule_name(rule)


def test_the_encoded_table_decides_as_egress_verdict_on_generated_policies():
    rng = random.Random(20240611)
    checked = blocked = 0
    for _ in range(400):
        effective = merge(random_policies(rng))
        policies = egress_policies(effective)
        table = encode(policies)
        for _ in range(20):
            address, port, protocol = rng.choice(ADDRESSES), rng.choice(PORTS), rng.choice(["tcp", "udp"])
            allowed, source = effective.egress_verdict(reference(address), port, protocol)
            found = scan(table, address, port, protocol)
            assert (found is not None and found.blocked) == (not allowed), (policies, address, port, protocol)
            if not allowed:
                assert named(policies, found) == (source.policy, source.rule)
                blocked += 1
            checked += 1
    assert checked == 8000 and 1000 < blocked < 7000       # both answers well represented


def test_audit_policies_are_reported_and_never_refuse():
    rng = random.Random(7)
    reported = 0
    for _ in range(300):
        policies = random_policies(rng)
        effective = merge(policies)
        converted = egress_policies(effective)
        table = encode(converted)
        # What each audit policy alone would do, as if it enforced.
        audit_alone = [merge([policy(p.name, p.network.egress_default,
                                     [{"action": r.action, "cidr": r.cidr, **({"ports": list(r.ports)} if r.ports else {}),
                                       **({"protocol": r.protocol} if r.protocol else {}),
                                       **({"name": r.name} if r.name else {})} for r in p.network.egress])])
                       for p in sorted(policies, key=lambda p: p.name) if p.mode == "audit"]
        for _ in range(10):
            address, port, protocol = rng.choice(ADDRESSES), rng.choice(PORTS), rng.choice(["tcp", "udp"])
            found = scan(table, address, port, protocol)
            if found is not None and found.blocked:
                continue
            would = [e.egress_verdict(reference(address), port, protocol) for e in audit_alone]
            denials = {(s.policy, s.rule) for ok, s in would if not ok}
            assert (found is not None) == bool(denials)
            if found is not None:
                assert named(converted, found) in denials
                reported += 1
    assert reported > 50


def test_several_ports_and_both_protocols_keep_first_match_order():
    effective = merge([policy("web", "deny", [
        {"action": "deny", "cidr": "10.1.2.3/32", "ports": [22, 25], "protocol": "tcp", "name": "no-ssh"},
        {"action": "allow", "cidr": "10.0.0.0/8"}])])
    table = encode(egress_policies(effective))
    assert table.count == 3                          # one entry per port, then the allow
    assert [table.rules[i].port for i in range(3)] == [22, 25, 0]
    assert scan(table, "10.1.2.3", 25, "tcp").blocked
    assert scan(table, "10.1.2.3", 25, "udp") is None
    assert scan(table, "10.9.9.9", 22, "tcp") is None
    assert named(egress_policies(effective), scan(table, "11.0.0.1", 80, "tcp")) == ("web", "network.egress")


def test_a_v4_mapped_destination_is_its_ipv4_address():
    assert destination("::ffff:10.1.2.3") == destination("10.1.2.3") == (4, words(bytes([10, 1, 2, 3])))
    table = encode((EgressPolicy("p", "allow", (EgressRuleSpec("deny", "10.0.0.0/8"),)),))
    assert scan(table, "::ffff:10.1.2.3", 80, "tcp").blocked
    assert scan(table, "2001:db8::1", 80, "tcp") is None    # an IPv4 rule never matches IPv6


def test_addresses_are_in_network_byte_order():
    table = encode((EgressPolicy("p", "allow", (EgressRuleSpec("deny", "10.1.0.0/16"),)),))
    entry = table.rules[0]
    assert bytes(entry.addr)[:4] == bytes([10, 1, 0, 0])
    assert bytes(entry.mask)[:4] == bytes([255, 255, 0, 0])
    assert (entry.family, entry.protocol, entry.port) == (4, 0, 0)


def test_defaults_and_modes_are_bit_masks():
    table = encode((EgressPolicy("a", "deny"), EgressPolicy("b", "allow", audit=True),
                    EgressPolicy("c", "deny", audit=True)), generation=7)
    assert (table.deny_default, table.audit, table.generation, table.count) == (0b101, 0b110, 7, 0)


def test_what_does_not_fit_is_refused_with_the_policy_named():
    many_ports = tuple(range(1, EGRESS_MAX_RULES + 2))
    with pytest.raises(InvalidArgument, match="policy big: .* more than 64 entries"):
        encode((EgressPolicy("big", "allow", (EgressRuleSpec("deny", "10.0.0.0/8", many_ports),)),))
    with pytest.raises(InvalidArgument, match=f"at most {EGRESS_MAX_POLICIES}"):
        encode(tuple(EgressPolicy(f"p{i}", "deny") for i in range(EGRESS_MAX_POLICIES + 1)))
    with pytest.raises(InvalidArgument, match="protocol 'icmp'"):
        encode((EgressPolicy("p", "allow", (EgressRuleSpec("deny", "10.0.0.0/8", protocol="icmp"),)),))


def test_rule_of_names_the_rule_or_the_default():
    policies = (EgressPolicy("p", "deny", (EgressRuleSpec("deny", "10.0.0.0/8", name="egress[0]"),)),)
    assert rule_of(policies, 0, 0) == ("p", "egress[0]")
    assert rule_of(policies, 0, None) == ("p", "")
    assert rule_of(policies, 3, 0) == ("", "")                # an update the loader no longer knows
