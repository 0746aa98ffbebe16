"""Health checks for real: a daemon with a policy folder, busybox containers with --health-*
flags and an image with a HEALTHCHECK. A failing check turns the container unhealthy (and a
passing one back healthy) in ps and inspect, emits health_status events, moves the
corral_container_health gauge and fires a policy's `unhealthy` threshold alert."""
from __future__ import annotations

import hashlib
import json
import tarfile
import time
from pathlib import Path

import pytest

from tests.integration.test_policies import (  # noqa: F401  (the daemon, policy and container fixtures)
    containers,
    events,
    metric,
    pdaemon,
    policies_dir,
    policy_events,
    policy_files,
    wait_until,
)

pytestmark = pytest.mark.privileged

FAST = ["--health-interval", "0.3s", "--health-timeout", "5s"]


def health(daemon, name: str) -> dict | None:
    return json.loads(daemon.out("inspect", name))[0]["State"].get("Health")


def status_in_ps(daemon, name: str) -> str:
    rows = json.loads(daemon.out("ps", "--format", "json"))
    row = next(r for r in rows if r["name"] == name)
    table = daemon.out("ps")
    line = next(line for line in table.splitlines() if line.endswith(" " + name))
    return f"{row.get('health')}|{line}"


def health_id(daemon, name: str) -> str:
    return json.loads(daemon.out("inspect", name))[0]["Id"]


def health_events(daemon, since: float, name: str) -> list[str]:
    return [e["attributes"]["status"] for e in events(daemon, since)
            if e["action"] == "health_status" and e["name"] == name]


def test_a_failing_check_turns_the_container_unhealthy_and_back(pdaemon, policy_files, containers):  # noqa: F811
    started = time.time()
    policy_files.write("health.yaml", "health-watch", """
selector: {names: ["hc-*"]}
thresholds:
  - {name: sick, signal: unhealthy, above: 0, actions: [alert]}
""")
    containers.append("hc-1")
    pdaemon.cli("run", "-d", "--name", "hc-1", *FAST, "--health-retries", "2",
                "--health-cmd", "cat /tmp/ok", "busybox", "sh", "-c", "echo fine > /tmp/ok; exec sleep 300")
    wait_until(lambda: (health(pdaemon, "hc-1") or {}).get("Status") == "healthy", what="hc-1 healthy")
    assert "Up " in status_in_ps(pdaemon, "hc-1") and "(healthy)" in status_in_ps(pdaemon, "hc-1")
    assert metric(pdaemon, "corral_container_health", name="hc-1", status="healthy") == 1

    pdaemon.cli("exec", "hc-1", "rm", "/tmp/ok")
    wait_until(lambda: (health(pdaemon, "hc-1") or {}).get("Status") == "unhealthy", what="hc-1 unhealthy")
    state = health(pdaemon, "hc-1")
    assert state["FailingStreak"] >= 2 and 2 <= len(state["Log"]) <= 5
    last = state["Log"][-1]
    assert last["ExitCode"] == 1 and "No such file" in last["Output"]
    assert last["Start"] <= last["End"] and last["End"].endswith("Z")
    assert status_in_ps(pdaemon, "hc-1").startswith("unhealthy|") and "(unhealthy)" in status_in_ps(pdaemon, "hc-1")
    hc1 = health_id(pdaemon, "hc-1")
    assert pdaemon.out("ps", "-q", "--filter", "health=unhealthy").split() == [hc1[:12]]
    assert hc1[:12] not in pdaemon.out("ps", "-q", "--filter", "health=healthy").split()
    assert wait_until(lambda: "unhealthy" in health_events(pdaemon, started, "hc-1"), what="the event")
    assert metric(pdaemon, "corral_container_health", name="hc-1", status="unhealthy") == 1
    assert metric(pdaemon, "corral_container_health", name="hc-1", status="healthy") == 0
    violation = wait_until(lambda: policy_events(pdaemon, started, "hc-1", "violation"), what="the policy to fire")
    assert violation[0]["attributes"]["rule"] == "sick" and violation[0]["attributes"]["value"] == 1
    assert wait_until(lambda: policy_events(pdaemon, started, "hc-1", "alert"), what="the alert")
    assert metric(pdaemon, "corral_policy_violations_total", policy="health-watch", rule="sick",
                  action="alert", name="hc-1") == 1

    pdaemon.cli("exec", "hc-1", "sh", "-c", "echo fine > /tmp/ok")
    wait_until(lambda: (health(pdaemon, "hc-1") or {}).get("Status") == "healthy", what="hc-1 healthy again")
    assert health(pdaemon, "hc-1")["FailingStreak"] == 0
    assert health_events(pdaemon, started, "hc-1")[-2:] == ["unhealthy", "healthy"]
    wait_until(lambda: policy_events(pdaemon, started, "hc-1", "resolved"), what="the rule to resolve")
    # Health checks are not exec events: the log is not flooded by them.
    execs = [e for e in events(pdaemon, started) if e["action"] == "exec_start" and e["name"] == "hc-1"]
    assert len(execs) == 2                                   # the two execs of this test


