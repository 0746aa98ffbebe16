"""Incident bundles: ids, the store's limits and paths, the process table, and the recorder's
triggers, with the cgroup double and an in-memory catalogue."""
from __future__ import annotations

import io
import json
import tarfile

import pytest

from agent.catalog.entry import CatalogEntry
from agent.cgroups.driver import CgroupPaths
from agent.errors import InvalidArgument, NotFound
from agent.events import Event, EventLog
from agent.incidents.recorder import IncidentRecorder, process_table
from agent.incidents.store import IncidentStore, incident_id
from agent.policy.actions import ActionExecutor
from agent.policy.engine import Action, Violation

PATHS = CgroupPaths(unified="/sys/fs/cgroup/unified/corral/c1")


def test_ids_say_when_which_and_what():
    assert incident_id("3f2a9c1b7d4e5f60", "kill", 1_764_872_102.123) == "20251204-181502-123-3f2a9c1b7d4e-kill"


def test_store_keeps_at_most_keep_and_refuses_foreign_ids(tmp_path):
    store = IncidentStore(tmp_path, keep=2)
    for second in range(3):
        store.write({"id": incident_id("c1", "oom", 1000.0 + second), "time": 1000.0 + second, "kind": "oom"})
    assert [b["time"] for b in store.list()] == [1002.0, 1001.0]
    with pytest.raises(InvalidArgument, match="is not one Corral made"):
        store.get("../../etc/passwd")
    with pytest.raises(NotFound):
        store.get(incident_id("c1", "oom", 5.0))
    exported = tarfile.open(fileobj=io.BytesIO(store.export(store.list()[0]["id"])))
    assert exported.getnames()[-1].endswith("incident.json")


def test_process_table_reads_proc(tmp_path):
    (tmp_path / "7").mkdir()
    (tmp_path / "7" / "stat").write_text("7 (my (odd) name) S 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 3 0 100 0 25 0\n")
    (tmp_path / "7" / "cmdline").write_bytes(b"sleep\x0060\x00")
    assert process_table([7, 8], proc=str(tmp_path)) == [
        {"pid": 7, "ppid": 1, "state": "S", "comm": "my (odd) name", "cmdline": ["sleep", "60"],
         "rss_bytes": 25 * __import__("os").sysconf("SC_PAGE_SIZE"), "threads": 3}]


class _Catalog:
    def __init__(self, *entries: CatalogEntry) -> None:
        self.entries = {e.id: e for e in entries}

    def by_id(self, container_id: str) -> CatalogEntry | None:
        return self.entries.get(container_id)


class _Cgroups:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def procs(self, paths: CgroupPaths) -> list[int]:
        self.calls.append("procs")
        return [1]                 # this process's init: always there

    def freeze(self, paths: CgroupPaths) -> None:
        self.calls.append("freeze")


def _violation() -> Violation:
    return Violation("c1", "web", "guard", "hot", "pids", None, 9.0, 3.0, 10.0, 12.0, "enforce", ("freeze",))


def test_evidence_is_saved_before_the_freeze_and_named_in_its_event(tmp_path):
    events = EventLog(tmp_path / "events.jsonl")
    cgroups = _Cgroups()
    entry = CatalogEntry(id="c1", name="web", image="busybox:latest", cgroup=PATHS, cgroup_id=5)
    recorder = IncidentRecorder(IncidentStore(tmp_path), events=events, catalog=_Catalog(entry), cgroups=cgroups)
    executor = ActionExecutor(cgroups, events=events, before_action=recorder.before_action)   # type: ignore[arg-type]
    result = executor.execute(Action("freeze", "c1", "web", "guard", "hot", _violation()), PATHS)
    assert result.ok and cgroups.calls == ["procs", "freeze"]
    bundle = recorder.store.get(incident_id("c1", "freeze", 12.0))
    assert bundle["trigger"]["policy"] == "guard" and bundle["processes"][0]["pid"] == 1
    freeze = [e for e in events.since() if e.type == "policy" and e.action == "freeze"][0]
    assert freeze.attributes["incident"] == bundle["id"]
    assert any(e.type == "incident" and e.attributes["incident"] == bundle["id"] for e in events.since())


def test_a_failing_capture_never_stops_the_action(tmp_path):
    cgroups = _Cgroups()

    def broken(*_args) -> str:
        raise OSError("disk full")
    executor = ActionExecutor(cgroups, before_action=broken)   # type: ignore[arg-type]
    assert executor.execute(Action("freeze", "c1", "web", "guard", "hot", _violation()), PATHS).ok
    assert cgroups.calls == ["freeze"]


def test_oom_and_syscall_kill_events_are_captured_on_the_recorders_thread(tmp_path):
    events = EventLog(tmp_path / "events.jsonl")
    entry = CatalogEntry(id="c1", name="web", image="busybox:latest", cgroup=PATHS, cgroup_id=5)
    recorder = IncidentRecorder(IncidentStore(tmp_path), events=events, catalog=_Catalog(entry), cgroups=_Cgroups())
    recorder.start()
    try:
        events.emit(Event("container", "oom", "c1", "web", time=20.0, attributes={"pid": 9, "comm": "tail"}))
        events.emit(Event("policy", "violation", "c1", "web", time=21.0,
                          attributes={"signal": "syscall", "actions": ["kill"], "policy": "p", "rule": "r"}))
        events.emit(Event("policy", "violation", "c1", "web", time=22.0,
                          attributes={"signal": "pids", "actions": ["alert"]}))
    finally:
        recorder.stop()
    kinds = sorted(b["kind"] for b in recorder.store.list())
    assert kinds == ["oom", "syscall-kill"]
    assert json.loads(json.dumps(recorder.store.get(incident_id("c1", "oom", 20.0))))["trigger"]["comm"] == "tail"
