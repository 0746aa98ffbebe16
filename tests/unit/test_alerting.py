"""Alert senders against a fake Alertmanager on loopback: what it receives, and when."""
from __future__ import annotations

import json
import socket
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client import CollectorRegistry

from agent.alerting.alertmanager import AlertmanagerTarget
from agent.alerting.event_alerts import EventAlerts
from agent.alerting.fanout import AlertFanOut, build_alerting
from agent.alerting.metrics import AlertCollector
from agent.alerting.payload import alert_annotations
from agent.alerting.sender import AlertSender, SenderOptions
from agent.alerting.webhook import WebhookTarget
from agent.errors import InvalidArgument
from agent.events import Event, EventLog
from agent.policy.actions import Alert

FAST = SenderOptions(resend_interval=60, backoff_initial=0.05, backoff_max=0.2)


class FakeAlertmanager:
    """Records every POST body; answers `status` (503 while "down")."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, list]] = []
        self.status = 200
        self.changed = threading.Condition()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.changed:
                    status = fake.status
                    if status == 200:
                        fake.posts.append((self.path, body))
                    fake.changed.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def alerts(self) -> list[dict]:
        with self.changed:
            return [alert for _, body in self.posts for alert in body]

    def wait_for(self, predicate, timeout: float = 10.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                alerts = [alert for _, body in self.posts for alert in body]
                if predicate(alerts):
                    return alerts
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"the fake Alertmanager never saw what was expected; it got {alerts}")
                self.changed.wait(left)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def alertmanager():
    fake = FakeAlertmanager()
    yield fake
    fake.close()


@pytest.fixture
def senders():
    started: list = []
    yield started
    for sender in started:
        sender.stop(timeout=5)


def make_alert(value: float = 80.0, at: float | None = None, container_id: str = "c0ffee") -> Alert:
    return Alert(key=f"{container_id}/web/memory", container_id=container_id, container_name="web-1",
                 policy="web", rule="memory", signal="memory_percent_of_limit", value=value, above=50.0,
                 mode="enforce", time=at if at is not None else time.time(),
                 summary=f"web-1: memory_percent_of_limit = {value:g} above 50 (policy web, rule memory)",
                 labels={"policy": "web", "rule": "memory", "name": "web-1"})


def sender_for(fake: FakeAlertmanager, started: list, options: SenderOptions = FAST) -> AlertSender:
    sender = AlertSender(AlertmanagerTarget(fake.url), options, host="node-a",
                         image_of=lambda cid: "busybox:latest" if cid == "c0ffee" else "")
    sender.start()
    started.append(sender)
    return sender


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_fired_alert_has_the_labels_and_annotations_alertmanager_routes_on(alertmanager, senders):
    sender = sender_for(alertmanager, senders)
    alert = make_alert()
    sender.fire(alert)
    [posted] = alertmanager.wait_for(lambda alerts: alerts)
    assert alertmanager.posts[0][0] == "/api/v2/alerts"
    assert posted["labels"] == {"alertname": "CorralPolicyViolation", "severity": "warning", "policy": "web",
                                "rule": "memory", "container": "web-1", "image": "busybox:latest",
                                "host": "node-a"}
    assert posted["annotations"]["value"] == "80"
    assert posted["annotations"]["threshold"] == "50"
    assert posted["annotations"]["signal"] == "memory_percent_of_limit"
    assert posted["annotations"]["summary"] == alert.summary
    assert abs(parse_time(posted["startsAt"]) - alert.time) < 0.01
    # Active: endsAt lies ahead, so Alertmanager expires the alert only if the agent stops re-sending.
    assert parse_time(posted["endsAt"]) > time.time() + 60


def test_resolve_sends_the_same_labels_with_ends_at_the_resolution(alertmanager, senders):
    sender = sender_for(alertmanager, senders)
    fired = make_alert(at=time.time() - 5)
    sender.fire(fired)
    alertmanager.wait_for(lambda alerts: len(alerts) == 1)
    resolved_at = time.time()
    sender.resolve(make_alert(value=20.0, at=resolved_at))
    alerts = alertmanager.wait_for(lambda alerts: len(alerts) == 2)
    assert alerts[1]["labels"] == alerts[0]["labels"]
    assert abs(parse_time(alerts[1]["endsAt"]) - resolved_at) < 0.01
    assert alerts[1]["startsAt"] == alerts[0]["startsAt"]
    assert sender.stats().active == 0


def test_active_alert_is_re_sent_until_resolved(alertmanager, senders):
    sender = sender_for(alertmanager, senders, SenderOptions(resend_interval=0.05))
    sender.fire(make_alert())
    alerts = alertmanager.wait_for(lambda alerts: len(alerts) >= 3)
    assert {a["labels"]["rule"] for a in alerts} == {"memory"}
    sender.resolve(make_alert(value=10.0))
    alertmanager.wait_for(lambda alerts: any(parse_time(a["endsAt"]) <= time.time() for a in alerts))
    time.sleep(0.3)
    count = len(alertmanager.alerts())
    time.sleep(0.3)
    assert len(alertmanager.alerts()) == count, "a resolved alert must not be re-sent"


def test_alerts_are_retried_with_backoff_while_alertmanager_is_down(alertmanager, senders):
    alertmanager.status = 503
    sender = sender_for(alertmanager, senders)
    sender.fire(make_alert())
    deadline = time.monotonic() + 10
    while sender.stats().sent_error < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sender.stats().sent_error >= 2, "the sender did not retry"
    assert alertmanager.alerts() == []
    alertmanager.status = 200
    [posted] = alertmanager.wait_for(lambda alerts: alerts)
    assert posted["labels"]["container"] == "web-1"
    deadline = time.monotonic() + 5         # the fake records the post before answering it
    while sender.stats().sent_ok == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sender.stats().sent_ok == 1


def closed_port_url() -> str:
    """A loopback URL nothing listens on (the port was bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/hook"


def test_nothing_listening_is_retried_too(senders):
    sender = AlertSender(WebhookTarget(closed_port_url()), FAST)
    sender.start()
    senders.append(sender)
    sender.fire(make_alert())
    deadline = time.monotonic() + 10
    while sender.stats().sent_error < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sender.stats().sent_error >= 2


def test_backoff_doubles_up_to_the_maximum():
    now = [100.0]
    sender = AlertSender(WebhookTarget("http://127.0.0.1:9/"),
                         SenderOptions(backoff_initial=0.5, backoff_max=4), monotonic=lambda: now[0])
    waits = []
    for _ in range(6):
        sender._failed(RuntimeError("down"))
        waits.append(sender._next_attempt - now[0])
    assert waits == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_a_full_queue_drops_and_counts_and_the_collector_shows_it():
    sender = AlertSender(AlertmanagerTarget("http://127.0.0.1:9093"), SenderOptions(queue_size=2))
    for value in range(5):                    # not started: nothing drains the queue
        sender.fire(make_alert(value=value))
    stats = sender.stats()
    assert (stats.dropped, stats.queue_length) == (3, 2)
    registry = CollectorRegistry()
    registry.register(AlertCollector(AlertFanOut([sender]).stats))
    target = {"target": "http://127.0.0.1:9093"}
    assert registry.get_sample_value("corral_alerts_dropped_total", target) == 3
    assert registry.get_sample_value("corral_alert_queue_length", target) == 2
    assert registry.get_sample_value("corral_alerts_sent_total", {**target, "result": "ok"}) == 0


class BlockedTarget:
    """A target whose post hangs until released: a stuck Alertmanager."""

    kind, name, timeout = "webhook", "blocked", 1.0

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def post(self, alerts):
        self.entered.set()
        self.release.wait(10)


def test_fire_never_blocks_even_when_the_target_hangs():
    target = BlockedTarget()
    sender = AlertSender(target, SenderOptions(queue_size=10))
    sender.start()
    try:
        sender.fire(make_alert())
        assert target.entered.wait(5)
        for value in range(1000):           # the sender thread is stuck in post()
            sender.fire(make_alert(value=value))
            sender.resolve(make_alert(value=value))
        assert not target.release.is_set()  # all 2000 calls returned while the post hung
        assert sender.stats().dropped >= 1990
    finally:
        target.release.set()
        sender.stop(timeout=5)


def test_resolve_container_resolves_its_active_alerts(alertmanager, senders):
    sender = sender_for(alertmanager, senders)
    sender.fire(make_alert())
    alertmanager.wait_for(lambda alerts: len(alerts) == 1)
    sender.resolve_container("c0ffee")
    alerts = alertmanager.wait_for(lambda alerts: len(alerts) == 2)
    assert parse_time(alerts[1]["endsAt"]) <= time.time()
    assert sender.stats().active == 0


def test_a_second_resolve_of_the_same_alert_is_not_sent_again(alertmanager, senders):
    sender = sender_for(alertmanager, senders)
    sender.fire(make_alert())
    alertmanager.wait_for(lambda alerts: len(alerts) == 1)
    sender.resolve_container("c0ffee")            # the container was removed ...
    sender.resolve(make_alert(value=0.0))          # ... then the policy resolves its rule too
    sender.fire(make_alert(container_id="other"))  # a marker: everything before it was handled
    alerts = alertmanager.wait_for(lambda alerts: any(a["annotations"]["container_id"] == "other" for a in alerts))
    assert sorted(a["annotations"]["container_id"] for a in alerts) == ["c0ffee", "c0ffee", "other"]


def test_webhook_gets_the_same_json_and_fan_out_reaches_every_target(alertmanager):
    webhook = FakeAlertmanager()
    try:
        fanout = build_alerting([alertmanager.url], [webhook.url + "/hook"], options=FAST, host="node-a",
                                image_of=lambda cid: "busybox:latest")
        fanout.start()
        try:
            fanout.fire(make_alert())
            [to_am] = alertmanager.wait_for(lambda alerts: alerts)
            [to_hook] = webhook.wait_for(lambda alerts: alerts)
        finally:
            fanout.stop()
        to_hook.pop("endsAt"), to_am.pop("endsAt")      # each sender computes its own "ahead"
        assert to_hook == to_am
        assert webhook.posts[0][0] == "/hook"
        assert [s.kind for s in fanout.stats()] == ["alertmanager", "webhook"]
    finally:
        webhook.close()


def test_no_target_means_no_alerting():
    assert build_alerting([], []) is None


@pytest.mark.parametrize("url", ["127.0.0.1:9093", "ftp://host/", "http://"])
def test_urls_must_be_http(url):
    with pytest.raises(InvalidArgument, match="--alertmanager"):
        AlertmanagerTarget(url)


def test_alertmanager_url_takes_a_base_or_the_endpoint_and_hides_credentials():
    assert AlertmanagerTarget("http://am:9093/").url == "http://am:9093/api/v2/alerts"
    assert AlertmanagerTarget("http://am:9093/api/v2/alerts").url == "http://am:9093/api/v2/alerts"
    assert AlertmanagerTarget("http://u:secret@am:9093/am").name == "http://am:9093/am"


class RecordingSink:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def fire(self, alert):
        self.calls.append(("fire", alert))

    def resolve(self, alert):
        self.calls.append(("resolve", alert))

    def notify(self, alert, hold=None):
        self.calls.append(("notify", alert))

    def resolve_container(self, container_id, at=None):
        self.calls.append(("resolve_container", container_id))


def policy_event(action: str, result: str = "ok") -> Event:
    return Event("policy", action, "c0ffee", "web-1", attributes={"policy": "web", "rule": "cpu", "result": result})


def test_enforcement_and_oom_events_become_alerts(tmp_path):
    sink = RecordingSink()
    log = EventLog(tmp_path / "events.jsonl")
    log.subscribe(EventAlerts(sink))
    log.emit(policy_event("throttle"))
    log.emit(policy_event("restore"))
    log.emit(policy_event("freeze"))
    log.emit(policy_event("thaw"))
    log.emit(policy_event("kill", "failed: gone"))
    log.emit(policy_event("violation"))                  # the `alert` action covers violations
    log.emit(Event("container", "oom", "c0ffee", "web-1"))
    log.emit(Event("container", "die", "c0ffee", "web-1"))
    verbs = [(verb, getattr(alert, "labels", {}).get("alertname", alert)) for verb, alert in sink.calls]
    assert verbs == [("fire", "CorralContainerThrottled"), ("resolve", "CorralContainerThrottled"),
                     ("fire", "CorralContainerFrozen"), ("resolve", "CorralContainerFrozen"),
                     ("notify", "CorralContainerKilled"), ("notify", "CorralContainerOOMKilled"),
                     ("resolve_container", "c0ffee")]
    throttle_fired, throttle_resolved = sink.calls[0][1], sink.calls[1][1]
    assert throttle_fired.key == throttle_resolved.key
    assert "failed: gone" in sink.calls[4][1].summary
    # The OOM alert names the bundle the incident recorder makes of the same event.
    oom = sink.calls[5][1]
    assert oom.incident.endswith("-c0ffee-oom")
    annotations = alert_annotations(oom)
    assert annotations["incident"] == oom.incident and annotations["incident_command"].endswith(oom.incident)


def test_a_failing_listener_does_not_stop_the_event_log(tmp_path):
    log = EventLog(tmp_path / "events.jsonl")
    seen = []

    def broken(event):
        raise RuntimeError("boom")

    log.subscribe(broken)
    unsubscribe = log.subscribe(seen.append)
    log.emit(Event("container", "start", "a", "b"))
    unsubscribe()
    log.emit(Event("container", "stop", "a", "b"))
    assert [e.action for e in seen] == ["start"]
    assert [e.action for e in log.since()] == ["start", "stop"]


def test_one_shot_alert_is_sent_once_with_its_own_end(alertmanager, senders):
    sender = sender_for(alertmanager, senders, SenderOptions(resend_interval=0.05))
    at = time.time()
    sender.notify(make_alert(at=at), hold=300)
    [posted] = alertmanager.wait_for(lambda alerts: alerts)
    assert abs(parse_time(posted["endsAt"]) - (at + 300)) < 0.01
    time.sleep(0.3)
    assert len(alertmanager.alerts()) == 1