def test_timeout_and_start_period(pdaemon, containers):  # noqa: F811
    containers.extend(["hc-slow", "hc-warming"])
    pdaemon.cli("run", "-d", "--name", "hc-slow", "--health-interval", "0.3s", "--health-timeout", "0.5s",
                "--health-retries", "1", "--health-cmd", "sleep 30", "busybox", "sleep", "300")
    wait_until(lambda: (health(pdaemon, "hc-slow") or {}).get("Status") == "unhealthy", what="hc-slow unhealthy")
    last = health(pdaemon, "hc-slow")["Log"][-1]
    assert last["ExitCode"] == -1 and last["Output"] == "Health check exceeded timeout (0.5s)"
    # The timed-out commands were killed and reaped: no zombies, at most the check under way.
    time.sleep(1.5)
    table = pdaemon.cli("exec", "hc-slow", "ps", "-o", "stat,args").stdout.decode().splitlines()
    assert not [line for line in table if line.startswith("Z")], table
    assert len([line for line in table if line.endswith("sleep 30")]) <= 1, table

    pdaemon.cli("run", "-d", "--name", "hc-warming", *FAST, "--health-retries", "1", "--health-start-period", "1h",
                "--health-cmd", "false", "busybox", "sleep", "300")
    wait_until(lambda: len((health(pdaemon, "hc-warming") or {}).get("Log", [])) >= 3, what="three checks")
    state = health(pdaemon, "hc-warming")
    assert state["Status"] == "starting" and state["FailingStreak"] == 0
    assert "(health: starting)" in status_in_ps(pdaemon, "hc-warming")


def oci_layout_with_healthcheck(daemon, tmp_path: Path, healthcheck: dict) -> Path:
    """busybox saved by `corral save`, its config given a Healthcheck, as an OCI layout."""
    archive = tmp_path / "busybox.tar"
    daemon.cli("save", "-o", str(archive), "busybox")
    layout = tmp_path / "layout"
    with tarfile.open(archive) as tar:
        tar.extractall(layout)      # our own `corral save` output

    def blob(digest: str) -> Path:
        return layout / "blobs" / "sha256" / digest.split(":", 1)[1]

    def put(data: dict) -> tuple[str, int]:
        raw = json.dumps(data).encode()
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        blob(digest).write_bytes(raw)
        return digest, len(raw)
    index = json.loads((layout / "index.json").read_text())
    descriptor = index["manifests"][0]
    manifest = json.loads(blob(descriptor["digest"]).read_text())
    config = json.loads(blob(manifest["config"]["digest"]).read_text())
    config.setdefault("config", {})["Healthcheck"] = healthcheck
    manifest["config"]["digest"], manifest["config"]["size"] = put(config)
    descriptor["digest"], descriptor["size"] = put(manifest)
    (layout / "index.json").write_text(json.dumps(index))
    return layout


def test_an_images_healthcheck_applies_unless_turned_off(pdaemon, containers, tmp_path):  # noqa: F811
    layout = oci_layout_with_healthcheck(pdaemon, tmp_path, {
        "Test": ["CMD-SHELL", "test -e /tmp/ready"], "Interval": 300_000_000, "Retries": 1})
    pdaemon.cli("image", "import", "--name", "checked:1", str(layout))
    containers.extend(["hc-image", "hc-off", "hc-override"])
    pdaemon.cli("run", "-d", "--name", "hc-image", "checked:1", "sh", "-c", "touch /tmp/ready; exec sleep 300")
    wait_until(lambda: (health(pdaemon, "hc-image") or {}).get("Status") == "healthy", what="the image's check")
    pdaemon.cli("run", "-d", "--name", "hc-override", "--health-cmd", "false", "checked:1", "sleep", "300")
    wait_until(lambda: (health(pdaemon, "hc-override") or {}).get("Status") == "unhealthy",
               what="the flag's command over the image's, with the image's interval and retries")
    pdaemon.cli("run", "-d", "--name", "hc-off", "--no-healthcheck", "checked:1", "sleep", "300")
    time.sleep(1.0)
    assert health(pdaemon, "hc-off") is None
    assert status_in_ps(pdaemon, "hc-off").startswith("None|") and "(" not in status_in_ps(pdaemon, "hc-off")
    pdaemon.cli("rm", "-f", "hc-image", "hc-off", "hc-override")
    pdaemon.cli("image", "rm", "checked:1")


@pytest.mark.parametrize("flags, message", [
    (["--no-healthcheck", "--health-cmd", "true"], "--no-healthcheck conflicts with --health-cmd"),
    (["--health-retries", "0"], "healthcheck.retries"),
    (["--health-interval", "soon"], "--health-interval"),
])
def test_bad_health_flags_exit_125_naming_the_flag(pdaemon, flags, message):  # noqa: F811
    result = pdaemon.cli("run", "--rm", *flags, "busybox", "true", check=False)
    assert result.returncode == 125 and message in result.stderr.decode()
    assert pdaemon.out("ps", "-a", "-q") == ""


def test_health_carries_on_across_a_daemon_restart(pdaemon, containers):  # noqa: F811
    containers.append("hc-restart")
    pdaemon.cli("run", "-d", "--name", "hc-restart", *FAST, "--health-cmd", "true", "busybox", "sleep", "300")
    wait_until(lambda: len((health(pdaemon, "hc-restart") or {}).get("Log", [])) >= 2, what="two checks")
    pdaemon.stop()
    pdaemon.start()
    state = health(pdaemon, "hc-restart")
    assert state["Status"] == "healthy" and state["Log"]        # kept, not starting over
    last = state["Log"][-1]["Start"]
    wait_until(lambda: health(pdaemon, "hc-restart")["Log"][-1]["Start"] > last, what="checks after the restart")
    assert "(healthy)" in status_in_ps(pdaemon, "hc-restart")
