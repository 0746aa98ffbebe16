"""Services' pure parts: the schemas, the balancer's rules and counters, readiness and drain
read from /proc, and the store (the drain itself is tested with the reconciler)."""
from __future__ import annotations

import json

import pytest

from agent.errors import Conflict, InvalidArgument, NotFound
from agent.network.model import PortMapping
from agent.services.balancer import Balancer, Connections, balance_rules
from agent.services.model import Service, ServiceChange, template_changed
from agent.services.replicas import listening, open_connections
from agent.services.store import ServiceStore
from tests.unit.test_services import PORT, FakeNat, proc_tree, spec

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
