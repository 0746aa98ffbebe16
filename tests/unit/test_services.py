"""The reconciler's passes over an in-memory runtime (no thread: each pass is called), the
manager's verbs and health events; the fakes test_services_model.py shares."""
from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from agent.catalog.bus import ContainerHealth, ContainerStopped
from agent.errors import Conflict, NotFound
from agent.events import EventLog
from agent.network.model import PortMapping
from agent.services.balancer import Balancer, service_tag
from agent.services.manager import ServiceManager
from agent.services.metrics import ServiceCollector, ServiceFigures
from agent.services.model import Service, ServiceChange, ServiceSpec
from agent.services.reconciler import Context, ServiceWorker
from agent.services.replicas import replica_spec, replicas_of
from agent.services.store import ServiceStore
from tests.unit.fake_runtime import FakeRuntime

PORT = PortMapping(host_port=8080, container_port=80)


def spec(**fields) -> ServiceSpec:
    return ServiceSpec.from_dict({"name": "web", "image": "busybox", "replicas": 3,
                                  "port": PORT.to_dict(), **fields})


# ---- fakes -----------------------------------------------------------------------------

class FakeNat:
    """NatTable's methods the balancer uses, over a dict of rules by tag."""

    name = "corral"

    def __init__(self) -> None:
        self.by_tag: dict[str, list[dict]] = {}
        self.calls = 0

    def replace_tagged(self, tag: str, rules: list[dict]) -> None:
        self.calls += 1
        self.by_tag[tag] = rules

    def remove_tagged(self, tag: str) -> int:
        return len(self.by_tag.pop(tag, []))

    def rules(self) -> list[dict]:
        """As `list table` shows the rules: each with its comment and its counters' values."""
        return [{**command["add"]["rule"], "expr": [{"counter": {"packets": 2, "bytes": 120}} if "counter" in item
                                                    else item for item in command["add"]["rule"]["expr"]]}
                for commands in self.by_tag.values() for command in commands]

    def tags(self) -> set[str]:
        return set(self.by_tag)


def proc_tree(tmp_path: Path, pid: int, lines: list[str]) -> Path:
    net = tmp_path / str(pid) / "net"
    net.mkdir(parents=True)
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    (net / "tcp").write_text(header + "".join(line + "\n" for line in lines))
    return tmp_path


# ---- the reconciler ---------------------------------------------------------------------

class Host:
    """A FakeRuntime whose replicas get addresses and listen on port 80 in a /proc fixture."""

    def __init__(self, tmp_path: Path) -> None:
        self.runtime = FakeRuntime(EventLog(tmp_path / "events.jsonl"))
        self.proc = proc_tree(tmp_path / "proc", 4242, [
            "0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1"])
        self.count = 0
        self.crash: set[str] = set()      # commands whose replicas exit at once

        def on_start(container) -> None:
            self.count += 1
            container.network = {"address": f"10.0.0.{self.count}"}
            if " ".join(container.spec.command) in self.crash:
                self.runtime.finish(container.id, 3)
        self.runtime.on_start = on_start
        self.nat = FakeNat()
        self.store = ServiceStore(tmp_path)
        self.context = Context(runtime=self.runtime, store=self.store,  # type: ignore[arg-type]
                               balancer=Balancer(self.nat), events=self.runtime.events, proc=self.proc)

    def worker(self, service: Service) -> ServiceWorker:
        self.store.save(service)
        return ServiceWorker(service.name, self.context)

    def running(self, name: str = "web"):
        return [r for r in replicas_of(self.runtime.list(all=True), name) if r.running]

    def balanced(self) -> list[str]:
        rules = self.nat.by_tag.get(service_tag("web")) or []
        last = rules[0]["add"]["rule"]["expr"][-1] if rules else {}
        return [address for _, address in last["dnat"]["addr"]["map"]["data"]["set"]] if "dnat" in last else []


def fast(**fields) -> ServiceSpec:
    return spec(stop_grace_period=0, update={"monitor": 0, **fields.pop("update", {})}, **fields)


def test_a_pass_fills_every_slot_and_balances_over_the_ready_replicas(tmp_path):
    host = Host(tmp_path)
    worker = host.worker(Service(spec=fast()))
    worker.converge()
    running = host.running()
    assert [r.slot for r in running] == [1, 2, 3]
    assert running[0].container.spec.labels["corral.service"] == "web"
    assert host.balanced() == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    worker.converge()
    assert len(host.running()) == 3 and host.count == 3          # nothing started twice


