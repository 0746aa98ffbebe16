"""The suggestion engine on a fixture history: what it allows, denies and limits, that its
text passes `corral policy check`, and what the held-out replay reports."""
from __future__ import annotations

import json

import pytest

from agent.policy.check import load_text
from agent.policy.engine import ContainerRef
from agent.policy.history import Behaviour, Seen, destination_key
from agent.policy.merge import merge
from agent.policy.model import Selector
from agent.policy.signals import SignalSample
from agent.policy.suggest import BASELINE, DANGEROUS, observe, policy_name, suggest
from agent.policy.suggest_report import SuggestRequest, suggest_report
from agent.policy.suggest_text import policy_yaml, seccomp_profile
from agent.security.profile import from_docker_json
from agent.syscall_table import known_syscall, load_syscall_table

MiB = 1024 * 1024
KNOWN = known_syscall(load_syscall_table())
T0 = 1_700_000_000.0


def sample(t: float, memory: float = 10 * MiB, cpu: float = 5.0, pids: float = 3.0,
           syscalls: dict | None = None) -> SignalSample:
    return SignalSample(T0 + t, {"memory_bytes": memory, "cpu_percent": cpu, "pids": pids,
                                 "syscalls_per_second": 200.0, "tcp_connects_per_second": 1.0,
                                 "network_tx_bytes_per_second": 1000.0},
                        {k: (v, 0.0) for k, v in (syscalls or {}).items()})


def behaviour(late_syscall: bool = False, late_destination: bool = False, late_memory: bool = False) -> Behaviour:
    """100 s of a web-ish container; the `late_*` things happen only in the last 10 s."""
    samples = [sample(t, memory=(60 * MiB if late_memory and t >= 95 else 10 * MiB),
                      syscalls={"read": 10.0, "write": 5.0}) for t in range(0, 101)]
    syscalls = {name: Seen(T0, T0 + 100, 50) for name in ("read", "write", "openat", "connect", "mmap",
                                                          "close", "socket")}
    if late_syscall:
        syscalls["mkdirat"] = Seen(T0 + 95, T0 + 99, 2)
    destinations = {destination_key("tcp", "10.1.2.3", 5432): Seen(T0 + 1, T0 + 90, 7),
                    destination_key("tcp", "10.1.2.3", 6379): Seen(T0 + 2, T0 + 90, 3),
                    destination_key("tcp", "::ffff:127.0.0.1", 8080): Seen(T0 + 3, T0 + 3, 1)}
    if late_destination:
        destinations[destination_key("tcp", "203.0.113.9", 443)] = Seen(T0 + 97, T0 + 97, 1)
    return Behaviour(ContainerRef("c1", "web-1", "busybox:latest", {"tier": "web"}), tuple(samples),
                     syscalls, destinations)


def made(b: Behaviour | None = None):
    b = b or behaviour()
    observed = observe([b], T0, T0 + 100)
    return suggest(observed, Selector(names=("web-1",)), name=policy_name("web-1"), syscall_known=KNOWN)


def test_allow_list_is_what_was_seen_plus_the_baseline():
    s = made()
    assert set(s.allowed) == {"read", "write", "openat", "connect", "mmap", "close", "socket", *BASELINE}
    profile = seccomp_profile(s, machine="x86_64")
    parsed = from_docker_json(json.dumps(profile), machine="x86_64")
    assert parsed.default_action == "errno"
    assert set(parsed.rules[0].names) == set(s.allowed)


def test_dangerous_syscalls_never_used_are_denied_and_used_ones_are_not():
    b = behaviour()
    b.syscalls["ptrace"] = Seen(T0 + 5, T0 + 6, 4)
    s = made(b)
    assert "unshare" in s.denied and "mount" in s.denied
    assert "ptrace" not in s.denied and ("ptrace", 4) in s.dangerous_used
    assert set(s.denied) <= set(DANGEROUS)
    text = policy_yaml(s)
    assert "# ptrace is not denied: it was called (4 calls seen)" in text


