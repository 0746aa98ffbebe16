"""The policy model: one from_dict path, unknown keys rejected, every error with its path."""
from __future__ import annotations

import pytest
import yaml

from agent.errors import PolicyError
from agent.policy.build import parse_policy
from agent.policy.model import Policy, Selector

ISSUE_EXAMPLE = """
apiVersion: corral/v1
kind: Policy
metadata:
  name: web-guardrails
spec:
  selector:
    names: ["web-*"]
    images: ["busybox:*"]
    labels: {tier: web}
  mode: enforce
  limits: {memory: 256Mi, cpus: 0.5, pids: 128}
  syscalls:
    - names: [ptrace, mount, umount2, kexec_load, bpf]
      action: deny
    - names: [unshare, setns]
      action: kill
    - names: [chmod]
      action: alert
  network:
    egress:
      default: allow
      rules:
        - {action: deny, cidr: 203.0.113.0/24, ports: [22, 25], protocol: tcp}
  thresholds:
    - signal: memory_percent_of_limit
      above: 90
      for: 10s
      actions: [alert, throttle]
    - signal: syscalls_per_second
      syscall: openat
      above: 50000
      for: 5s
      actions: [alert, freeze]
"""


def doc(spec: dict | None = None, **top) -> dict:
    data = {"apiVersion": "corral/v1", "kind": "Policy", "metadata": {"name": "p"}, "spec": spec or {}}
    data.update(top)
    return data


def errors_of(data, **kwargs) -> dict[str, str]:
    policy, errors = parse_policy(data, **kwargs)
    assert policy is None if errors else policy is not None
    return {e.dotted: e.message for e in errors}


def test_the_issue_example_builds_the_expected_policy():
    policy = Policy.from_dict(yaml.safe_load(ISSUE_EXAMPLE))
    assert policy.name == "web-guardrails"
    assert policy.mode == "enforce"
    assert policy.limits.in_user_units() == {"memory": 256 * 1024 * 1024, "cpus": 0.5, "pids": 128}
    assert [r.action for r in policy.syscalls] == ["deny", "kill", "alert"]
    assert policy.syscalls[1].signal == 9
    rule = policy.network.egress[0]
    assert (rule.action, rule.cidr, rule.ports, rule.protocol) == ("deny", "203.0.113.0/24", (22, 25), "tcp")
    first, second = policy.thresholds
    assert (first.signal, first.above, first.for_seconds, first.actions) == (
        "memory_percent_of_limit", 90.0, 10.0, ("alert", "throttle"))
    assert second.syscall == "openat" and second.rule_id == "thresholds[1]"


def test_defaults_of_a_minimal_policy():
    policy = Policy.from_dict(doc())
    assert policy.mode == "enforce"
    assert policy.selector == Selector()
    assert policy.limits.is_empty()
    assert policy.network.egress_default == "allow"


def test_unknown_keys_are_rejected_at_every_level():
    found = errors_of(doc({"limits": {"memroy": "1Gi"}, "selector": {"name": ["x"]}}, extra=1))
    assert "unknown field 'memroy'" in found["spec.limits.memroy"]
    assert "unknown field 'name'" in found["spec.selector.name"]
    assert "unknown field 'extra'" in found["extra"]


def test_every_error_is_reported_not_only_the_first():
    found = errors_of(doc({
        "mode": "loud",
        "limits": {"memory": "lots", "cpus": 0, "pids": -1},
        "thresholds": [{"signal": "nope", "above": 1, "for": "soon", "actions": ["explode"]}],
    }))
    assert set(found) == {"spec.mode", "spec.limits.memory", "spec.limits.cpus", "spec.limits.pids",
                          "spec.thresholds[0].signal", "spec.thresholds[0].for",
                          "spec.thresholds[0].actions[0]"}
    assert "expected a size like 64Mi" in found["spec.limits.memory"]


