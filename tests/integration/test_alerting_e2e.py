"""Alerting end to end: Debian's real Prometheus and Alertmanager on loopback, a real daemon.

A container breaches a policy's memory threshold: the agent's alert reaches Alertmanager (read
back through its API), Prometheus' own rule from deploy/prometheus/alerts.yml fires too, and
removing the container resolves the agent's alert. While the workload runs, every query of every
dashboard is executed against that Prometheus and must return data.

The configurations are the ones in deploy/, with ports, paths and intervals substituted (1 s
scrapes and evaluations, every rule's `for` cut to 1 s). Every process started here is stopped
and every directory removed, even when a test fails.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from tests.integration.corral_daemon import CorralDaemon, free_port

pytestmark = pytest.mark.privileged

REPO = Path(__file__).resolve().parents[2]
CONTAINER = "e2e-load"
# Holds 29 MiB in /dev/shm (shmem: charged to the container, never reclaimable, so part of the
# working set) under a 32 MiB limit: ~93 % of the limit, above the policy's 50 % and the
# Prometheus rule's 90 %. Then loops: an HTTP fetch over loopback (TCP connect, traffic, exec),
# a failing open (syscall errors), and a busy count that the 0.2 CPU quota throttles.
WORKLOAD = """
dd if=/dev/zero of=/dev/shm/hold bs=1M count=29 2>/dev/null
mkdir -p /tmp/www && echo hello > /tmp/www/index.html
httpd -p 127.0.0.1:8080 -h /tmp/www
while :; do
  wget -q -O /dev/null http://127.0.0.1:8080/index.html
  cat /nonexistent 2>/dev/null
  i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done
done
"""
POLICY = {
    "apiVersion": "corral/v1", "kind": "Policy",
    "metadata": {"name": "e2e-memory"},
    "spec": {"selector": {"names": ["e2e-*"]},
             "thresholds": [{"name": "memory-half", "signal": "memory_percent_of_limit", "above": 50,
                             "for": "1s", "actions": ["alert"]}]},
}
# What Grafana would put in place of the dashboards' variables.
SERVICE = "e2e-web"          # the services row of host-overview repeats per service
GRAFANA_VARIABLES = {"$__rate_interval": "30s", "$__interval": "15s", "$__range": "10m",
                     "$instance": ".*", "$container": CONTAINER, "$service": SERVICE}


def get_json(url: str, timeout: float = 5.0):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def wait_for(what: str, probe, timeout: float, interval: float = 0.2):
    """probe() until it returns something truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except OSError as exc:            # the server is still starting
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"{what}: not seen within {timeout:g}s (last: {last!r})")


def parse_time(text: str) -> float:
    return datetime.fromisoformat(re.sub(r"\.(\d{6})\d*", r".\1", text.replace("Z", "+00:00"))).timestamp()


@dataclass
class Stack:
    work: Path
    daemon: CorralDaemon
    alertmanager: str          # base URL
    prometheus: str            # base URL
    logs: dict

    def am_alerts(self, alertname: str) -> list[dict]:
        query = urllib.parse.urlencode({"filter": f'alertname="{alertname}"'})
        return get_json(f"{self.alertmanager}/api/v2/alerts?{query}")

    def prom_query(self, expr: str) -> list[dict]:
        body = get_json(f"{self.prometheus}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")
        assert body["status"] == "success", body
        return body["data"]["result"]

    def diagnostics(self) -> str:
        """What a failure message needs: the containers' state, recent events and every log."""
        parts = []
        for args in (("ps", "-a"), ("events", "--since", "10m")):
            result = self.daemon.cli(*args, check=False)
            parts.append(f"--- corral {' '.join(args)}:\n{result.stdout.decode(errors='replace')[-3000:]}")
        parts += [f"--- {name}:\n{path.read_text(errors='replace')[-3000:]}" for name, path in self.logs.items()
                  if path.exists()]
        return "\n".join(parts)


