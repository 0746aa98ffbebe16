"""Services' pure logic: the schemas, the balancer's rules, the readiness read from /proc, the
store, and the reconciler's passes over an in-memory runtime (no thread: each pass is called)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from agent.catalog.bus import ContainerHealth, ContainerStopped
from agent.errors import Conflict, InvalidArgument, NotFound
from agent.events import EventLog
from agent.network.model import PortMapping
from agent.services.balancer import Balancer, Connections, balance_rules, service_tag
from agent.services.manager import ServiceManager
from agent.services.metrics import ServiceCollector, ServiceFigures
from agent.services.model import Service, ServiceChange, ServiceSpec, template_changed
from agent.services.reconciler import Context, ServiceWorker
from agent.services.replicas import listening, open_connections, replica_spec, replicas_of
from agent.services.store import ServiceStore
from tests.unit.fake_runtime import FakeRuntime

PORT = PortMapping(host_port=8080, container_port=80)


def spec(**fields) -> ServiceSpec:
    return ServiceSpec.from_dict({"name": "web", "image": "busybox", "replicas": 3,
                                  "port": PORT.to_dict(), **fields})


# ---- model ------------------------------------------------------------------------------

@pytest.mark.parametrize("fields, field", [
    ({"replicas": -1}, "replicas"), ({"replicas": 101}, "replicas"), ({"name": "a.b"}, "name"),
    ({"update": {"parallelism": 0}}, "update.parallelism"), ({"update": {"order": "random"}}, "update.order"),
    ({"network": "host"}, "port"), ({"labels": {"corral.service.slot": "1"}}, "labels"),
])
def test_bad_specs_name_the_field(fields, field):
    with pytest.raises(InvalidArgument) as error:
        spec(**fields)
    assert error.value.field == field or error.value.message.startswith(field)


def test_a_change_applies_only_what_it_names():
    old = spec(env=["A=1", "B=2"])
    new = ServiceChange(image="busybox:v2", env_add=["B=3", "C=4"], env_rm=["A"]).apply(old)
    assert new.image == "busybox:v2" and new.env == ["B=3", "C=4"] and new.replicas == 3
    assert template_changed(old, new)
    scaled = ServiceChange(replicas=5).apply(old)
    assert not template_changed(old, scaled) and scaled.replicas == 5


def test_an_update_bumps_the_version_and_a_rollback_returns_to_the_old_one():
    service = Service(spec=spec())
    assert service.updated(ServiceChange(replicas=1).apply(service.spec), 1.0).version == 1
    updated = service.updated(ServiceChange(image="busybox:v2").apply(service.spec), 2.0)
    assert (updated.version, updated.previous_version, updated.update_state) == (2, 1, "updating")
    back = updated.rolled_back("why", 3.0)
    assert (back.version, back.spec.image, back.update_state) == (1, "busybox", "rollback_started")
    again = back.updated(ServiceChange(image="busybox:v3").apply(back.spec), 4.0)
    assert again.version == 3          # never a number an earlier spec had
    with pytest.raises(Conflict):
        service.rolled_back("no previous", 5.0)


# ---- balancer ---------------------------------------------------------------------------

def test_the_rules_pick_a_replica_by_numgen_in_both_chains():
    rules = balance_rules("corral", "web", PORT, ["10.0.0.2", "10.0.0.3"])
    assert [r["add"]["rule"]["chain"] for r in rules] == ["prerouting", "output"]
    assert all(r["add"]["rule"]["comment"] == "corral:service:web" for r in rules)
    dnat = rules[0]["add"]["rule"]["expr"][-1]["dnat"]
    assert dnat["port"] == 80
    assert dnat["addr"]["map"]["key"] == {"numgen": {"mode": "inc", "mod": 2, "offset": 0}}
    assert dnat["addr"]["map"]["data"]["set"] == [[0, "10.0.0.2"], [1, "10.0.0.3"]]
    counting = balance_rules("corral", "web", PORT, [])       # none ready: count, and let the port refuse
    assert len(counting) == 2 and not any("dnat" in item for r in counting for item in r["add"]["rule"]["expr"])
    one_address = PortMapping(host_port=8080, container_port=80, host_ip="127.0.0.1")
    assert "payload" in json.dumps(balance_rules("corral", "web", one_address, ["10.0.0.2"])[0]["add"]["rule"]["expr"][0])


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


def test_the_balancer_changes_the_table_only_when_the_replicas_change():
    nat = FakeNat()
    balancer = Balancer(nat)   # type: ignore[arg-type]
    assert balancer.apply("web", PORT, ["10.0.0.2"]) and not balancer.apply("web", PORT, ["10.0.0.2"])
    assert nat.calls == 1 and balancer.addresses("web") == ("10.0.0.2",)
    assert balancer.services() == {"web"}
    assert balancer.connections()["web"] == Connections(balanced=4)     # 2 in each chain
    assert balancer.apply("web", PORT, [])
    assert balancer.connections()["web"] == Connections(balanced=4, refused=4)   # the old rules' counts kept
    balancer.remove("web")
    assert nat.by_tag == {} and balancer.addresses("web") == () and balancer.connections() == {}


# ---- readiness from /proc ---------------------------------------------------------------

def proc_tree(tmp_path: Path, pid: int, lines: list[str]) -> Path:
    net = tmp_path / str(pid) / "net"
    net.mkdir(parents=True)
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    (net / "tcp").write_text(header + "".join(line + "\n" for line in lines))
    return tmp_path


def test_listening_and_open_connections_are_read_from_the_namespace(tmp_path):
    proc = proc_tree(tmp_path, 7, [
        "0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1",
        "1: 0200D50A:0050 0100D50A:C350 01 00000000:00000000 00:00000000 00000000 0 0 2",
        "2: 0200D50A:0050 0100D50A:C351 06 00000000:00000000 00:00000000 00000000 0 0 3",
    ])
    assert listening(7, 80, proc) and not listening(7, 81, proc) and not listening(8, 80, proc)
    assert open_connections(7, 80, proc) == 1 and open_connections(8, 80, proc) == 0


# ---- store ------------------------------------------------------------------------------

def test_the_store_keeps_services_and_names_what_is_missing(tmp_path):
    store = ServiceStore(tmp_path)
    store.save(Service(spec=spec()))
    assert store.get("web").spec.replicas == 3 and [s.name for s in store.all()] == ["web"]
    store.modify("web", lambda s: s.replace(version=4))
    assert store.get("web").version == 4
    (tmp_path / "services" / "torn.json").write_text("{")
    assert [s.name for s in store.all()] == ["web"]
    store.delete("web")
    with pytest.raises(NotFound, match="no such service: web"):
        store.get("web")


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
