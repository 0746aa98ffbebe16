"""`corral policy prove`: rules judged on what the kernel holds (agent/policy/prove.py) and the
prover's gauge, lost/restored events and repair (agent/policy/prover.py), over the probe double
(tests/unit/test_probe_interface.py keeps it equal to the real ProbeSet's interface)."""
from __future__ import annotations

import dataclasses

import pytest
from prometheus_client import CollectorRegistry

from agent.catalog.bus import ContainerBus, ContainerPlaced, ContainerStarted
from agent.catalog.catalog import ContainerCatalog
from agent.catalog.entry import OBSERVED, CatalogEntry
from agent.catalog.followers import probes_follow
from agent.cgroups.driver import CgroupPaths, Limits
from agent.events import EventLog
from agent.policy.actions import ActionExecutor
from agent.policy.decider import LibraryDecider
from agent.policy.enforcer import Enforcer
from agent.policy.library import PolicyLibrary
from agent.policy.metrics import PolicyMetrics
from agent.policy.prove import Evidence, prove, seccomp_modes
from agent.policy.prover import EnforcementProver
from agent.probes.double import ProbeDouble
from agent.probes.interface import KernelEnforcement

PTRACE, MOUNT = 101, 165
POLICY = """apiVersion: corral/v1
kind: Policy
metadata: {name: guard}
spec:
  selector: {names: ["web-*"]}
  limits: {memory: 64Mi, pids: 50}
  syscalls:
    - {names: [ptrace], action: kill}
    - {names: [mount], action: deny}
  network:
    egress:
      default: deny
      rules:
        - {name: dns, action: allow, cidr: 10.0.0.53/32, ports: [53], protocol: udp}
"""
NUMBERS = {"ptrace": PTRACE, "mount": MOUNT}.get


class Driver:
    """The cgroup reads the prover makes (and the limits the repair writes)."""

    def __init__(self) -> None:
        self.limits = Limits(memory_bytes=64 << 20, pids_max=50)
        self.pids = [10, 11]

    def read_limits(self, paths):
        return self.limits

    def procs(self, paths):
        return list(self.pids)

    def set_limits(self, paths, limits):
        self.limits = limits


@pytest.fixture
def effective(tmp_path):
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "p.yaml").write_text(POLICY)
    library = PolicyLibrary(str(folder), syscall_known=lambda name: True)
    library.reload()
    return LibraryDecider(library).effective


def kinds(proofs):
    return {(p.kind, p.rule): (p.enforced, p.reason) for p in proofs}


def test_every_enforcing_rule_is_judged_on_the_kernel_evidence(effective):
    good = Evidence(KernelEnforcement({PTRACE: 9}, True, ()), seccomp={1: 2, 2: 2},
                    filter_denied=("mount",), limits=Limits(memory_bytes=64 << 20, pids_max=50))
    proofs = prove("c1", "web-1", effective("web-1", "busybox", {}), good, NUMBERS)
    assert {k: v[0] for k, v in kinds(proofs).items()} == {
        ("syscall_kill", "syscalls[0]"): True, ("syscall_deny", "syscalls[1]"): True,
        ("egress", "network.egress"): True, ("limits", "limits.memory"): True, ("limits", "limits.pids"): True}


def test_each_kind_of_loss_is_named(effective):
    bad = Evidence(KernelEnforcement({}, True, ("egress_connect4",)), seccomp={1: 2, 2: 0},
                   filter_denied=("mount",), limits=Limits(memory_bytes=None, pids_max=50))
    found = kinds(prove("c1", "web-1", effective("web-1", "busybox", {}), bad, NUMBERS))
    assert found[("syscall_kill", "syscalls[0]")] == (False, "ptrace is not in the kernel's kill table for this container")
    assert found[("syscall_deny", "syscalls[1]")] == (False, "process 2 runs without a seccomp filter")
    assert found[("egress", "network.egress")] == (False, "egress programs not attached to its cgroup: egress_connect4")
    assert found[("limits", "limits.memory")][1].startswith("the cgroup's memory limit is unlimited")
    assert found[("limits", "limits.pids")] == (True, "")


