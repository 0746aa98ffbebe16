"""The AlertSink the daemon hands out: every alert goes to every target's sender.

Each target has its own sender thread and inbox, so a target that is down or slow never
delays another; a full inbox drops for its own target only.
"""
from __future__ import annotations

from typing import Callable, Iterable

from agent.alerting.alertmanager import AlertmanagerTarget
from agent.alerting.sender import AlertSender, SenderOptions, SenderStats
from agent.alerting.webhook import WebhookTarget
from agent.policy.actions import Alert


class AlertFanOut:
    """A composite AlertSink over several senders; start() and stop() them together."""

    def __init__(self, senders: Iterable[AlertSender]) -> None:
        self.senders = list(senders)

    def fire(self, alert: Alert) -> None:
        for sender in self.senders:
            sender.fire(alert)

    def resolve(self, alert: Alert) -> None:
        for sender in self.senders:
            sender.resolve(alert)

    def notify(self, alert: Alert, hold: float | None = None) -> None:
        for sender in self.senders:
            sender.notify(alert, hold)

    def resolve_container(self, container_id: str, at: float | None = None) -> None:
        for sender in self.senders:
            sender.resolve_container(container_id, at)

    def start(self) -> None:
        for sender in self.senders:
            sender.start()

    def stop(self) -> None:
        for sender in self.senders:
            sender.stop()

    def stats(self) -> list[SenderStats]:
        return [sender.stats() for sender in self.senders]


def build_alerting(alertmanagers: Iterable[str] = (), webhooks: Iterable[str] = (), *,
                   options: SenderOptions | None = None, host: str | None = None,
                   image_of: Callable[[str], str] | None = None) -> AlertFanOut | None:
    """A sender per `--alertmanager` and `--alert-webhook` URL; None when there is none."""
    targets = [AlertmanagerTarget(url) for url in alertmanagers] + [WebhookTarget(url) for url in webhooks]
    if not targets:
        return None
    return AlertFanOut(AlertSender(target, options, host=host, image_of=image_of) for target in targets)
