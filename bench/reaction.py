"""Reaction: from a threshold breach to the action (kill, freeze) and to the alert's arrival.

A daemon at the default evaluation interval (1 s) follows a policy folder the bench writes:
memory above 64 MiB kills (`bench-mkill-*`) or freezes (`bench-mfreeze-*`) at once (no `for:`),
with an alert posted by `--alert-webhook` to an HTTP server in the bench; `pids` above 10 kills
`bench-pkill-*` the same way. Memory is watched by the kernel (agent/cgroups/watch.py); `pids`
has no event source and is found by the periodic evaluation, so it is the anchor measured in
the same run: what sampling gives on this machine now. Syscalls above 20000/s kill
`bench-skill-*` (a container-wide rate: checked in the kernel, probes/rates.c), read calls above
20000/s kill `bench-sskill-*` (a per-syscall rule on `read`: checked in the kernel too, in
syscall_rate_limits), and, as their own sampled anchor, `bench-ckill-*` (the same storm against a
`cpu_percent` rule, which only the periodic evaluation sees). `bench-s2kill-*` has two levels on
the same signal, an alert above 20000/s and a kill above 40000/s: both checked in the kernel, the
kill timed at the higher level's crossing.

Each workload marks its own breach: it writes 40 MiB of page cache (charged to its memory
cgroup), touches a file in a directory the bench bind-mounts (the bench polls it every ~1 ms),
then writes 40 MiB more, crossing 64 MiB about 24 MiB in (the memory subject), or starts 20
background sleeps (the pids subject), or starts a `dd bs=1` storm (~2 syscalls per byte; the
syscall subjects: 20001 calls take a few ms after dd's exec). The time from the mark to the crossing itself (writing
24 MiB, ~10 ms) is counted in the reaction, so the figures overstate it a little. Observed:
  kill      the container's unified cgroup.events says `populated 0`
  freeze    its cgroup.events says `frozen 1`
  alert     the webhook's POST naming the container arrives
  alertmanager  a real Alertmanager (bench/alertmanager.py, the repo's configuration), which the
            daemon also sends to (`--alertmanager`), notifies its receiver (the bench's second
            HTTP server) of an alert naming the container: breach -> someone is told
Each round runs the three subjects in a fresh shuffled order, each after a random fraction of
the interval, so breaches fall at every phase of the daemon's ticks. Ratios are per round:
memory's reaction over the pids kill's of the same round.
"""
from __future__ import annotations

import contextlib
import json
import random
import shutil
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench import alertmanager
from bench.common import BenchDaemon, Row, paired_ratios, summary