def _start(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(args, stdout=open(log, "ab"), stderr=subprocess.STDOUT)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _alertmanager_config(work: Path) -> Path:
    config = yaml.safe_load((REPO / "deploy/alertmanager/alertmanager.yml").read_text())
    hook = f"http://127.0.0.1:{free_port()}/unused"          # nothing listens: notifications just fail
    for receiver in config["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = hook
    path = work / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def _prometheus_config(work: Path, metrics_port: int, am_port: int) -> Path:
    rules = yaml.safe_load((REPO / "deploy/prometheus/alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "1s"
    (work / "alerts.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
    config = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(work / "alerts.yml")]
    config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [f"127.0.0.1:{am_port}"]
    [job] = [job for job in config["scrape_configs"] if job["job_name"] == "corral"]
    job["static_configs"][0]["targets"] = [f"127.0.0.1:{metrics_port}"]
    path = work / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def stack():
    if os.geteuid() != 0:
        pytest.skip("needs root: runs a real daemon and containers")
    binaries = {name: shutil.which(name) for name in ("prometheus", "prometheus-alertmanager")}
    missing = [name for name, path in binaries.items() if path is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (scripts/setup.sh installs Debian's packages)")
    work = Path(tempfile.mkdtemp(prefix="corral-alerting-e2e-", dir="/var/tmp"))
    processes: list[subprocess.Popen] = []
    daemon = None
    try:
        am_port, prom_port = free_port(), free_port()
        logs = {"alertmanager": work / "alertmanager.log", "prometheus": work / "prometheus.log"}
        processes.append(_start([
            binaries["prometheus-alertmanager"], f"--config.file={_alertmanager_config(work)}",
            f"--storage.path={work / 'am-data'}", f"--web.listen-address=127.0.0.1:{am_port}",
            "--cluster.listen-address=",                       # no gossip port: one instance
        ], logs["alertmanager"]))
        alertmanager = f"http://127.0.0.1:{am_port}"
        wait_for("Alertmanager ready", lambda: urllib.request.urlopen(f"{alertmanager}/-/ready", timeout=2), 30)

        policies = work / "policies"
        policies.mkdir()
        (policies / "e2e.yaml").write_text(yaml.safe_dump(POLICY))
        # --syscall-latency: the container dashboard's latency heatmap needs the histogram.
        daemon = CorralDaemon(work / "corral", "--alertmanager", alertmanager, "--policies", str(policies),
                              "--syscall-latency")
        logs["daemon"] = daemon.log
        daemon.start()

        processes.append(_start([
            binaries["prometheus"], f"--config.file={_prometheus_config(work, daemon.metrics_port, am_port)}",
            f"--storage.tsdb.path={work / 'prom-data'}", f"--web.listen-address=127.0.0.1:{prom_port}",
        ], logs["prometheus"]))
        prometheus = f"http://127.0.0.1:{prom_port}"
        wait_for("Prometheus ready", lambda: urllib.request.urlopen(f"{prometheus}/-/ready", timeout=2), 60)
        yield Stack(work, daemon, alertmanager, prometheus, logs)
    finally:
        try:
            if daemon is not None:
                try:
                    daemon.remove_all()
                finally:
                    daemon.stop()
        finally:
            for process in reversed(processes):
                _stop(process)
            shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def breach(stack):
    """The workload container, started once for the module; (container id, time it started)."""
    started = time.time()
    container_id = stack.daemon.out("run", "-d", "--name", CONTAINER, "--memory", "32m", "--cpus", "0.2",
                                    "busybox", "sh", "-c", WORKLOAD)
    return container_id, started


def test_the_agents_alert_reaches_alertmanager_with_the_breach(stack, breach):
    container_id, started = breach

    def arrived():
        alerts = [a for a in stack.am_alerts("CorralPolicyViolation") if a["labels"].get("container") == CONTAINER]
        return alerts and (alerts, time.time())
    try:
        (alerts, seen_at) = wait_for("the agent's alert in Alertmanager", arrived, timeout=60, interval=0.1)
    except AssertionError:
        raise AssertionError(stack.diagnostics()) from None
    [alert] = alerts
    labels = alert["labels"]
    assert labels["alertname"] == "CorralPolicyViolation"
    assert (labels["policy"], labels["rule"], labels["severity"]) == ("e2e-memory", "memory-half", "warning")
    assert labels["image"].startswith("busybox") and labels["host"]
    assert float(alert["annotations"]["value"]) > 50 and alert["annotations"]["threshold"] == "50"
    assert alert["annotations"]["container_id"] == container_id
    assert alert["status"]["state"] == "active"
    # startsAt is the moment the agent saw the breach: after the container started, before the
    # alert arrived. How long it takes is bench/reaction.py's "alert" row, not an assertion here.
    assert started <= parse_time(alert["startsAt"]) <= seen_at


def test_prometheus_rule_fires_for_the_same_breach(stack, breach):
    def firing():
        alerts = get_json(f"{stack.prometheus}/api/v1/alerts")["data"]["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == "CorralContainerMemoryNearLimit"
                and a["labels"].get("name") == CONTAINER and a["state"] == "firing"]
    try:
        [alert] = wait_for("CorralContainerMemoryNearLimit firing in Prometheus", firing, timeout=90, interval=0.5)
    except AssertionError:
        raise AssertionError(stack.diagnostics()) from None
    assert alert["labels"]["severity"] == "warning"
    assert float(alert["value"]) > 0.9
    # Prometheus forwards it to the same Alertmanager.
    wait_for("Prometheus' alert in Alertmanager",
             lambda: [a for a in stack.am_alerts("CorralContainerMemoryNearLimit") if a["labels"]["name"] == CONTAINER],
             timeout=60)


def _dashboard_queries() -> list[tuple[str, str]]:
    queries = []
    for path in sorted((REPO / "dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                queries.append((f"{path.name}: {panel['title']} ({target['refId']})", target["expr"]))
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                inner = re.match(r"label_values\((.*),\s*\w+\)$", variable["query"]["query"])
                queries.append((f"{path.name}: variable {variable['name']}", inner.group(1)))
    return queries


def _substitute(expr: str) -> str:
    for name in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, GRAFANA_VARIABLES[name])
    return expr


@pytest.fixture(scope="module")
def web_service(stack):
    """A one-replica service behind a published port, with a few requests through it, so the
    dashboard's services row has data."""
    from tests.integration.corral_daemon import free_port
    port = free_port()
    stack.daemon.cli("service", "create", "--name", SERVICE, "--replicas", "1", "-p", f"{port}:80", "busybox",
                     "sh", "-c", "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 80 -h /www",
                     timeout=120)

    def served():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                return response.read().strip() == b"ok"
        except OSError:
            return False
    wait_for("the service answering", served, timeout=60)
    for _ in range(5):
        served()
    yield SERVICE
    stack.daemon.cli("service", "rm", SERVICE, check=False)


def test_every_dashboard_query_returns_data(stack, breach, web_service):
    # The policy's violation and Prometheus' alert must exist before the policy panels can show them.
    wait_for("the violation counted", lambda: stack.prom_query(
        f'corral_policy_violations_total{{name="{CONTAINER}"}}'), timeout=60)
    wait_for("a firing Corral alert", lambda: stack.prom_query('ALERTS{alertstate="firing"}'), timeout=90)
    empty = {}
    deadline = time.monotonic() + 60           # rate() needs a few scrapes of each series
    queries = _dashboard_queries()
    assert queries
    for where, expr in queries:
        query = _substitute(expr)
        assert "$" not in query, f"{where}: a dashboard variable this test does not know: {query}"
        while True:
            result = stack.prom_query(query)
            if result or time.monotonic() > deadline:
                break
            time.sleep(1)
        if not result:
            empty[where] = query
    assert not empty, "dashboard queries without data:\n" + "\n".join(f"{w}: {q}" for w, q in empty.items())


def test_removing_the_container_resolves_the_agents_alert(stack, breach):
    def active():
        return [a for a in stack.am_alerts("CorralPolicyViolation")
                if a["labels"].get("container") == CONTAINER and a["status"]["state"] == "active"]
    # Resolving is only shown by an alert that was active first (an empty list is "all resolved").
    wait_for("the agent's alert active in Alertmanager", active, timeout=60)
    stack.daemon.cli("rm", "-f", CONTAINER)

    def resolved():
        alerts = [a for a in stack.am_alerts("CorralPolicyViolation") if a["labels"].get("container") == CONTAINER]
        return all(a["status"]["state"] == "resolved" or parse_time(a["endsAt"]) <= time.time() for a in alerts)
    try:
        wait_for("the agent's alert resolved in Alertmanager", resolved, timeout=30)
    except AssertionError:
        raise AssertionError(stack.diagnostics()) from None
