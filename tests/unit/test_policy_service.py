"""PolicyService driven by hand: a policy folder in a tmp dir, an in-memory cgroup driver, a
catalogue and fake clock, a private Prometheus registry. No root, no threads."""
from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from agent.catalog.catalog import ContainerCatalog
from agent.catalog.entry import CatalogEntry
from agent.cgroups.double import CgroupDouble
from agent.cgroups.driver import CgroupPaths, Limits
from agent.errors import NotFound, PolicyError
from agent.events import EventLog
from agent.policy.library import PolicyLibrary
from agent.policy.service import PolicyService

MiB = 1024 * 1024


class Catalog(ContainerCatalog):
    """The catalogue, with Corral's own containers added as the runtime would publish them."""

    def add(self, name: str, memory: int | None = None) -> CatalogEntry:
        entry = CatalogEntry(id=name * 4, name=name, image="busybox", cgroup=CgroupPaths(f"/cg/{name}"),
                             cgroup_id=len(self) + 10, requested=Limits(memory_bytes=memory))
        self.put(entry)
        return entry


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


POLICY = """apiVersion: corral/v1
kind: Policy
metadata: {name: web}
spec:
  selector: {names: ["web-*"]}
  limits: {memory: MEMORY}
  thresholds:
    - {name: big, signal: memory_bytes, above: 10Mi, for: 2s, actions: [alert, freeze]}
"""


@pytest.fixture
def world(tmp_path):
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "web.yaml").write_text(POLICY.replace("MEMORY", "64Mi"))
    driver, runtime, clock, registry = CgroupDouble(), Catalog(), Clock(), CollectorRegistry()
    events = EventLog(tmp_path / "events.jsonl")
    service = PolicyService(PolicyLibrary(str(folder), syscall_known=lambda name: True), catalog=runtime,
                            cgroups=driver, events=events, registry=registry, clock=clock)
    service.reload()
    return service, folder, driver, runtime, clock, registry, events


def value(registry, metric_name, **labels):
    return registry.get_sample_value(metric_name, labels) or 0.0


def test_a_broken_edit_keeps_the_previous_policy_and_is_reported(world):
    service, folder, driver, runtime, clock, registry, events = world
    web = runtime.add("web-1", memory=128 * MiB)
    assert value(registry, "corral_policy_loaded", policy="web", mode="enforce") == 1
    (folder / "web.yaml").write_text(POLICY.replace("MEMORY", "32Mi"))
    service.reload()
    assert driver.limits[web.cgroup.unified].memory_bytes == 32 * MiB     # live, strictest wins
    (folder / "web.yaml").write_text(POLICY.replace("MEMORY", "lots"))
    service.reload()
    assert value(registry, "corral_policy_load_errors_total") == 1
    assert [p.name for p in service.library.policies()] == ["web"]
    assert service.policy_for("web-2", "busybox").memory.value == 32 * MiB
    error = [e for e in events.since() if e.action == "load_error"][0]
    assert "spec.limits.memory" in error.attributes["problems"][0]
    assert error.attributes["kept"] == "previous version"
    assert list(service.queries.list_policies()["problems"]) == [str(folder / "web.yaml")]


def test_a_threshold_fires_after_its_hold_freezes_and_unfreeze_resolves_it(world):
    service, folder, driver, runtime, clock, registry, events = world
    web = runtime.add("web-1")
    paths = web.cgroup.unified
    driver.memory[paths] = 20 * MiB
    for _ in range(3):                  # t = 1000, 1001: pending; 1002: held 2 s, fires
        fired = [v for e in service.evaluate() for v in e.violations]
        clock.now += 1
    assert len(fired) == 1 and fired[0].time - fired[0].since == 2.0
    assert paths in driver.frozen
    assert value(registry, "corral_policy_violations_total", policy="web", rule="big", action="freeze",
                 name="web-1") == 1
    assert service.queries.explain("web-1")["states"][0]["phase"] == "firing"
    answer = service.queries.unfreeze("web-1")
    assert answer["resolved"] == ["web/big"] and paths not in driver.frozen
    assert [e.attributes["reason"] for e in events.since() if e.action == "resolved"] == ["unfrozen"]


def test_a_removed_container_resolves_its_firing_rules(world):
    service, folder, driver, runtime, clock, registry, events = world
    web = runtime.add("web-1")
    driver.memory[web.cgroup.unified] = 20 * MiB
    for _ in range(3):
        service.evaluate()
        clock.now += 1
    runtime.remove(web.id)
    gone = service.evaluate()
    assert [r.reason for e in gone for r in e.resolutions] == ["container gone"]
    assert service.engine.states(web.id) == []


def test_replay_of_a_broken_file_is_a_policy_error(world):
    service = world[0]
    with pytest.raises(PolicyError, match="proposed.yaml:"):
        service.queries.replay("apiVersion: corral/v1\nkind: Policy\nmetadata: {name: p}\nspec: {mode: never}\n",
                       "proposed.yaml", 0.0)


def test_observed_containers_are_evaluated_limited_and_told_what_does_not_apply(tmp_path):
    from agent.discovery.classify import ForeignContainer
    from agent.discovery.observed import ObservedContainer

    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "web.yaml").write_text(POLICY.replace("MEMORY", "64Mi") + "  syscalls:\n"
                                     "    - {names: [ptrace], action: deny}\n")
    driver, clock, registry = CgroupDouble(), Clock(), CollectorRegistry()
    events = EventLog(tmp_path / "events.jsonl")
    paths = CgroupPaths(unified="/sys/fs/cgroup/system.slice/docker-abc.scope")
    foreign = ObservedContainer(
        container=ForeignContainer(id="abc", name="web-docker", runtime="docker",
                                   cgroup="/system.slice/docker-abc.scope", image="nginx:1"),
        cgroup=paths, cgroup_id=4242, first_seen=clock.now, started_at=clock.now)
    driver.limits[paths.unified] = Limits(memory_bytes=512 * MiB)
    catalog = ContainerCatalog()
    catalog.put(foreign.entry())
    service = PolicyService(PolicyLibrary(str(folder), syscall_known=lambda name: True),
                            catalog=catalog, cgroups=driver, events=events, registry=registry, clock=clock)
    service.reload()
    service.apply_live_limits()
    assert driver.limits[paths.unified].memory_bytes == 64 * MiB      # tightened, never loosened
    driver.memory[paths.unified] = 20 * MiB
    for _ in range(3):
        service.evaluate()
        clock.now += 1
    assert paths.unified in driver.frozen
    not_applicable = [e for e in events.since() if e.action == "not_applicable"]
    assert len(not_applicable) == 1 and not_applicable[0].name == "web-docker"


def test_explain_on_a_service_explains_each_replica(world):
    service, folder, driver, runtime, clock, registry, events = world
    for slot in (2, 1):
        runtime.put(CatalogEntry(id=f"{slot}" * 64, name=f"web-svc.{slot}.abc", image="busybox",
                                 cgroup=CgroupPaths(f"/cg/r{slot}"), cgroup_id=50 + slot,
                                 labels={"corral.service": "web-svc", "corral.service.slot": str(slot)}))
    answer = service.queries.explain("web-svc")
    assert answer["service"] == "web-svc"
    assert [r["name"] for r in answer["replicas"]] == ["web-svc.1.abc", "web-svc.2.abc"]
    with pytest.raises(NotFound, match="no such container or service: nothing"):
        service.queries.explain("nothing")
