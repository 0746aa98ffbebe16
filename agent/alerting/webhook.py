"""A generic webhook target: POSTs the same JSON list Alertmanager receives to any URL.

For people without Alertmanager: point `--alert-webhook` at anything that accepts a JSON POST
(a chat bridge, a ticketing hook). The body is the Alertmanager API v2 `postableAlerts` list
(see agent.alerting.payload), so one receiver can serve both.
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from urllib.parse import urlsplit, urlunsplit

from agent.errors import CorralError, InvalidArgument

DEFAULT_TIMEOUT = 5.0


class AlertDeliveryError(CorralError):
    """A target did not take the alerts (down, refused, answered an error); they are retried."""

    http_status = 502


def check_url(url: str, flag: str) -> str:
    """The URL if it is http(s)://host[...]; else an error naming the flag and the value."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgument(f"{flag} {url!r}: expected an http:// or https:// URL like http://127.0.0.1:9093")
    return url


def display_url(url: str) -> str:
    """The URL without user:password, for metric labels and logs."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def post_json(url: str, body: object, timeout: float = DEFAULT_TIMEOUT) -> None:
    """POST `body` as JSON; any failure (refused, timeout, a non-2xx answer) is AlertDeliveryError."""
    data = json.dumps(body, separators=(",", ":")).encode()
    request = urllib.request.Request(url, data=data, method="POST",
                                     headers={"Content-Type": "application/json",
                                              "User-Agent": "corral-agent"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read(300).decode(errors="replace").strip()
        raise AlertDeliveryError(f"{display_url(url)} answered {exc.code}: {detail or exc.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AlertDeliveryError(f"{display_url(url)}: {reason}") from None


class WebhookTarget:
    """POSTs each batch to the URL as it is."""

    kind = "webhook"

    def __init__(self, url: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.url = check_url(url, "--alert-webhook")
        self.timeout = timeout

    @property
    def name(self) -> str:
        return display_url(self.url)

    def post(self, alerts: list[dict]) -> None:
        post_json(self.url, alerts, self.timeout)
