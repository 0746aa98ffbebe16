"""The Alertmanager target: `POST <url>/api/v2/alerts` with a list of postable alerts.

`--alertmanager http://127.0.0.1:9093` (the base URL, as Prometheus' `alertmanagers` config
takes it; a path prefix such as `/alertmanager` for a proxied instance is kept).
"""
from __future__ import annotations

from agent.alerting.webhook import DEFAULT_TIMEOUT, check_url, display_url, post_json

API_PATH = "/api/v2/alerts"


class AlertmanagerTarget:
    """One Alertmanager; several are posted to independently (they gossip and de-duplicate)."""

    kind = "alertmanager"

    def __init__(self, url: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        base = check_url(url, "--alertmanager").rstrip("/")
        if base.endswith(API_PATH):          # someone gave the full endpoint: accept it
            base = base[:-len(API_PATH)]
        self.base = base
        self.url = base + API_PATH
        self.timeout = timeout

    @property
    def name(self) -> str:
        return display_url(self.base)

    def post(self, alerts: list[dict]) -> None:
        post_json(self.url, alerts, self.timeout)