def test_a_filter_made_before_the_rule_and_an_observed_container(effective):
    policy = effective("web-1", "busybox", {})
    older = Evidence(KernelEnforcement({PTRACE: 9}, True, ()), seccomp={1: 2}, filter_denied=(), limits=Limits())
    assert "next start" in kinds(prove("c1", "web-1", policy, older, NUMBERS))[("syscall_deny", "syscalls[1]")][1]
    observed = prove("c1", "web-1", policy, Evidence(None, "not loaded", observed=True, limits=Limits()), NUMBERS)
    deny = next(p for p in observed if p.kind == "syscall_deny")
    assert not deny.applicable and not deny.enforced
    assert kinds(observed)[("egress", "network.egress")] == (False, "the probes cannot be read: not loaded")


def test_seccomp_modes_reads_proc_status(tmp_path):
    for pid, mode in ((7, 2), (8, 0)):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "status").write_text(f"Name:\tsh\nSeccomp:\t{mode}\nSeccomp_filters:\t1\n")
    assert seccomp_modes([7, 8, 9], str(tmp_path)) == {7: 2, 8: 0}


@pytest.fixture
def prover(effective, tmp_path):
    events, probes, driver = EventLog(tmp_path / "events.jsonl"), ProbeDouble(), Driver()
    metrics = PolicyMetrics(CollectorRegistry())
    enforcer = Enforcer(effective=effective, cgroups=driver, events=events, metrics=metrics,
                        executor=ActionExecutor(driver, events=events), probes=probes,
                        syscall_name={PTRACE: "ptrace"}.get, syscall_number=NUMBERS)
    bus, catalog = ContainerBus(), ContainerCatalog()
    bus.subscribe("catalogue", catalog.apply)
    bus.subscribe("probes", probes_follow(probes))
    bus.subscribe("policy enforcer", enforcer.on_container)
    web = CatalogEntry(id="w" * 12, name="web-1", image="busybox", cgroup=CgroupPaths("/cg/web"),
                       cgroup_id=21, state="created", origin=OBSERVED)
    bus.publish(ContainerPlaced(web))
    bus.publish(ContainerStarted(dataclasses.replace(web, state="running")))
    proving = EnforcementProver(catalog=catalog, effective=effective, cgroups=driver, probes=probes,
                                enforcer=enforcer, events=events, gauge=metrics.enforced, number=NUMBERS,
                                interval=0, proc=str(tmp_path))
    return proving, probes, events, metrics


def gauge(metrics, kind):
    return {s.labels["reason"]: s.value for m in metrics.enforced.collect() for s in m.samples
            if s.labels["kind"] == kind}


def test_a_lost_rule_reads_0_is_recorded_and_put_back(prover):
    proving, probes, events, metrics = prover
    proving.prove()
    assert gauge(metrics, "egress") == {"": 1.0}
    probes.tampered.add(21)                       # detached behind Corral's back
    lost = [p for p in proving.prove() if p.kind == "egress"]
    assert [(p.enforced, p.reason) for p in lost] == [(False, "egress programs not attached to its cgroup: egress")]
    assert gauge(metrics, "egress") == {"egress programs not attached to its cgroup: egress": 0.0}
    probes.kill.pop(21)                            # the kill table emptied too
    probes.tampered.discard(21)                    # what re-pushing the rules does to the double
    repaired = proving.prove(repair=True)
    assert all(p.enforced for p in repaired if p.applicable)
    assert probes.kill == {21: {PTRACE: 9}}
    assert gauge(metrics, "egress") == {"": 1.0}
    actions = [(e.action, e.attributes["kind"]) for e in events.since() if e.action.startswith("enforcement_")]
    assert ("enforcement_lost", "egress") in actions and ("enforcement_restored", "egress") in actions
    assert ("enforcement_lost", "syscall_kill") in actions and ("enforcement_restored", "syscall_kill") in actions