def test_an_exited_replica_is_replaced_and_noted(tmp_path):
    host = Host(tmp_path)
    worker = host.worker(Service(spec=fast()))
    worker.converge()
    victim = host.running()[1]
    host.runtime.finish(victim.id, 137)
    worker.converge()
    assert [r.slot for r in host.running()] == [1, 3]     # a young replica died: the slot backs off
    worker.slots[2].not_before = 0
    worker.converge()
    assert [r.slot for r in host.running()] == [1, 2, 3] and victim.id not in {r.id for r in host.running()}
    history = host.store.get("web").history
    assert [(p.name, p.state, p.exit_code) for p in history] == [(victim.name, "exited", 137)]


def test_restart_condition_none_leaves_the_slot_empty(tmp_path):
    host = Host(tmp_path)
    worker = host.worker(Service(spec=fast(replicas=1, restart_condition="none")))
    worker.converge()
    host.runtime.finish(host.running()[0].id, 0)
    worker.converge()
    worker.converge()
    assert host.running() == [] and worker.slots[1].complete


def test_scaling_down_drains_the_highest_slots(tmp_path):
    host = Host(tmp_path)
    worker = host.worker(Service(spec=fast(replicas=5)))
    worker.converge()
    host.store.modify("web", lambda s: s.replace(spec=ServiceChange(replicas=2).apply(s.spec)))
    worker.converge()
    assert [r.slot for r in host.running()] == [1, 2] and len(host.balanced()) == 2
    stops = [call for call in host.runtime.calls if call[0] == "stop"]
    assert len(stops) == 3 and all(call[2] == 0 for call in stops)


@pytest.mark.parametrize("order", ["stop-first", "start-first"])
def test_a_rolling_update_replaces_every_replica(tmp_path, order):
    host = Host(tmp_path)
    worker = host.worker(Service(spec=fast(update={"order": order, "parallelism": 2})))
    worker.converge()
    old = {r.id for r in host.running()}
    host.store.modify("web", lambda s: s.updated(ServiceChange(env_add=["X=1"]).apply(s.spec), 1.0))
    for _ in range(4):
        worker.converge()
    running = host.running()
    assert len(running) == 3 and not old & {r.id for r in running} and all(r.version == 2 for r in running)
    assert host.store.get("web").update_state == "completed"
    assert sorted(host.balanced()) == sorted(r.address for r in running)


@pytest.mark.parametrize("action, final", [("rollback", "rollback_completed"), ("pause", "paused")])
def test_a_failed_update_pauses_or_rolls_back(tmp_path, action, final):
    host = Host(tmp_path)
    host.crash.add("sh -c exit 3")
    worker = host.worker(Service(spec=fast(update={"failure_action": action})))
    worker.converge()
    host.store.modify("web", lambda s: s.updated(ServiceChange(command=["sh", "-c", "exit 3"]).apply(s.spec), 1.0))
    for _ in range(6):
        worker.converge()
        for state in worker.slots.values():
            state.not_before = 0
    service = host.store.get("web")
    assert service.update_state == final and "exited with code 3" in service.update_message
    if action == "rollback":
        assert service.spec.command == [] and len(host.running()) == 3
        assert all(r.version == service.version == 1 for r in host.running())


# ---- the manager ------------------------------------------------------------------------

class Images:
    def get(self, reference: str):
        if reference not in ("busybox", "busybox:v2"):
            raise NotFound(f"no such image: {reference}")
        return reference


class Networks:
    nat = FakeNat()

    def __init__(self) -> None:
        self.reserved: dict = {}

    def attachments(self):
        return []

    def get(self, name: str):
        raise NotFound(f"no such network: {name}")

    def reserve_port(self, owner, port) -> None:
        self.reserved[owner] = port

    def release_port(self, owner) -> None:
        self.reserved.pop(owner, None)


def test_the_manager_refuses_bad_input_and_saves_nothing(tmp_path):
    host = Host(tmp_path)
    manager = ServiceManager(tmp_path, host.runtime, Images(), host.runtime.events, Networks())
    with pytest.raises(NotFound, match="image 'nope' is not on this host"):
        manager.create(ServiceSpec(name="web", image="nope"))
    assert manager.list() == [] and not host.store.exists("web")
    with pytest.raises(NotFound, match="no such network: elsewhere"):
        manager.create(ServiceSpec(name="web", image="busybox", network="elsewhere"))
    assert manager.list() == [] and manager.networks.reserved == {}
    with pytest.raises(NotFound):
        manager.scale("web", 2)
    manager.close()