MEMORY_ABOVE = "64Mi"
PIDS_ABOVE = 10
SYSCALLS_ABOVE = 20000
SYSCALLS_KILL_ABOVE = 40000       # bench-s2kill's second level: close, so the storm reaches it a few ms after the first
CPU_ABOVE = 50                    # bench-ckill (% of one CPU): the storm keeps a CPU busy, far above it after one tick
POLICIES = f"""apiVersion: corral/v1
kind: Policy
metadata: {{name: bench-mkill}}
spec:
  selector: {{names: ["bench-mkill-*"]}}
  thresholds:
    - {{name: big, signal: memory_bytes, above: {MEMORY_ABOVE}, actions: [alert, kill]}}
---
apiVersion: corral/v1
kind: Policy
metadata: {{name: bench-mfreeze}}
spec:
  selector: {{names: ["bench-mfreeze-*"]}}
  thresholds:
    - {{name: big, signal: memory_bytes, above: {MEMORY_ABOVE}, actions: [alert, freeze]}}
---
apiVersion: corral/v1
kind: Policy
metadata: {{name: bench-pkill}}
spec:
  selector: {{names: ["bench-pkill-*"]}}
  thresholds:
    - {{name: fork-burst, signal: pids, above: {PIDS_ABOVE}, actions: [alert, kill]}}
---
apiVersion: corral/v1
kind: Policy
metadata: {{name: bench-skill}}
spec:
  selector: {{names: ["bench-skill-*"]}}
  thresholds:
    - {{name: storm, signal: syscalls_per_second, above: {SYSCALLS_ABOVE}, actions: [alert, kill]}}
---
apiVersion: corral/v1
kind: Policy
metadata: {{name: bench-sskill}}
spec:
  selector: {{names: ["bench-sskill-*"]}}
  thresholds:
    - {{name: read-storm, signal: syscalls_per_second, syscall: read, above: {SYSCALLS_ABOVE}, actions: [alert, kill]}}
---
apiVersion: corral/v1
kind: Policy
metadata: {{name: bench-ckill}}
spec:
  selector: {{names: ["bench-ckill-*"]}}
  thresholds:
    - {{name: cpu-storm, signal: cpu_percent, above: {CPU_ABOVE}, actions: [alert, kill]}}
---
apiVersion: corral/v1
kind: Policy
metadata: {{name: bench-s2kill}}
spec:
  selector: {{names: ["bench-s2kill-*"]}}
  thresholds:
    - {{name: busy, signal: syscalls_per_second, above: {SYSCALLS_ABOVE}, actions: [alert]}}
    - {{name: runaway, signal: syscalls_per_second, above: {SYSCALLS_KILL_ABOVE}, actions: [kill]}}
"""
FILL = "dd if=/dev/zero of=/tmp/{0} bs=1M count=40 2>/dev/null"
WORKLOADS = {
    "memory": f"sleep 1; {FILL.format('a')}; touch /mark/m; {FILL.format('b')}; sleep 600",
    "pids": "sleep 1; touch /mark/m; i=0; while [ $i -lt 20 ]; do sleep 600 & i=$((i+1)); done; wait",
    "syscalls": "sleep 1; touch /mark/m; dd if=/dev/zero of=/dev/null bs=1 count=1000000000 2>/dev/null",
}
SUBJECTS = {"mkill": ("memory", "kill"), "mfreeze": ("memory", "freeze"), "pkill": ("pids", "kill"),
            "skill": ("syscalls", "kill"), "sskill": ("syscalls", "kill"), "s2kill": ("syscalls", "kill"),
            "ckill": ("syscalls", "kill")}
# subject -> the sampled subject its ratio is taken against (same run, same round)
ANCHORS = {"mkill": "pkill", "mfreeze": "pkill", "skill": "ckill", "s2kill": "ckill", "sskill": "ckill"}
WHAT = {"pkill": "pids above threshold", "skill": "syscalls/s above threshold",
        "s2kill": "syscalls/s above the second of two levels",
        "sskill": "read calls/s above threshold (kernel-checked per-syscall rule)",
        "ckill": "cpu % of the same storm above threshold (sampled)"}
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
                if isinstance(alerts, dict):        # Alertmanager's webhook: {"alerts": [...], ...}
                    alerts = alerts.get("alerts")
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


def trial(daemon: BenchDaemon, webhook: Webhook, subject: str, number: int, receiver: Webhook | None = None) -> dict:
    """One container breaching once; seconds from its mark to the action and to the alert."""
    workload, action = SUBJECTS[subject]
    name = f"bench-{subject}-{number}"
    client = daemon.client()
    marks = Path(tempfile.mkdtemp(prefix="corral-bench-mark-", dir="/var/tmp"))
    container_id = daemon.run({"image": "busybox:latest", "command": ["sh", "-c", WORKLOADS[workload]],
                               "name": name, "network": "none",
                               "mounts": [{"type": "bind", "source": str(marks), "target": "/mark"}]})
    try:
        events = Path(client.inspect_container(container_id)["Cgroup"]["Paths"]["unified"]) / "cgroup.events"
        deadline = time.monotonic() + TIMEOUT
        mark = _poll((marks / "m").exists, deadline)
        if mark is None:
            raise RuntimeError(f"{name}: the workload never marked its breach")
        wanted = "populated 0" if action == "kill" else "frozen 1"
        acted = _poll(lambda: wanted in _read(events) or (action == "kill" and not events.exists()), deadline)
        alerted = _poll(lambda: name in webhook.arrivals, deadline + 5)
        if receiver is not None:
            _poll(lambda: name in receiver.arrivals, deadline + 5)
        told = receiver.arrivals.get(name) if receiver is not None else None
        return {"action": None if acted is None else acted - mark,
                "alert": None if alerted is None else webhook.arrivals[name] - mark,
                "alertmanager": None if told is None else told - mark}
    finally:
        if action == "freeze":
            try:
                client.unfreeze_container(container_id)
            except Exception:
                pass
        client.remove_container(container_id, force=True)
        shutil.rmtree(marks, ignore_errors=True)


