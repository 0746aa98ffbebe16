"""Reaction: from a threshold breach to the action (kill, freeze) and to the alert's arrival.

A daemon follows a policy folder the bench writes: containers named bench-kill-* are killed and
bench-freeze-* frozen when `pids` goes above 10 for 500 ms, both with an alert, posted by
`--alert-webhook` to an HTTP server in the bench. Each container sleeps a second, then starts
20 background sleeps at once; each trial starts after a random fraction of the interval, so
breaches fall at every phase of the daemon's ticks. The bench watches the kernel's own files with a ~1 ms poll:
  breach    the first instant pids.current (v1 pids controller) is above the threshold
  kill      the container's unified cgroup.events says `populated 0`
  freeze    its cgroup.events says `frozen 1`
  alert     the webhook's POST naming the container arrives
Reaction = observed - breach - hold (500 ms). Kill and freeze trials alternate. It runs at the
production evaluation interval (1 s) and at 0.1 s (--policy-interval, hidden): a sampler
cannot do better than a delay uniform in [0, interval), so the anchor is that expected delay,
interval / 2, and the ratio says how much the daemon adds to the sampling it was asked for.
"""
from __future__ import annotations

import json
import random
import shutil
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench.common import BenchDaemon, Row, summary

HOLD = 0.5
THRESHOLD = 10
POLICIES = f"""apiVersion: corral/v1
kind: Policy
metadata: {{name: bench-kill}}
spec:
  selector: {{names: ["bench-kill-*"]}}
  thresholds:
    - {{name: fork-burst, signal: pids, above: {THRESHOLD}, for: {int(HOLD * 1000)}ms, actions: [alert, kill]}}
---
apiVersion: corral/v1
kind: Policy
metadata: {{name: bench-freeze}}
spec:
  selector: {{names: ["bench-freeze-*"]}}
  thresholds:
    - {{name: fork-burst, signal: pids, above: {THRESHOLD}, for: {int(HOLD * 1000)}ms, actions: [alert, freeze]}}
"""
BURST = ("sleep 1; i=0; while [ $i -lt 20 ]; do sleep 600 & i=$((i+1)); done; wait")
POLL = 0.001
TIMEOUT = 15.0


class Webhook:
    """An HTTP server on 127.0.0.1 recording when an alert naming each container first arrived."""

    def __init__(self) -> None:
        arrivals: dict[str, float] = {}
        self.arrivals = arrivals

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                now = time.monotonic()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.end_headers()
                try:
                    alerts = json.loads(body)
                except ValueError:
                    return
                for alert in alerts if isinstance(alerts, list) else []:
                    name = alert.get("labels", {}).get("container")
                    if name:
                        arrivals.setdefault(name, now)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Webhook:
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.server.shutdown()
        self.server.server_close()


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _poll(predicate, deadline: float) -> float | None:
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        time.sleep(POLL)
    return None


def trial(daemon: BenchDaemon, webhook: Webhook, action: str, number: int) -> dict:
    """One container breaching once; seconds from breach + hold to the action and the alert."""
    name = f"bench-{action}-{number}"
    client = daemon.client()
    container_id = daemon.run({"image": "busybox:latest", "command": ["sh", "-c", BURST], "name": name,
                               "network": "none"})
    try:
        cgroup = client.inspect_container(container_id)["Cgroup"]["Paths"]
        pids = Path(cgroup["controllers"]["pids"]) / "pids.current"
        events = Path(cgroup["unified"]) / "cgroup.events"
        deadline = time.monotonic() + TIMEOUT
        breach = _poll(lambda: (_read(pids).strip() or "0").isdigit() and int(_read(pids)) > THRESHOLD, deadline)
        if breach is None:
            raise RuntimeError(f"{name}: pids never went above {THRESHOLD}")
        wanted = "populated 0" if action == "kill" else "frozen 1"
        acted = _poll(lambda: wanted in _read(events) or (action == "kill" and not events.exists()), deadline)
        alerted = _poll(lambda: name in webhook.arrivals, deadline + 5)
        return {"action": None if acted is None else acted - breach - HOLD,
                "alert": None if alerted is None else webhook.arrivals[name] - breach - HOLD}
    finally:
        if action == "freeze":
            try:
                client.unfreeze_container(container_id)
            except Exception:
                pass
        client.remove_container(container_id, force=True)


def run(trials: int = 10, intervals: tuple[float, ...] = (1.0, 0.1)) -> dict:
    results: dict = {}
    rows = []
    with Webhook() as webhook:
        for interval in intervals:
            samples: dict[str, list[float]] = {"kill": [], "freeze": [], "alert": []}
            missing: dict[str, int] = {"kill": 0, "freeze": 0, "alert": 0}
            policies = Path(tempfile.mkdtemp(prefix="corral-bench-policies-", dir="/var/tmp"))
            (policies / "bench.yaml").write_text(POLICIES)
            try:
                with BenchDaemon("--policies", str(policies), "--policy-interval", str(interval),
                                 "--alert-webhook", webhook.url, name="reaction") as daemon:
                    for number in range(trials):
                        for action in (("kill", "freeze") if number % 2 else ("freeze", "kill")):
                            # Each trial starts right after the previous one was seen acting, i.e.
                            # just after a tick: without a random phase every breach would land at
                            # the same point of the interval (the worst one, as first measured).
                            time.sleep(random.uniform(0, interval))
                            measured = trial(daemon, webhook, action, f"{interval:g}-{number}".replace(".", "p"))
                            for key, value in (("action", action), ("alert", "alert")):
                                seconds = measured[key]
                                if seconds is None:
                                    missing[value] += 1
                                else:
                                    samples[value].append(seconds)
            finally:
                shutil.rmtree(policies, ignore_errors=True)
            results[f"{interval:g}"] = {"samples_ms": {k: [round(v * 1e3, 1) for v in vs] for k, vs in samples.items()},
                                        "missing": missing}
            anchor = interval / 2 * 1e3
            for what, limit in (("kill", 100), ("freeze", 100), ("alert", 2000)):
                values = [v * 1e3 for v in samples[what]]
                if not values:
                    rows.append(Row("reaction", f"{what} after hold, interval {interval:g}s", "ms", float("nan"),
                                    note=f"never observed in {trials * (2 if what == 'alert' else 1)} trials").to_dict())
                    continue
                s = summary(values)
                ratios = summary([v / anchor for v in values])
                rows.append(Row("reaction", f"{what} after hold, interval {interval:g}s", "ms", s["median"],
                                s["p25"], s["p75"], anchor=f"interval/2 ({anchor:g} ms)", ratio=ratios["median"],
                                ratio_p25=ratios["p25"], ratio_p75=ratios["p75"], target=f"<= {limit} ms",
                                met=s["median"] <= limit,
                                note=f"max {s['max']:.0f} ms" + (f"; {missing[what]} not observed" if missing[what] else "")
                                ).to_dict())
    return {"hold_seconds": HOLD, "threshold_pids": THRESHOLD, "trials": trials, "intervals": results, "rows": rows}


if __name__ == "__main__":
    from bench.__main__ import main
    sys.exit(main(["reaction", *sys.argv[1:]]))
