"""Alerting: telling Alertmanager (or any webhook) about policy breaches, enforcement and OOM kills.

The policy actions hand an `Alert` to an `AlertSink` (agent.policy.actions); `Alerting` is that
sink. It only puts the alert on a bounded queue per target, so enforcement never waits for the
network; one sender thread per target turns alerts into Alertmanager API v2 JSON, posts them,
re-sends the active ones so Alertmanager does not expire them, and retries with backoff while
the target is down. `EventAlerts` turns the event log's kills, freezes, throttles and OOM kills
into alerts too. `AlertCollector` exports the senders' counters on the daemon's /metrics.
"""
