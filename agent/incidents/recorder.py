"""Saving the evidence of an incident: what a person needs to understand a kill, a freeze or an
OOM kill after the fact, taken at the moment it happened.

A bundle holds the container (id, name, image, labels, cgroup), what triggered it (the policy,
rule and violation; or the OOM event), its processes (pid, parent, state, command line, RSS,
read from /proc), the last 30 s of its events and of its signal history, and the effective
policy that applied (limits, syscall, egress and threshold rules, each with where it comes from).

When: a policy's freeze or kill is captured *before* it is carried out (`before_action`, which
the ActionExecutor calls), so the process tree is the one that misbehaved; an OOM kill and a
syscall `kill` rule (the kernel acts on its own) are captured from their events, as soon as the
event log has them, on the recorder's own thread so the emitting thread never waits on /proc.
Each capture ends with an `incident created` event naming the bundle.
"""
from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from agent.cgroups.driver import CgroupDriver, CgroupPaths
from agent.events import Event, EventLog
from agent.incidents.store import IncidentStore, incident_id

log = logging.getLogger(__name__)
WINDOW = 30.0               # seconds of events and signals kept before the incident
MAX_PROCESSES = 512
CAPTURED_ACTIONS = ("freeze", "kill")


def process_table(pids: list[int], proc: str = "/proc") -> list[dict[str, Any]]:
    """pid, ppid, state, comm, cmdline and RSS of each process, as /proc shows them now."""
    rows = []
    for pid in sorted(pids)[:MAX_PROCESSES]:
        try:
            with open(f"{proc}/{pid}/stat", "rb") as handle:
                stat = handle.read().decode(errors="replace")
            with open(f"{proc}/{pid}/cmdline", "rb") as handle:
                argv = [part.decode(errors="replace") for part in handle.read().split(b"\0") if part]
        except OSError:
            continue            # gone meanwhile
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        rows.append({"pid": pid, "ppid": int(fields[1]), "state": fields[0], "comm": comm, "cmdline": argv,
                     "rss_bytes": int(fields[21]) * os.sysconf("SC_PAGE_SIZE"), "threads": int(fields[17])})
    return rows


class IncidentRecorder:
    def __init__(self, store: IncidentStore, *, events: EventLog, catalog: Any, cgroups: CgroupDriver,
                 history: Any | None = None,
                 effective: Callable[[str, str, Mapping[str, str]], Any] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.events = events
        self.catalog = catalog
        self.cgroups = cgroups
        self.history = history
        self.effective = effective
        self._clock = clock
        self._queue: queue.Queue[Event | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._unsubscribe: Callable[[], None] | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="incidents", daemon=True)
        self._thread.start()
        self._unsubscribe = self.events.subscribe(self._on_event)

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=5)

    # --- triggers ------------------------------------------------------------------------------

    def before_action(self, kind: str, container_id: str, paths: CgroupPaths | None, record: Any) -> str:
        """A policy is about to freeze or kill: save the evidence now; the bundle's id."""
        trigger = {"kind": kind, "policy": record.policy, "rule": record.rule, **_record(record)}
        return self.capture(container_id, kind, trigger, getattr(record, "time", self._clock()), paths)

    def _on_event(self, event: Event) -> None:
        # The emitting thread: only decide and hand over.
        if _is_oom(event) or _is_syscall_kill(event):
            self._queue.put(event)

    def _run(self) -> None:
        while (event := self._queue.get()) is not None:
            try:
                if _is_oom(event):
                    self.capture(event.id, "oom", {"kind": "oom", **(event.attributes or {})}, event.time)
                else:
                    attributes = event.attributes or {}
                    self.capture(event.id, "syscall-kill", {"kind": "syscall-kill", **attributes}, event.time)
            except Exception:  # noqa: BLE001 - one bad capture must not end the recorder
                log.exception("incident capture for %s failed", event.id)

    # --- the bundle ----------------------------------------------------------------------------

    def capture(self, container_id: str, kind: str, trigger: dict[str, Any], when: float,
                paths: CgroupPaths | None = None) -> str:
        identifier = incident_id(container_id, kind, when)
        entry = self.catalog.by_id(container_id)
        if paths is None and entry is not None:
            paths = entry.cgroup
        processes: list[dict[str, Any]] = []
        if paths is not None:
            try:
                processes = process_table(self.cgroups.procs(paths))
            except Exception as exc:  # noqa: BLE001 - the rest of the evidence still counts
                processes = [{"error": f"{type(exc).__name__}: {exc}"}]
        since = when - WINDOW
        bundle: dict[str, Any] = {
            "id": identifier, "time": when, "kind": kind, "trigger": trigger,
            "container": _container(container_id, entry),
            "processes": processes,
            "events": [e.to_dict() for e in self.events.since(since) if e.id == container_id],
            "signals": ([s.to_dict() for s in self.history.samples(container_id, since)]
                        if self.history is not None else []),
            "effective_policy": self._effective(entry),
        }
        path = self.store.write(bundle)
        self.events.emit(Event("incident", "created", container_id, entry.name if entry else "",
                               attributes={"incident": identifier, "kind": kind, "path": str(path)}))
        log.warning("incident %s: %s of %s saved in %s", identifier, kind, entry.name if entry else container_id,
                    path)
        return identifier

    def _effective(self, entry: Any) -> dict[str, Any] | None:
        if self.effective is None or entry is None:
            return None
        try:
            effective = self.effective(entry.name, entry.image, entry.labels)
            return None if effective is None else dict(effective.to_dict())
        except Exception as exc:  # noqa: BLE001 - say why it is missing rather than lose the bundle
            return {"error": f"{type(exc).__name__}: {exc}"}


def _record(record: Any) -> dict[str, Any]:
    to_dict = getattr(record, "to_dict", None)
    return dict(to_dict()) if callable(to_dict) else {}


def _container(container_id: str, entry: Any) -> dict[str, Any]:
    if entry is None:
        return {"id": container_id}
    return {"id": entry.id, "name": entry.name, "image": entry.image, "labels": dict(entry.labels),
            "origin": entry.origin, "cgroup": entry.cgroup.to_dict() if hasattr(entry.cgroup, "to_dict") else None}


def _is_oom(event: Event) -> bool:
    return event.type == "oom" or (event.type == "container" and event.action == "oom")


def _is_syscall_kill(event: Event) -> bool:
    attributes = event.attributes or {}
    return (event.type == "policy" and event.action == "violation" and attributes.get("signal") == "syscall"
            and "kill" in (attributes.get("actions") or ()))
