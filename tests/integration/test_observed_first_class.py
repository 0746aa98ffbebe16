"""An observed container is first-class: a cgroup the test makes the way docker's systemd driver
lays one out (`system.slice/docker-<id>.scope` in the unified and every v1 tree), with real
processes in it, gets syscall series in /metrics, a `corral stats` row, `corral policy explain`,
its policy's memory limit, an OOM event in `corral events` and container_oom_events_total == 1.

Everything lives below the test's own `/corral-observe-test-<rand>` subtree (the daemon observes
only there) and is removed in teardown, processes first.
"""
from __future__ import annotations

import json
import re

import pytest

from tests.integration.corral_daemon import CorralDaemon
from tests.integration.test_observe import (  # noqa: F401 - tree: fixture
    hexid,
    metrics,
    observed,
    tree,
    wait_until,
    write_json,
)

pytestmark = pytest.mark.privileged

POLICY = """apiVersion: corral/v1
kind: Policy
metadata: {name: shop-db-memory}
spec:
  selector: {names: ["shop-db"]}
  limits: {memory: 48Mi}
"""


def series(text: str, family: str, name: str) -> list[float]:
    return [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line.startswith(family + "{") and f'name="{name}"' in line]


def test_an_observed_container_gets_every_feature_of_corrals_own(tmp_path, tree):  # noqa: F811 - the fixture
    state = tmp_path / "host"
    docker_id = hexid()
    write_json(state / f"var/lib/docker/containers/{docker_id}/config.v2.json",
               {"Name": "/shop-db", "Config": {"Image": "postgres:16", "Labels": {"team": "shop"}}})
    rel = tree.make(f"/system.slice/docker-{docker_id}.scope")
    tree.run_in(rel, "sh", "-c", "while :; do cat /proc/self/stat >/dev/null; done")   # makes syscalls
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "shop.yaml").write_text(POLICY)

    daemon = CorralDaemon(tmp_path / "corral", "--no-network", "--config", "none", "--policies", str(policies),
                          "--observe-root", tree.root, "--observe-state-root", str(state))
    daemon.start()
    try:
        assert wait_until(lambda: "shop-db" in observed(daemon)), f"observed: {sorted(observed(daemon))}"

        # Syscall series, as for Corral's own containers.
        assert wait_until(lambda: any(v > 0 for v in series(metrics(daemon), "corral_syscalls_total", "shop-db"))), \
            "no corral_syscalls_total series for the observed container"

        # A `corral stats` row with figures read from its cgroup and the probes.
        rows = [json.loads(line) for line in daemon.out("stats", "--no-stream", "--format", "json").splitlines()]
        [row] = [r for r in rows if r["name"] == "shop-db"]
        assert row["memory_bytes"] and row["pids"] and row["syscalls_per_second"] > 0

        # `policy explain` names the policy, and the limit is in force in its (v1 or v2) cgroup.
        def explained():
            answer = json.loads(daemon.out("policy", "explain", "shop-db", "--format", "json"))
            limits = answer.get("limits_in_force") or {}
            return answer if limits.get("memory_bytes") == 48 << 20 else None
        explain = wait_until(explained)
        assert explain, "the policy's memory limit is not in force on the observed container"
        assert explain["observed"] is True and explain["runtime"] == "docker"
        assert "shop-db-memory" in json.dumps(explain["effective"])
        assert explain["seccomp"]["filter_in_force"].startswith("not applicable")

        # An OOM kill inside it: the event names the container, and the counter is 1.
        tree.run_in(rel, "sh", "-c", "sleep 1; exec tail /dev/zero")
        assert wait_until(lambda: re.search(r"container oom .*shop-db|shop-db.*container oom",
                                            daemon.out("events", "--since", "0"))), \
            "no OOM event for the observed container"
        assert wait_until(lambda: series(metrics(daemon), "container_oom_events_total", "shop-db") == [1.0]), \
            f"container_oom_events_total: {series(metrics(daemon), 'container_oom_events_total', 'shop-db')}"
    finally:
        assert daemon.stop() == 0