def test_kill_order_the_earliest_wins_and_is_proved_on_every_process(tmp_path):
    from agent.policy.merge import merge
    from agent.policy.model import Policy
    policies = [Policy.from_dict({"apiVersion": "corral/v1", "kind": "Policy", "metadata": {"name": name},
                                  "spec": {"limits": {"killOrder": order}}})
                for name, order in (("keep", "last"), ("spare", "early"), ("watch", "first"))]
    policies[2] = Policy.from_dict({"apiVersion": "corral/v1", "kind": "Policy", "metadata": {"name": "watch"},
                                    "spec": {"mode": "audit", "limits": {"killOrder": "first"}}})
    effective = merge(policies)
    assert effective.kill_order.value == 500 and effective.kill_order.source.policy == "spare"
    assert effective.to_dict()["limits"]["kill_order"] == {"value": 500, "from": "spare/limits.killOrder"}
    right = Evidence(None, "x", limits=Limits(), oom_adj={1: 500, 2: 500}, seccomp={}, filter_denied=())
    wrong = Evidence(None, "x", limits=Limits(), oom_adj={1: 500, 2: 0}, seccomp={}, filter_denied=())
    assert kinds(prove("c", "n", effective, right, NUMBERS)) == {("limits", "limits.killOrder"): (True, "")}
    assert kinds(prove("c", "n", effective, wrong, NUMBERS)) == {
        ("limits", "limits.killOrder"): (False, "process 2 has oom_score_adj 0, the kill order wants 500")}


def test_the_enforcer_writes_the_kill_order_and_resets_it_when_dropped(tmp_path):
    from agent.policy.kill_order import read
    from agent.policy.merge import merge
    from agent.policy.model import Policy
    for pid in (5, 6):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "oom_score_adj").write_text("0\n")
    driver, events = Driver(), EventLog(tmp_path / "events.jsonl")
    driver.pids = [5, 6]
    enforcer = Enforcer(effective=lambda *a: None, cgroups=driver, events=events,
                        metrics=PolicyMetrics(CollectorRegistry()), executor=ActionExecutor(driver, events=events),
                        proc=str(tmp_path))
    web = CatalogEntry(id="w" * 12, name="web-1", image="busybox", cgroup=CgroupPaths("/cg/web"), cgroup_id=21)
    late = merge([Policy.from_dict({"apiVersion": "corral/v1", "kind": "Policy", "metadata": {"name": "p"},
                                    "spec": {"limits": {"killOrder": "late"}}})])
    enforcer.apply_kill_order(web, late)
    assert read([5, 6], str(tmp_path)) == {5: -500, 6: -500}
    enforcer.apply_kill_order(web, merge([]))
    assert read([5, 6], str(tmp_path)) == {5: 0, 6: 0}


def test_canary_trials_pick_a_denied_destination_and_safe_kill_rules():
    from agent.policy.canary import DENIED_BY_DEFAULT, trials
    from agent.policy.merge import merge
    from agent.policy.model import Policy

    def policy(spec):
        return merge([Policy.from_dict({"apiVersion": "corral/v1", "kind": "Policy", "metadata": {"name": "p"},
                                        "spec": spec})])
    numbers = {"syslog": 103, "ptrace": PTRACE, "reboot": 169}.get
    rules = policy({"syscalls": [{"names": ["syslog", "reboot"], "action": "kill"},
                                 {"names": ["ptrace"], "action": "kill"}, {"names": ["ptrace"], "action": "alert"}],
                    "network": {"egress": {"default": "allow", "rules": [
                        {"action": "deny", "cidr": "10.9.0.0/16", "ports": [443], "protocol": "tcp"}]}}})
    found = {(t.kind, t.connect, t.nr) for t in trials(rules, numbers)}
    # reboot is never tried; ptrace is watched by an alert rule, which a trial would raise
    assert found == {("egress", "10.9.0.1:443", -1), ("syscall_kill", "", 103)}
    closed = trials(policy({"network": {"egress": {"default": "deny", "rules": [
        {"action": "allow", "cidr": "192.0.2.0/24"}]}}}), numbers)
    assert closed == []          # the default's address is allowed by a rule: nothing denied to try
    assert trials(policy({"network": {"egress": {"default": "deny"}}}), numbers)[0].connect == \
        f"{DENIED_BY_DEFAULT[0]}:{DENIED_BY_DEFAULT[1]}"