def test_the_text_passes_policy_check_and_says_what_it_came_from():
    s = made()
    text = policy_yaml(s)
    loaded = load_text(text, "suggested.yaml", KNOWN)
    assert loaded.problems == ()
    (policy,) = loaded.policies
    assert policy.name == "suggested-web-1" and policy.mode == "enforce"
    assert policy.selector.matches("web-1", "busybox:latest") and not policy.selector.matches("web-2", "busybox")
    denied = {n for rule in policy.syscalls if rule.action == "deny" for n in rule.names}
    assert denied == set(s.denied)
    # Limits: peaks (10 MiB, 5 % of a CPU, 3 pids) with headroom, above the floors.
    assert policy.limits.memory_bytes == 16 * MiB
    assert policy.limits.cpu_quota_us == 25_000
    assert policy.limits.pids_max == 16
    assert "# peak 10.0 MiB x 1.5, at least 16Mi" in text
    assert "above: 1048576," in text
    assert {t.signal for t in policy.thresholds} == {"syscalls_per_second", "tcp_connects_per_second",
                                                    "network_tx_bytes_per_second"}
    assert text.count("\n    # peak") == 6 and "# 7 connects seen" not in text   # grouped per address
    assert "# 10 connects seen" in text


def test_egress_allows_what_was_reached_and_refuses_other_tcp():
    policy = load_text(policy_yaml(made()), "s.yaml", KNOWN).policies[0]
    effective = merge([policy])
    assert effective.egress_verdict("10.1.2.3", 5432, "tcp")[0]
    assert effective.egress_verdict("10.1.2.3", 6379, "tcp")[0]
    assert effective.egress_verdict("127.0.0.1", 8080, "tcp")[0]       # the v4-mapped one, as IPv4
    assert not effective.egress_verdict("10.1.2.3", 22, "tcp")[0]
    assert not effective.egress_verdict("10.1.2.4", 5432, "tcp")[0]
    assert effective.egress_verdict("10.9.9.9", 53, "udp")[0]          # UDP is not recorded: allowed


def test_policy_name_is_a_valid_policy_name():
    assert policy_name("Web_1!") == "suggested-web-1"
    assert len(policy_name("x" * 200)) <= 63


def test_report_without_anything_late_has_no_findings():
    report = suggest_report([behaviour()], SuggestRequest(Selector(names=("web-1",))), KNOWN)
    assert report["holdout"]["findings"] == []
    assert report["split"] == pytest.approx(T0 + 80)
    assert report["holdout"]["samples"] == 20


def test_holdout_reports_what_only_the_late_part_did():
    b = behaviour(late_syscall=True, late_destination=True, late_memory=True)
    report = suggest_report([b], SuggestRequest(Selector(names=("web-1",))), KNOWN)
    found = {(f["what"], f["detail"].split(":")[0]) for f in report["holdout"]["findings"]}
    assert ("syscall", "mkdirat") in found
    assert ("egress", "tcp 203.0.113.9") in found
    assert any(f["what"] == "limit" and f["detail"].startswith("memory peak 60.0 MiB")
               for f in report["holdout"]["findings"])
    # The policy printed is built from the whole window: the late things are in it.
    policy = load_text(report["policy"], "s.yaml", KNOWN).policies[0]
    assert merge([policy]).egress_verdict("203.0.113.9", 443, "tcp")[0]
    assert "mkdirat" in report["seccomp"]["syscalls"][0]["names"]


def test_no_history_in_the_window_is_a_clear_error():
    from agent.errors import NotFound
    with pytest.raises(NotFound, match="no history for web-1"):
        suggest_report([behaviour()], SuggestRequest(Selector(), since=T0 + 1000), KNOWN)


def test_cli_selectors_become_the_api_fields():
    from agent.cli.policy_suggest import selector_fields
    from agent.errors import InvalidArgument
    assert selector_fields(["name=web-*", "name=api-*", "label.tier=web", "image=busybox"]) == {
        "names": ["web-*", "api-*"], "labels": {"tier": "web"}, "images": ["busybox"]}
    with pytest.raises(InvalidArgument, match="unknown key 'colour'"):
        selector_fields(["colour=red"])
    with pytest.raises(InvalidArgument, match="expected KEY=VALUE"):
        selector_fields(["name"])
