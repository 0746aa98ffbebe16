"""Incident bundles against a real daemon: a policy freeze is captured before it happens (the
processes are in the bundle), an OOM kill too, and the CLI lists, shows and exports them."""
from __future__ import annotations

import json
import tarfile
import time

import pytest

from tests.integration.corral_daemon import running_daemon

pytestmark = pytest.mark.privileged

POLICY = """\
apiVersion: corral/v1
kind: Policy
metadata: {name: freeze-forks}
spec:
  selector: {names: ["frz-*"]}
  mode: enforce
  thresholds:
    - {name: too-many, signal: pids, above: 3, actions: [alert, freeze]}
"""


def _wait_for(daemon, kind: str, name: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for bundle in json.loads(daemon.out("incidents", "ls", "--format", "json")):
            if bundle["kind"] == kind and (bundle.get("container") or {}).get("name") == name:
                return json.loads(daemon.out("incidents", "show", "--format", "json", bundle["id"]))
        time.sleep(0.2)
    raise AssertionError(f"no {kind} incident for {name} within {timeout} s")


@pytest.fixture(scope="module")
def idaemon(tmp_path_factory):
    policies = tmp_path_factory.mktemp("policies")
    (policies / "freeze.yaml").write_text(POLICY)
    with running_daemon("--policies", str(policies), "--policy-interval", "0.2") as instance:
        yield instance


def test_a_freeze_is_captured_with_the_processes_before_it_happens(idaemon, tmp_path):
    cid = idaemon.out("run", "-d", "--name", "frz-1", "busybox", "sh", "-c",
                      "sleep 601 & sleep 602 & sleep 603 & sleep 604 & wait")
    try:
        bundle = _wait_for(idaemon, "freeze", "frz-1")
        assert bundle["trigger"]["policy"] == "freeze-forks" and bundle["trigger"]["rule"] == "too-many"
        commands = [" ".join(p["cmdline"]) for p in bundle["processes"]]
        assert {"sleep 601", "sleep 602", "sleep 603", "sleep 604"} <= set(commands)
        # Taken before the freeze: no process of the bundle was stopped yet.
        assert all(p["state"] != "T" for p in bundle["processes"])
        assert bundle["effective_policy"]["thresholds"][0]["rule"] == "freeze-forks/too-many"
        assert bundle["container"]["id"] == cid
        listed = idaemon.out("incidents", "ls")
        assert bundle["id"] in listed and "freeze-forks/too-many" in listed
        shown = idaemon.out("incidents", "show", bundle["id"])
        assert "sleep 603" in shown and "kind      freeze" in shown
        archive = tmp_path / "bundle.tar.gz"
        idaemon.cli("incidents", "export", "-o", str(archive), bundle["id"])
        with tarfile.open(archive) as opened:
            assert f"{bundle['id']}/incident.json" in opened.getnames()
        events = idaemon.out("events", "--format", "json")
        assert bundle["id"] in events          # the `incident created` event, and the freeze event naming it
    finally:
        idaemon.cli("unfreeze", "frz-1", check=False)
        idaemon.cli("rm", "-f", cid, check=False)


def test_an_oom_kill_is_captured(idaemon):
    cid = idaemon.out("run", "-d", "--name", "hog-1", "-m", "16m", "busybox", "sh", "-c",
                      "sleep 605 & tail /dev/zero; sleep 606")
    try:
        bundle = _wait_for(idaemon, "oom", "hog-1")
        assert bundle["container"]["id"] == cid
        commands = [" ".join(p.get("cmdline", [])) for p in bundle["processes"]]
        assert "sleep 605" in commands
    finally:
        idaemon.cli("rm", "-f", cid, check=False)


def test_unknown_and_malformed_ids_are_refused(idaemon):
    result = idaemon.cli("incidents", "show", "20260101-000000-000-abc-kill", check=False)
    assert result.returncode == 125 and b"not found" in result.stderr
    result = idaemon.cli("incidents", "show", "../../etc/passwd", check=False)
    assert result.returncode == 125 and b"is not one Corral made" in result.stderr