def test_from_dict_raises_a_policy_error_naming_source_and_fields():
    with pytest.raises(PolicyError) as info:
        Policy.from_dict(doc({"limits": {"memory": "lots"}, "mode": "x"}), source="web.yaml")
    assert "web.yaml: spec.limits.memory: expected a size" in str(info.value)
    assert "spec.mode: unknown mode 'x'" in str(info.value)


def test_required_fields_and_header_values():
    found = errors_of({"apiVersion": "corral/v2", "kind": "Pol", "metadata": {}})
    assert "expected 'corral/v1'" in found["apiVersion"]
    assert "expected 'Policy'" in found["kind"]
    assert "missing required field 'spec'" in found["(document)"]
    assert "missing required field 'name'" in found["metadata"]


@pytest.mark.parametrize("cidr, message", [
    ("10.0.0.1/8", "did you mean 10.0.0.0/8"),
    ("300.0.0.0/8", "is not a CIDR"),
    ("2001:db8::/129", "is not a CIDR"),
])
def test_bad_cidrs(cidr, message):
    found = errors_of(doc({"network": {"egress": {"rules": [{"action": "deny", "cidr": cidr}]}}}))
    assert message in found["spec.network.egress.rules[0].cidr"]


def test_ports_and_protocols():
    found = errors_of(doc({"network": {"egress": {"rules": [
        {"action": "deny", "cidr": "10.0.0.0/8", "ports": [0, 80, 65536], "protocol": "icmp"}]}}}))
    assert "port 0 is not between 1 and 65535" in found["spec.network.egress.rules[0].ports[0]"]
    assert "port 65536" in found["spec.network.egress.rules[0].ports[2]"]
    assert "unknown protocol 'icmp'" in found["spec.network.egress.rules[0].protocol"]


def test_ipv6_rule_is_accepted():
    policy = Policy.from_dict(doc({"network": {"egress": {"default": "deny", "rules": [
        {"action": "allow", "cidr": "2001:db8::/32", "ports": [443]}]}}}))
    assert policy.network.egress_default == "deny"
    assert policy.network.egress[0].protocol is None


@pytest.mark.parametrize("selector, field", [
    ({"names": []}, "spec.selector.names"),
    ({"images": []}, "spec.selector.images"),
    ({"names": ["web one"]}, "spec.selector.names[0]"),
    ({"names": ["-web"]}, "spec.selector.names[0]"),
    ({"names": ["web-[ab"]}, "spec.selector.names[0]"),
    ({"images": ["Busybox:latest"]}, "spec.selector.images[0]"),
    ({"images": ["busybox::latest"]}, "spec.selector.images[0]"),
    ({"images": ["busybox@sha256:xyz"]}, "spec.selector.images[0]"),
    ({"images": ["a//b"]}, "spec.selector.images[0]"),
])
def test_selectors_that_can_never_match(selector, field):
    assert field in errors_of(doc({"selector": selector}))


@pytest.mark.parametrize("image", ["busybox", "busybox:1.36", "library/busybox:*", "registry.local:5000/team/app:v1",
                                   "ghcr.io/*/*", "busybox@sha256:abcdef0123"])
def test_good_image_references(image):
    assert errors_of(doc({"selector": {"images": [image]}})) == {}


def test_selector_matching():
    sel = Selector(names=("web-*",), images=("busybox:*",), labels={"tier": "web"})
    assert sel.matches("web-1", "busybox:latest", {"tier": "web", "x": "y"})
    assert sel.matches("web-1", "docker.io/library/busybox", {"tier": "web"})
    assert not sel.matches("db-1", "busybox:latest", {"tier": "web"})
    assert not sel.matches("web-1", "alpine:3", {"tier": "web"})
    assert not sel.matches("web-1", "busybox:latest", {})
    assert Selector().matches("anything", "any:image")


def test_an_image_pattern_without_a_tag_matches_every_tag():
    sel = Selector(images=("busybox",))
    assert sel.matches("x", "busybox:1.36") and sel.matches("x", "busybox")
    assert not sel.matches("x", "busyboxes:1")
    assert Selector(images=("busybox:latest",)).matches("x", "busybox")


