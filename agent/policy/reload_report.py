"""What a reload of the policy folder tells the user (PolicyService.reload): a log line and an
event per file loaded, failed or removed, the load-error counter, and the file's provenance."""
from __future__ import annotations

import logging

from agent.events import Event, EventLog
from agent.policy.library import PolicyLibrary, ReloadReport
from agent.policy.metrics import PolicyMetrics
from agent.policy.provenance import Provenance

log = logging.getLogger("corral.policy")


def report_reload(report: ReloadReport, *, library: PolicyLibrary, events: EventLog, provenance: Provenance,
                  metrics: PolicyMetrics) -> None:
    for file, problems in report.failed.items():
        for problem in problems:
            log.error("policy %s (the previous version of the file stays in force)", problem)
        events.emit(Event("policy", "load_error", name=file,
                          attributes={"problems": [str(p) for p in problems],
                                      "kept": "previous version" if _was_loaded(library, file) else "none"}))
        metrics.load_errors.inc()
    for file in report.loaded:
        commit = provenance.record(file)
        log.info("policy file %s loaded", file)
        events.emit(Event("policy", "reload", name=file,
                          attributes={"policies": [p.name for p in library.policies() if p.source == file],
                                      "commit": commit or ""}))
    for file in report.removed:
        provenance.forget(file)
        log.info("policy file %s removed", file)
        events.emit(Event("policy", "remove", name=file))


def _was_loaded(library: PolicyLibrary, file: str) -> bool:
    return any(p.source == file for p in library.policies())
