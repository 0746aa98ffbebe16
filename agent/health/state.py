"""The health of one container: docker's state machine, pure (time is given, never read).

    starting --success--> healthy --`retries` failures in a row--> unhealthy --success--> healthy
    starting --`retries` failures in a row (after the start period)--> unhealthy

A failure while the container is still `starting` and inside its start period does not count
towards the streak (its result is still logged), as in docker. Every result is logged; the
last KEPT_RESULTS are kept.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agent.health.model import KEPT_RESULTS, HealthCheck

STARTING, HEALTHY, UNHEALTHY = "starting", "healthy", "unhealthy"
STATUSES = (STARTING, HEALTHY, UNHEALTHY)
# docker's exit code for a check that timed out or could not be run.
NO_EXIT_CODE = -1


@dataclass(frozen=True)
class CheckResult:
    """One run of the check."""

    start: float
    end: float
    exit_code: int                     # NO_EXIT_CODE: timed out or not run
    output: str

    def to_docker(self) -> dict[str, Any]:
        return {"Start": _rfc3339(self.start), "End": _rfc3339(self.end), "ExitCode": self.exit_code,
                "Output": self.output}

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "exit_code": self.exit_code, "output": self.output}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckResult:
        return cls(float(data["start"]), float(data["end"]), int(data["exit_code"]), str(data["output"]))


@dataclass
class HealthState:
    """Status, failing streak and the last results of one container since `started_at`."""

    started_at: float                  # the container's start the state belongs to
    status: str = STARTING
    failing_streak: int = 0
    log: list[CheckResult] = field(default_factory=list)

    def record(self, result: CheckResult, check: HealthCheck) -> str | None:
        """Take one result; the new status when it changed, else None."""
        before = self.status
        self.log = [*self.log, result][-KEPT_RESULTS:]
        if result.exit_code == 0:
            self.failing_streak = 0
            self.status = HEALTHY
        elif not (self.status == STARTING and result.start - self.started_at < check.start_period):
            self.failing_streak += 1
            if self.failing_streak >= check.retries:
                self.status = UNHEALTHY
        return self.status if self.status != before else None

    def to_docker(self) -> dict[str, Any]:
        """inspect's `State.Health`."""
        return {"Status": self.status, "FailingStreak": self.failing_streak,
                "Log": [result.to_docker() for result in self.log]}

    def to_dict(self) -> dict[str, Any]:
        return {"started_at": self.started_at, "status": self.status, "failing_streak": self.failing_streak,
                "log": [result.to_dict() for result in self.log]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HealthState:
        status = data["status"]
        if status not in STATUSES:
            raise ValueError(f"unknown health status {status!r}")
        return cls(started_at=float(data["started_at"]), status=status, failing_streak=int(data["failing_streak"]),
                   log=[CheckResult.from_dict(item) for item in data["log"]][-KEPT_RESULTS:])


def _rfc3339(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat().replace("+00:00", "Z")
