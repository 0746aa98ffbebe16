"""One `Alert` as Alertmanager API v2 wants it (`POST /api/v2/alerts`, a list of these).

Labels identify the alert (Alertmanager groups and de-duplicates on them): alertname,
severity, policy, rule, container, image, host. Annotations carry what a person reads: the
summary, the signal's value and the threshold. `endsAt` is always set: in the future while the
alert is active (so Alertmanager expires it if the agent dies, as Prometheus does), the moment
of resolution once it is over.
"""
from __future__ import annotations

from datetime import UTC, datetime

from agent.policy.actions import Alert

DEFAULT_ALERTNAME = "CorralPolicyViolation"
DEFAULT_SEVERITY = "warning"
# Alert.labels the payload reads itself; every other entry becomes a label as it is.
_CONSUMED = {"alertname", "severity", "image", "name", "policy", "rule", "container"}


def rfc3339(timestamp: float) -> str:
    """UTC time as Alertmanager parses it: 2024-05-01T12:00:00.123Z."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def alert_labels(alert: Alert, *, host: str, image: str) -> dict[str, str]:
    """The identifying labels; empty values are left out (Alertmanager treats them as absent)."""
    labels = {
        "alertname": alert.labels.get("alertname") or DEFAULT_ALERTNAME,
        "severity": alert.labels.get("severity") or DEFAULT_SEVERITY,
        "policy": alert.policy,
        "rule": alert.rule,
        "container": alert.container_name,
        "image": alert.labels.get("image") or image,
        "host": host,
    }
    for key, value in alert.labels.items():
        if key not in _CONSUMED:
            labels[key] = str(value)
    return {key: str(value) for key, value in labels.items() if value not in ("", None)}


def alert_annotations(alert: Alert) -> dict[str, str]:
    annotations = {
        "summary": alert.summary,
        "signal": alert.signal,
        "value": _number(alert.value),
        "threshold": _number(alert.above),
        "mode": alert.mode,
        "container_id": alert.container_id,
        "incident": alert.incident,
        "incident_command": f"corral incidents show {alert.incident}" if alert.incident else "",
    }
    return {key: value for key, value in annotations.items() if value}


def to_postable(alert: Alert, *, host: str, image: str, starts_at: float, ends_at: float) -> dict:
    """The JSON object of one alert in Alertmanager's `postableAlerts` list."""
    return {
        "labels": alert_labels(alert, host=host, image=image),
        "annotations": alert_annotations(alert),
        "startsAt": rfc3339(starts_at),
        "endsAt": rfc3339(ends_at),
    }
