"""The Enforcer with doubles: BPF rules pushed when a container is placed (before it runs), a
failure refusing the start of Corral's own container but not an observed one's, probe reports
recorded as violations, rules forgotten at removal. No root, no BPF."""
from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from agent.catalog.bus import ContainerBus, ContainerPlaced, ContainerRemoved
from agent.catalog.catalog import ContainerCatalog
from agent.catalog.entry import OBSERVED, CatalogEntry
from agent.catalog.followers import probes_follow
from agent.cgroups.driver import CgroupPaths
from agent.errors import PolicyError
from agent.events import EventLog
from agent.policy.actions import ActionExecutor
from agent.policy.decider import LibraryDecider
from agent.policy.enforcer import Enforcer
from agent.policy.library import PolicyLibrary
from agent.policy.metrics import PolicyMetrics
from agent.probes.double import ProbeDouble
from agent.probes.events import KillEvent

PTRACE = 101
POLICY = """apiVersion: corral/v1
kind: Policy
metadata: {name: no-ptrace}
spec:
  selector: {names: ["web-*"]}
  syscalls:
    - {names: [ptrace], action: kill}
"""


class Driver:
    def freeze(self, paths): ...
    def thaw(self, paths): ...


def entry(name: str, cgroup_id: int, **fields) -> CatalogEntry:
    fields.setdefault("state", "created")
    return CatalogEntry(id=name * 4, name=name, image="busybox", cgroup=CgroupPaths(f"/cg/{name}"),
                        cgroup_id=cgroup_id, **fields)


@pytest.fixture
def world(tmp_path):
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "p.yaml").write_text(POLICY)
    library = PolicyLibrary(str(folder), syscall_known=lambda name: True)
    library.reload()
    events, registry, probes = EventLog(tmp_path / "events.jsonl"), CollectorRegistry(), ProbeDouble()
    decider = LibraryDecider(library)
    enforcer = Enforcer(effective=decider.effective, cgroups=Driver(), events=events,
                        metrics=PolicyMetrics(registry), executor=ActionExecutor(Driver(), events=events),
                        probes=probes, syscall_name={PTRACE: "ptrace"}.get,
                        syscall_number={"ptrace": PTRACE}.get)
    bus, catalog = ContainerBus(), ContainerCatalog()
    bus.subscribe("catalogue", catalog.apply)
    bus.subscribe("probes", probes_follow(probes))          # as the daemon: probes watch, then rules
    bus.subscribe("policy enforcer", enforcer.on_container)
    return bus, enforcer, probes, events, registry, decider


def test_kill_rules_are_in_the_probes_when_the_container_is_placed(world):
    bus, _, probes, events, registry, _ = world
    bus.publish(ContainerPlaced(entry("web-1", 21)))
    assert probes.kill == {21: {PTRACE: 9}}
    assert [e.attributes["kill"] for e in events.since() if e.action == "enforce"] == [["ptrace"]]
    assert registry.get_sample_value("corral_policy_actions_total", {"action": "enforce", "result": "ok"}) == 1


def test_a_container_whose_kill_rule_cannot_be_pushed_does_not_start(world):
    bus, _, probes, _, registry, _ = world
    probes.probe_status["syscalls"] = False      # the kill table cannot be written
    with pytest.raises(PolicyError, match="web-1: cannot enforce"):
        bus.publish(ContainerPlaced(entry("web-1", 21)))
    assert registry.get_sample_value("corral_policy_actions_total", {"action": "enforce", "result": "failed"}) == 1


def test_an_observed_container_already_runs_so_a_failed_push_is_retried_not_raised(world):
    bus, enforcer, probes, _, _, decider = world
    probes.probe_status["syscalls"] = False      # the kill table cannot be written
    observed = entry("web-docker", 31, origin=OBSERVED, runtime="docker", state="running")
    bus.publish(ContainerPlaced(observed))           # no exception
    probes.probe_status["syscalls"] = True
    enforcer.sync([observed], {observed.id: decider.effective(observed.name, observed.image)})
    assert probes.kill == {31: {PTRACE: 9}}


def test_a_reported_kill_is_a_violation_with_its_rule_and_events_are_rate_limited(world):
    bus, enforcer, _, events, registry, _ = world
    web = entry("web-1", 21)
    bus.publish(ContainerPlaced(web))
    for offset in (0.0, 0.1, 0.2):
        enforcer.record_enforcement(web, KillEvent(21, 4242, "sh", PTRACE, 9, 0, 1000.0 + offset))
    assert registry.get_sample_value("corral_policy_violations_total",
                                     {"policy": "no-ptrace", "rule": "syscalls[0]", "action": "kill",
                                      "name": "web-1"}) == 3
    violations = [e for e in events.since() if e.action == "violation"]
    assert len(violations) == 1 and violations[0].attributes["syscall"] == "ptrace"


def test_removal_forgets_the_rules_pushed(world):
    bus, enforcer, _, _, _, decider = world
    web = entry("web-1", 21)
    bus.publish(ContainerPlaced(web))
    bus.publish(ContainerRemoved(web))
    view = enforcer.bpf_view(entry("web-1", 21, state="running"), decider.effective("web-1", "busybox"))
    assert view["syscall_kill"]["state"] == "being applied (within one evaluation interval)"   # nothing pushed now