def run(trials: int = 5, interval: float = 1.0) -> dict:
    keys = ("action", "alert", "alertmanager") if alertmanager.available() else ("action", "alert")
    samples: dict[str, list[float | None]] = {f"{s}:{k}": [] for s in SUBJECTS for k in keys}
    with contextlib.ExitStack() as stack:
        webhook = stack.enter_context(Webhook())
        receiver = stack.enter_context(Webhook()) if "alertmanager" in keys else None
        am_args = ["--alertmanager", stack.enter_context(alertmanager.Alertmanager(receiver.url)).url] \
            if receiver is not None else []
        policies = Path(tempfile.mkdtemp(prefix="corral-bench-policies-", dir="/var/tmp"))
        (policies / "bench.yaml").write_text(POLICIES)
        try:
            with BenchDaemon("--policies", str(policies), "--policy-interval", str(interval),
                             "--alert-webhook", webhook.url, *am_args, name="reaction") as daemon:
                for number in range(trials):
                    for subject in random.sample(list(SUBJECTS), len(SUBJECTS)):
                        # Without a random phase every trial would start just after the previous
                        # one's action, i.e. at the same point of the daemon's interval.
                        time.sleep(random.uniform(0, interval))
                        measured = trial(daemon, webhook, subject, number, receiver)
                        for key in keys:
                            samples[f"{subject}:{key}"].append(measured[key])
        finally:
            shutil.rmtree(policies, ignore_errors=True)
    rows = []
    for subject, (workload, action) in SUBJECTS.items():
        anchor = samples[f"{ANCHORS.get(subject, 'pkill')}:action"]
        evented = subject in ANCHORS
        for key, limit in (("action", 100), ("alert", 1000), ("alertmanager", 1000)):
            if key not in keys:
                continue
            raw = samples[f"{subject}:{key}"]
            values = [v * 1e3 for v in raw if v is not None]
            told = {"action": action, "alert": "webhook alert", "alertmanager": "Alertmanager's notification"}[key]
            what = f"{WHAT.get(subject, f'{workload} above threshold')} -> {told}"
            missing = len(raw) - len(values)
            if not values:
                rows.append(Row("reaction", what, "ms", float("nan"), note=f"never observed in {len(raw)} trials").to_dict())
                continue
            s = summary(values)
            pairs = [(v, a) for v, a in zip(raw, anchor) if v is not None and a is not None]
            ratios = summary(paired_ratios([v for v, _ in pairs], [a for _, a in pairs])) \
                if evented and pairs else None
            rows.append(Row("reaction", what, "ms", s["median"], s["p25"], s["p75"],
                            anchor=f"{WHAT[ANCHORS[subject]]} -> kill" if ratios else None,
                            ratio=ratios["median"] if ratios else None,
                            ratio_p25=ratios["p25"] if ratios else None, ratio_p75=ratios["p75"] if ratios else None,
                            target=f"<= {limit} ms" if evented else None,
                            met=s["median"] <= limit if evented else None,
                            note=f"max {s['max']:.0f} ms" + (f"; {missing} not observed" if missing else "")
                            ).to_dict())
    return {"interval_seconds": interval, "memory_above": MEMORY_ABOVE, "pids_above": PIDS_ABOVE,
            "syscalls_above": SYSCALLS_ABOVE, "trials": trials,
            "samples_ms": {k: [None if v is None else round(v * 1e3, 1) for v in vs] for k, vs in samples.items()},
            "rows": rows}


if __name__ == "__main__":
    from bench.__main__ import main
    sys.exit(main(["reaction", *sys.argv[1:]]))