def test_label_values_are_text():
    policy = Policy.from_dict(doc({"selector": {"labels": {"replicas": 3, "canary": True}}}))
    assert policy.selector.labels == {"replicas": "3", "canary": "true"}


def test_syscall_names_are_checked_when_a_table_is_given():
    known = {"ptrace", "mount"}.__contains__
    found = errors_of(doc({"syscalls": [{"names": ["ptrace", "ptrase"], "action": "deny"}],
                           "thresholds": [{"signal": "syscalls_per_second", "syscall": "opnat", "above": 1}]}),
                      syscall_known=known)
    assert "unknown syscall 'ptrase'" in found["spec.syscalls[0].names[1]"]
    assert "unknown syscall 'opnat'" in found["spec.thresholds[0].syscall"]


def test_kill_rules_take_a_signal_and_others_do_not():
    policy = Policy.from_dict(doc({"syscalls": [{"names": ["setns"], "action": "kill", "signal": "TERM"}]}))
    assert policy.syscalls[0].signal == 15
    found = errors_of(doc({"syscalls": [{"names": ["setns"], "action": "kill", "signal": "BOGUS"},
                                        {"names": ["chmod"], "action": "alert", "signal": 9}]}))
    assert "unknown signal 'BOGUS'" in found["spec.syscalls[0].signal"]
    assert "only used by action: kill" in found["spec.syscalls[1].signal"]


def test_threshold_values():
    policy = Policy.from_dict(doc({"thresholds": [
        {"signal": "memory_bytes", "above": "200Mi", "for": "500ms"},
        {"signal": "network_tx_bytes_per_second", "above": "10Mi", "for": 3},
    ]}))
    assert policy.thresholds[0].above == 200 * 1024 * 1024
    assert policy.thresholds[0].for_seconds == 0.5
    assert policy.thresholds[0].actions == ("alert",)
    assert policy.thresholds[1].for_seconds == 3.0
    found = errors_of(doc({"thresholds": [
        {"signal": "memory_percent_of_limit", "above": 120},
        {"signal": "cpu_percent", "above": "lots"},
        {"signal": "pids", "syscall": "openat", "above": 1},
        {"signal": "pids", "above": 1, "actions": []},
    ]}))
    assert "at most 100" in found["spec.thresholds[0].above"]
    assert "expected a number" in found["spec.thresholds[1].above"]
    assert "syscall only applies" in found["spec.thresholds[2].syscall"]
    assert "non-empty list of actions" in found["spec.thresholds[3].actions"]


def test_rule_names_are_unique_within_a_policy():
    found = errors_of(doc({"syscalls": [{"name": "r", "names": ["chmod"], "action": "alert"}],
                           "thresholds": [{"name": "r", "signal": "pids", "above": 1}]}))
    assert "used twice" in found["spec.thresholds[0].name"]


def test_policy_names_follow_the_label_rules():
    assert "metadata.name" in errors_of(doc(metadata={"name": "Web Guard"}))
    assert errors_of(doc(metadata={"name": "web-guard.v2", "description": "x"})) == {}


def test_a_document_that_is_not_a_mapping():
    assert "expected a mapping" in errors_of(["a", "b"])["(document)"]


def test_a_services_selector_matches_the_replicas_of_those_services():
    sel = Selector(services=("web", "api-*"))
    assert sel.matches("web.1.abc", "busybox", {"corral.service": "web"})
    assert sel.matches("api-v2.3.def", "busybox", {"corral.service": "api-v2"})
    assert not sel.matches("web", "busybox", {})                      # a container named web is no replica
    assert not sel.matches("db.1.abc", "busybox", {"corral.service": "db"})
    policy, errors = parse_policy(doc({"selector": {"services": ["web"]}}))
    assert not errors and policy is not None and policy.selector.services == ("web",)
    assert policy.selector.to_dict() == {"services": ["web"]}
    assert errors_of(doc({"selector": {"services": []}})) == {
        "spec.selector.services": "an empty list matches no container; leave the field out to match every container"}