def test_the_manager_runs_a_service_through_its_worker(tmp_path):
    host = Host(tmp_path)
    manager = ServiceManager(tmp_path, host.runtime, Images(), host.runtime.events, None)
    try:
        manager.create(ServiceSpec(name="web", image="busybox", replicas=2))
        with pytest.raises(Conflict, match="already exists"):
            manager.create(ServiceSpec(name="web", image="busybox"))
        assert manager.wait_converged("web", 10)
        assert manager.list()[0]["running"] == 2 and len(manager.tasks("web")) == 2
        assert manager.figures() == [ServiceFigures("web", desired=2, running=2, exits=0)]
        registry = CollectorRegistry()
        registry.register(ServiceCollector(manager.figures))
        assert registry.get_sample_value("corral_service_replicas_running", {"service": "web"}) == 2
        replica = host.running()[0]
        host.runtime.write_log(replica.id, 1, b"hello\nworld")
        out = b"".join(manager.logs("web"))
        assert f"{replica.name} | hello\n".encode() in out and f"{replica.name} | world\n".encode() in out
        manager.on_container(ContainerStopped(_entry(replica.container)))   # wakes the worker
        with pytest.raises(Conflict, match="no previous spec"):
            manager.rollback("web")
        assert manager.update("web", ServiceChange(image="busybox:v2")).version == 2
        with pytest.raises(NotFound, match="nope"):
            manager.update("web", ServiceChange(image="nope"))
        assert manager.inspect("web")["spec"]["image"] == "busybox:v2"
        manager.remove("web")
        assert manager.list() == [] and host.running() == []
    finally:
        manager.close()


def _entry(container):
    from agent.catalog.entry import CatalogEntry
    from agent.cgroups.driver import CgroupPaths
    return CatalogEntry(id=container.id, name=container.name, image=container.spec.image, cgroup=CgroupPaths(""),
                        cgroup_id=0, labels=dict(container.spec.labels))


def test_a_replica_spec_carries_the_service_labels():
    made = replica_spec(Service(spec=spec(memory=64 << 20, cpus=0.5, labels={"team": "a"})), 2)
    assert made.labels == {"team": "a", "corral.service": "web", "corral.service.slot": "2",
                           "corral.service.version": "1"}
    assert made.name.startswith("web.2.") and made.memory == 64 << 20 and made.cpus == 0.5 and made.ports == []


def HealthEvent(container, status: str) -> ContainerHealth:
    return ContainerHealth(_entry(container), status, previous="")


def test_health_verdicts_gate_traffic_and_replace_unhealthy_replicas(tmp_path):
    host = Host(tmp_path)
    manager = ServiceManager(tmp_path, host.runtime, Images(), host.runtime.events, None,
                             balancer=host.context.balancer)
    manager.context.proc = host.proc
    worker = ServiceWorker("web", manager.context)
    host.store.save(Service(spec=fast(replicas=2, health_cmd="wget -q -O- localhost")))
    manager._workers["web"] = worker            # driven pass by pass, no thread
    worker.converge()
    first, second = host.running()
    manager.on_container(HealthEvent(first.container, "starting"))
    manager.on_container(HealthEvent(second.container, "healthy"))
    worker.converge()
    assert host.balanced() == [second.address]        # a starting replica takes no traffic yet
    manager.on_container(HealthEvent(first.container, "unhealthy"))
    worker.converge()
    assert [r.slot for r in host.running()] == [2]     # replaced after the slot's back-off
    worker.slots[1].not_before = 0
    worker.converge()
    running = host.running()
    assert first.id not in {r.id for r in running} and [r.slot for r in running] == [1, 2]
    assert worker.exits == 1 and host.store.get("web").history[-1].state == "unhealthy"
    assert sorted(host.balanced()) == sorted(r.address for r in running)   # the new one: no verdict yet


def test_the_health_command_becomes_each_replicas_healthcheck():
    made = replica_spec(Service(spec=spec(health_cmd="true", health_interval=2.0, health_retries=2)), 1)
    assert made.healthcheck is not None and made.healthcheck.test == ["CMD-SHELL", "true"]
    assert (made.healthcheck.interval, made.healthcheck.retries) == (2.0, 2)
    assert replica_spec(Service(spec=spec()), 1).healthcheck is None


def test_a_replica_drains_until_its_connections_are_done_or_the_grace_ends(tmp_path):
    from agent.services.replicas import drain
    host = Host(tmp_path)
    worker = host.worker(Service(spec=fast(replicas=1)))
    worker.converge()
    [replica] = host.running()
    proc = proc_tree(tmp_path / "busy", 4242, [
        "1: 0200D50A:0050 0100D50A:C350 01 00000000:00000000 00:00000000 00000000 0 0 2"])
    ticks = iter(range(100))
    drain(replica, spec(stop_grace_period=3), proc, clock=lambda: next(ticks), poll=0)
    assert next(ticks) == 4                  # polled until the grace period (3 ticks) was over
    drain(replica, spec(stop_grace_period=3), host.proc, clock=lambda: next(ticks), poll=0)
    assert next(ticks) == 6                  # nothing open: no wait (the deadline read 5)
