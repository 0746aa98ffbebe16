"""Services for real: replicas are real containers, traffic goes over loopback through the one
published port (the kernel's nftables balancer), and everything is driven through the CLI."""
from __future__ import annotations

import glob
import json
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

from tests.integration.corral_daemon import free_port, running_daemon

pytestmark = pytest.mark.privileged

# Each replica serves its own hostname (its short container id) on port 80.
SERVE = ["sh", "-c", "hostname; mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www"]
FAST = ["--stop-grace-period", "1s", "--update-monitor", "1s"]


def get(port: int, timeout: float = 2.0) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=timeout) as response:
        return response.read().decode().strip()


def until(check, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached within {timeout}s")


def inspect(daemon, name: str) -> dict:
    return json.loads(daemon.out("service", "inspect", name))[0]


def running(daemon, name: str) -> list[dict]:
    return [t for t in inspect(daemon, name)["tasks"] if t["state"] == "running"]


def nft_table() -> str:
    return subprocess.run(["nft", "list", "table", "ip", "corral"], capture_output=True, text=True).stdout


def create(daemon, name: str, port: int, *extra: str, image: str = "busybox") -> None:
    daemon.cli("service", "create", "--name", name, "-p", f"{port}:80", *FAST, *extra, image, *SERVE, timeout=120)


@pytest.fixture
def service(daemon):
    """A three-replica service `web` on a free port; removed afterwards whatever happens."""
    port = free_port()
    create(daemon, "web", port, "--replicas", "3")
    yield port
    daemon.cli("service", "rm", "web", check=False, timeout=120)


def test_three_replicas_serve_through_one_port(daemon, service):
    answers = [get(service) for _ in range(60)]
    assert len(set(answers)) >= 2, answers
    listing = daemon.out("service", "ls")
    assert "web" in listing and "3/3" in listing and f"0.0.0.0:{service}->80/tcp" in listing.replace(" ", "")
    tasks = running(daemon, "web")
    assert sorted(t["slot"] for t in tasks) == [1, 2, 3]
    container = json.loads(daemon.out("inspect", tasks[0]["id"]))[0]
    labels = container["Config"]["Labels"]
    assert labels["corral.service"] == "web" and labels["corral.service.slot"] == str(tasks[0]["slot"])
    assert set(answers) <= {t["id"][:12] for t in tasks}
    logs = daemon.out("service", "logs", "web").splitlines()
    assert sorted(logs) == sorted(f"{t['name']} | {t['id'][:12]}" for t in tasks)


def test_metrics_carry_the_service(daemon, service):
    for _ in range(10):
        get(service)
    with urllib.request.urlopen(f"http://127.0.0.1:{daemon.metrics_port}/metrics", timeout=10) as response:
        text = response.read().decode()
    cpu = [line for line in text.splitlines() if line.startswith("container_cpu_usage_seconds_total{")
           and 'service="web"' in line]
    assert len(cpu) == 3 and all('container_label_corral_service="web"' in line for line in cpu)
    assert 'corral_service_replicas_desired{service="web"} 3.0' in text
    assert 'corral_service_replicas_running{service="web"} 3.0' in text
    balanced = [line for line in text.splitlines()
                if line.startswith('corral_service_connections_total{result="balanced",service="web"}')]
    assert balanced and float(balanced[0].split()[-1]) >= 10, balanced


def test_scale_to_five_and_to_two(daemon, service):
    daemon.cli("service", "scale", "web=5", timeout=120)
    assert len(running(daemon, "web")) == 5
    until(lambda: len(inspect(daemon, "web")["balanced"]) == 5, what="five replicas balanced")
    answers = {get(service) for _ in range(60)}
    assert len(answers) >= 3
    daemon.cli("service", "scale", "web=2", timeout=120)
    tasks = running(daemon, "web")
    assert sorted(t["slot"] for t in tasks) == [1, 2]
    assert len(inspect(daemon, "web")["balanced"]) == 2
    assert {get(service) for _ in range(20)} <= {t["id"][:12] for t in tasks}


def test_a_killed_replica_is_replaced(daemon, service):
    victim = running(daemon, "web")[1]
    daemon.cli("kill", victim["id"])
    replaced = until(lambda: [t for t in running(daemon, "web") if t["slot"] == victim["slot"]
                              and t["id"] != victim["id"]], what="a replacement in the victim's slot")
    assert len(running(daemon, "web")) == 3
    until(lambda: replaced[0]["address"] in inspect(daemon, "web")["balanced"], what="the replacement balanced")
    assert victim["address"] not in inspect(daemon, "web")["balanced"] or victim["address"] == replaced[0]["address"]
    assert any(t["name"] == victim["name"] and t["state"].startswith("exited")
               for t in inspect(daemon, "web")["tasks"])


class Traffic:
    """A request every 50 ms through the published port; counts what failed."""

    def __init__(self, port: int) -> None:
        self.port, self.ok, self.failures = port, 0, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                get(self.port, timeout=5)
                self.ok += 1
            except (OSError, urllib.error.URLError) as exc:
                self.failures.append(repr(exc))
            self._stop.wait(0.05)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()


def test_rolling_update_to_another_tag_fails_no_request(daemon, service):
    daemon.cli("tag", "busybox:latest", "busybox:v2")
    old = {t["id"] for t in running(daemon, "web")}
    with Traffic(service) as traffic:
        time.sleep(0.5)
        daemon.cli("service", "update", "--image", "busybox:v2", "web", timeout=180)
        time.sleep(0.5)
    assert traffic.failures == [] and traffic.ok > 20, (traffic.ok, traffic.failures)
    now = running(daemon, "web")
    assert len(now) == 3 and all(t["image"] == "busybox:v2" for t in now) and not old & {t["id"] for t in now}
    ps = daemon.out("service", "ps", "web")
    assert "busybox:v2" in ps and "replaced" in ps and "busybox " in ps   # old and new
    assert inspect(daemon, "web")["update_state"] == "completed"


def test_start_first_update_keeps_capacity(daemon, service):
    with Traffic(service) as traffic:
        daemon.cli("service", "update", "--env-add", "COLOUR=blue", "--update-order", "start-first",
                   "--update-parallelism", "2", "web", timeout=180)
    assert traffic.failures == [], traffic.failures
    assert len(running(daemon, "web")) == 3 and inspect(daemon, "web")["version"] == 2


def test_a_bad_update_rolls_back(daemon, service):
    before = {t["id"] for t in running(daemon, "web")}
    with Traffic(service) as traffic:
        result = daemon.cli("service", "update", "--args", "sh -c 'exit 3'", "--update-failure-action", "rollback",
                            "web", check=False, timeout=180)
    assert result.returncode == 1, result
    assert b"rolled back" in result.stderr and b"exited with code 3" in result.stderr
    state = inspect(daemon, "web")
    assert state["update_state"] == "rollback_completed" and state["spec"]["command"] == SERVE
    now = running(daemon, "web")
    assert len(now) == 3 and all(t["current"] for t in now)
    assert len(before - {t["id"] for t in now}) <= 1      # stop-first: one replica was tried, the rest stayed
    assert traffic.failures == [], traffic.failures
    assert len({get(service) for _ in range(30)}) >= 2


def test_an_unhealthy_replica_leaves_the_balancer_and_is_replaced(daemon):
    port = free_port()
    create(daemon, "checked", port, "--replicas", "2", "--health-cmd", "test -f /www/index.html",
           "--health-interval", "0.3s", "--health-retries", "1")
    try:
        until(lambda: len(inspect(daemon, "checked")["balanced"]) == 2, what="both replicas healthy and balanced")
        sick = running(daemon, "checked")[0]
        daemon.cli("exec", sick["id"], "rm", "/www/index.html")
        until(lambda: any(t["name"] == sick["name"] and t["state"].startswith("unhealthy")
                          for t in inspect(daemon, "checked")["tasks"]), what="the sick replica replaced")
        now = until(lambda: [t for t in running(daemon, "checked") if t["slot"] == sick["slot"]],
                    what="a new replica in its slot")
        assert now[0]["id"] != sick["id"]
        until(lambda: len(inspect(daemon, "checked")["balanced"]) == 2, what="the new replica healthy and balanced")
        answers = {get(port) for _ in range(20)}
        assert sick["id"][:12] not in answers and len(answers) == 2
    finally:
        daemon.cli("service", "rm", "checked", timeout=120)


def test_bad_input_is_refused_and_changes_nothing(daemon):
    port = free_port()
    before = daemon.out("ps", "-a", "-q")
    for args, words in [
        (["--replicas", "-1"], "--replicas '-1'"),
        (["--replicas", "100000"], "--replicas '100000'"),
    ]:
        result = daemon.cli("service", "create", "--name", "bad", *args, "busybox", check=False)
        assert result.returncode == 125 and words.encode() in result.stderr, result
    result = daemon.cli("service", "create", "--name", "bad", "nosuchimage:1", check=False)
    assert result.returncode == 125 and b"nosuchimage:1" in result.stderr and b"not on this host" in result.stderr
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", port))
        busy.listen()
        result = daemon.cli("service", "create", "--name", "bad", "-p", f"{port}:80", "busybox", check=False)
    assert result.returncode == 125 and f"{port}".encode() in result.stderr and b"in use" in result.stderr
    create(daemon, "first", port, "--replicas", "1")
    try:
        result = daemon.cli("service", "create", "--name", "bad", "-p", f"{port}:80", "busybox", check=False)
        assert result.returncode == 125 and b"already published by service first" in result.stderr
        result = daemon.cli("run", "-d", "--name", "bad", "-p", f"{port}:80", "busybox", "sleep", "9", check=False)
        assert result.returncode == 125 and b"already published by service first" in result.stderr
        result = daemon.cli("service", "scale", "first=-2", check=False)
        assert result.returncode == 125 and b"first=" in result.stderr
        result = daemon.cli("service", "update", "--image", "nosuchimage:2", "first", check=False)
        assert result.returncode == 125 and b"nosuchimage:2" in result.stderr
        assert inspect(daemon, "first")["spec"]["image"] == "busybox" and inspect(daemon, "first")["version"] == 1
    finally:
        daemon.cli("service", "rm", "first", timeout=120)
    assert "bad" not in daemon.out("service", "ls")
    assert daemon.out("ps", "-a", "-q") == before


def test_daemon_restart_finds_the_same_replicas(daemon, service):
    before = sorted((t["slot"], t["id"]) for t in running(daemon, "web"))
    daemon.stop()
    assert {get(service) for _ in range(20)} <= {i[:12] for _, i in before}    # served while the daemon is down
    daemon.start()
    time.sleep(3)    # a reconciler pass or more
    assert sorted((t["slot"], t["id"]) for t in running(daemon, "web")) == before
    assert len([c for c in daemon.out("ps", "-q").split()]) == 3
    assert len({get(service) for _ in range(60)}) >= 2


def test_rm_leaves_no_container_cgroup_rule_or_veth(daemon):
    port = free_port()
    create(daemon, "gone", port, "--replicas", "2")
    ids = [t["id"] for t in running(daemon, "gone")]
    assert "corral:service:gone" in nft_table()
    daemon.cli("service", "rm", "gone", timeout=120)
    assert daemon.out("ps", "-a", "-q") == ""
    assert "corral:service:gone" not in nft_table()
    for container_id in ids:
        assert glob.glob(f"/sys/fs/cgroup/*/corral/{container_id}") == []
        assert glob.glob(f"/sys/class/net/cv{container_id[:12]}") == []
        assert f"corral:container:{container_id}" not in nft_table()
    with pytest.raises(OSError):
        get(port, timeout=2)
    assert "gone" not in daemon.out("service", "ls")


def test_policies_select_a_service_and_explain_it(tmp_path):
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "web.yaml").write_text("apiVersion: corral/v1\nkind: Policy\nmetadata: {name: web-memory}\n"
                                       "spec:\n  selector: {services: [web]}\n  limits: {memory: 48Mi}\n")
    with running_daemon("--policies", str(policies)) as pdaemon:
        create(pdaemon, "web", free_port(), "--replicas", "2")
        pdaemon.cli("run", "-d", "--name", "web", "busybox", "sleep", "60")     # a container named web: no replica
        try:
            replicas = [t["id"] for t in running(pdaemon, "web")]
            for container_id in replicas:
                limits = json.loads(pdaemon.out("inspect", container_id))[0]["Limits"]
                assert limits["memory_bytes"] == 48 << 20, limits
            assert json.loads(pdaemon.out("inspect", "web"))[0]["Limits"]["memory_bytes"] != 48 << 20
            text = pdaemon.out("policy", "explain", "web")
            assert text.startswith("Container: web")          # a container's name comes first
            pdaemon.cli("rm", "-f", "web")
            text = pdaemon.out("policy", "explain", "web")
            assert text.startswith("Service: web (2 replicas)") and text.count("web-memory") >= 2, text
        finally:
            pdaemon.cli("service", "rm", "web", check=False, timeout=120)
