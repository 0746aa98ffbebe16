"""The pressure, throttling and growth signals from a real container's cgroup: a busy loop
under a small CPU quota is throttled, and a policy on `cpu_throttled_percent` fires."""
from __future__ import annotations

import json
import time

import pytest

from tests.integration.corral_daemon import running_daemon

pytestmark = pytest.mark.privileged

POLICY = """\
apiVersion: corral/v1
kind: Policy
metadata: {name: throttle-watch}
spec:
  selector: {names: ["spin-*"]}
  mode: audit
  thresholds:
    - {name: throttled, signal: cpu_throttled_percent, above: 50, for: 1s, actions: [alert]}
    - {name: growing, signal: memory_growth_bytes_per_second, above: 1Mi, actions: [alert]}
"""


def test_a_throttled_container_fires_cpu_throttled_percent(tmp_path):
    (tmp_path / "watch.yaml").write_text(POLICY)
    with running_daemon("--policies", str(tmp_path), "--policy-interval", "0.5") as daemon:
        cid = daemon.out("run", "-d", "--name", "spin-1", "--cpus", "0.1", "busybox", "sh", "-c",
                         "while :; do :; done")
        try:
            deadline, fired = time.monotonic() + 30, []
            while time.monotonic() < deadline and not fired:
                events = [json.loads(line) for line in daemon.out("events", "--format", "json").splitlines()]
                fired = [e for e in events if e["type"] == "policy" and e["action"] == "violation"
                         and e["id"] == cid and e["attributes"].get("rule") == "throttled"]
                time.sleep(0.3)
            assert fired, "cpu_throttled_percent never crossed 50 for a loop under --cpus 0.1"
            assert fired[0]["attributes"]["value"] > 50
            explained = daemon.out("policy", "explain", "spin-1")
            assert "throttled" in explained
        finally:
            daemon.cli("rm", "-f", cid)
