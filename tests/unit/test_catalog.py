"""The container catalogue and the bus: indexes, event flow from runtime-like and discovery-like
publishers to the followers the daemon subscribes (probes, event log), failure semantics."""
from __future__ import annotations

import threading

import pytest

from agent.catalog.bus import (
    ContainerBus,
    ContainerPlaced,
    ContainerRemoved,
    ContainerStarted,
    ContainerStopped,
)
from agent.catalog.catalog import ContainerCatalog
from agent.catalog.entry import OBSERVED, CatalogEntry
from agent.catalog.followers import log_observed, probes_follow
from agent.cgroups.driver import CgroupPaths
from agent.errors import Conflict, InvalidArgument, NotFound
from agent.events import EventLog
from tests.unit.test_discovery_observed import probe_double


def entry(cid: str, name: str, cgroup_id: int, **fields) -> CatalogEntry:
    return CatalogEntry(id=cid, name=name, image="busybox", cgroup=CgroupPaths(f"/sys/fs/cgroup/unified/{cid}"),
                        cgroup_id=cgroup_id, **fields)


@pytest.fixture
def wired():
    bus, catalog, probes = ContainerBus(), ContainerCatalog(), probe_double()
    bus.subscribe("catalogue", catalog.apply)
    bus.subscribe("probes", probes_follow(probes))
    return bus, catalog, probes


def test_lookups_by_id_name_prefix_and_cgroup_id():
    catalog = ContainerCatalog()
    web, db = entry("ab" * 32, "web", 11), entry("ac" * 32, "db", 12, origin=OBSERVED, runtime="docker")
    catalog.put(web)
    catalog.put(db)
    assert catalog.by_cgroup_id(11) is web and catalog.by_cgroup_id(12) is db and catalog.by_cgroup_id(13) is None
    assert catalog.get("web") is web and catalog.get("ab" * 32) is web and catalog.get("abab") is web
    with pytest.raises(InvalidArgument, match="matches 2"):
        catalog.get("a")
    with pytest.raises(NotFound):
        catalog.get("nope")
    assert catalog.list(origin=OBSERVED) == [db]


def test_a_renamed_or_moved_entry_leaves_no_stale_index():
    catalog = ContainerCatalog()
    catalog.put(entry("x1", "old", 5))
    catalog.put(entry("x1", "new", 6))
    assert catalog.by_cgroup_id(5) is None and catalog.by_cgroup_id(6).name == "new"
    with pytest.raises(NotFound):
        catalog.get("old")
    catalog.remove("x1")
    assert catalog.by_cgroup_id(6) is None and len(catalog) == 0


def test_a_container_life_on_the_bus(wired):
    bus, catalog, probes = wired
    placed = entry("c1", "web", 21, state="created")
    bus.publish(ContainerPlaced(placed))
    assert probes.watched == {21: placed.cgroup.unified} and not catalog.get("web").running
    bus.publish(ContainerStarted(entry("c1", "web", 21)))
    assert [e.name for e in catalog.list(running=True)] == ["web"]
    bus.publish(ContainerStopped(entry("c1", "web", 21, state="exited")))
    assert catalog.list(running=True) == [] and probes.watched       # counters kept until removed
    bus.publish(ContainerRemoved(entry("c1", "web", 21, state="exited")))
    assert probes.watched == {} and len(catalog) == 0


def test_an_aborted_start_is_forgotten_by_the_probes_but_stays_catalogued(wired):
    bus, catalog, probes = wired
    bus.publish(ContainerPlaced(entry("c1", "web", 21, state="created")))
    bus.publish(ContainerStopped(entry("c1", "web", 21, state="created"), aborted=True))
    assert probes.watched == {} and catalog.get("web").state == "created"


def test_a_failure_on_placed_reaches_the_publisher_and_later_subscribers_do_not_run():
    bus, seen = ContainerBus(), []
    bus.subscribe("probes", probes_follow(probe_double(fail=True)))
    bus.subscribe("after", seen.append)
    with pytest.raises(Conflict, match="probe slots"):
        bus.publish(ContainerPlaced(entry("c1", "web", 21)))
    assert seen == []


def test_a_failure_on_other_events_is_logged_and_the_rest_still_hear(caplog):
    bus, seen = ContainerBus(), []

    def broken(event):
        raise RuntimeError("boom")
    bus.subscribe("broken", broken)
    bus.subscribe("after", seen.append)
    bus.publish(ContainerStopped(entry("c1", "web", 21)))
    assert len(seen) == 1 and "broken failed on ContainerStopped" in caplog.text


def test_unsubscribe_stops_delivery():
    bus, seen = ContainerBus(), []
    unsubscribe = bus.subscribe("x", seen.append)
    unsubscribe()
    bus.publish(ContainerStarted(entry("c1", "web", 21)))
    assert seen == []


def test_observed_comings_and_goings_are_logged_once_and_moves_are_not(tmp_path):
    log = EventLog(tmp_path / "events.jsonl")
    bus = ContainerBus()
    bus.subscribe("event log", log_observed(log))
    foreign = entry("d1", "nginx", 31, origin=OBSERVED, runtime="docker")
    bus.publish(ContainerStarted(foreign))
    bus.publish(ContainerRemoved(foreign, moved=True))
    bus.publish(ContainerStarted(foreign, again=True))
    bus.publish(ContainerRemoved(foreign))
    bus.publish(ContainerStarted(entry("c1", "own", 32)))          # Corral's own: the runtime logs it
    assert [(e.action, e.name, e.attributes["runtime"]) for e in log.since()] == \
        [("observe", "nginx", "docker"), ("vanish", "nginx", "docker")]


def test_readers_never_see_a_missing_entry_while_it_is_replaced():
    catalog = ContainerCatalog()
    catalog.put(entry("c1", "web", 21))
    stop, missing = threading.Event(), []

    def read():
        while not stop.is_set():
            if catalog.by_id("c1") is None:
                missing.append(1)
    reader = threading.Thread(target=read)
    reader.start()
    for index in range(2000):
        catalog.put(entry("c1", "web", 21, started_at=float(index)))
    stop.set()
    reader.join()
    assert missing == []


def test_probe_events_find_their_container_in_the_catalogue_observed_ones_too(tmp_path):
    from agent.probes.events import ExecEvent, KillEvent, OomEvent
    from agent.probes.pump import ProbeEventPump

    class Reports:
        def __init__(self) -> None:
            self.got: list = []

        def record_enforcement(self, container, event) -> None:
            self.got.append((container.name, event.nr))

    catalog, log, reports = ContainerCatalog(), EventLog(tmp_path / "events.jsonl"), Reports()
    catalog.put(entry("d1", "nginx", 31, origin=OBSERVED, runtime="docker"))
    catalog.put(entry("c1", "web", 32))
    pump = ProbeEventPump(probe_double(), log, catalog, reports=reports)
    pump.handle(OomEvent(31, 77, "tail", 1000.0))
    pump.handle(ExecEvent(32, 78, "/bin/sh", 1001.0))
    pump.handle(KillEvent(32, 79, "sh", 101, 9, 0, 1002.0))
    pump.handle(OomEvent(99, 80, "gone", 1003.0))                  # a cgroup no longer known
    assert [(e.type, e.action, e.name, e.attributes.get("observed", False)) for e in log.since()] == \
        [("container", "oom", "nginx", True), ("process", "exec", "web", False)]
    assert reports.got == [("web", 101)] and pump.unattributed == 1
