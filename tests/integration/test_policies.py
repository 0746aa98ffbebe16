"""Policies in the running daemon, for real: a daemon started with `--policies DIR`, busybox
containers run through the CLI, policy files written into DIR while it runs.

DIR is a git checkout holding the repo's policies/default.yaml (so every container here also
runs under the shipped default policy); each test adds its own policy file, selecting only
its own containers by name, and removes it at the end. Waits poll for what a user would see
(events, cgroup files, CLI output) with generous deadlines; nothing asserts on speed.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests.integration.corral_daemon import running_daemon

pytestmark = pytest.mark.privileged

REPO = Path(__file__).resolve().parents[2]
INTERVAL = 0.5          # --policy-interval: evaluations and reloads every half second
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def policies_dir():
    if os.geteuid() != 0:
        pytest.skip("needs root: runs a real daemon")
    directory = Path(tempfile.mkdtemp(prefix="corral-policies-", dir="/var/tmp"))
    try:
        shutil.copy(REPO / "policies" / "default.yaml", directory / "default.yaml")
        git = ["git", "-C", str(directory), "-c", "user.name=t", "-c", "user.email=t@example.com"]
        subprocess.run(["git", "init", "-q", str(directory)], check=True)
        subprocess.run(git + ["add", "default.yaml"], check=True)
        subprocess.run(git + ["commit", "-q", "-m", "default policy"], check=True)
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def pdaemon(policies_dir):
    """A real daemon following `policies_dir`, shared by this module's tests."""
    with running_daemon("--policies", str(policies_dir), "--policy-interval", str(INTERVAL)) as instance:
        yield instance


# --- helpers ---------------------------------------------------------------------------------

def wait_until(predicate, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def listed(daemon) -> dict:
    return json.loads(daemon.out("policy", "ls", "--format", "json"))


def loaded_names(daemon) -> set[str]:
    return {p["name"] for p in listed(daemon)["policies"]}


class PolicyFiles:
    """Writes policy files into the daemon's folder, waits until they are in force, and
    removes them (and waits until they are gone) at the end of the test."""

    def __init__(self, directory: Path, daemon) -> None:
        self.directory = directory
        self.daemon = daemon
        self.written: dict[Path, str] = {}

    def write(self, file: str, name: str, spec: str, *, wait: bool = True) -> Path:
        path = self.directory / file
        indented = "\n".join("  " + line for line in spec.strip("\n").splitlines())
        path.write_text(f"apiVersion: corral/v1\nkind: Policy\nmetadata:\n  name: {name}\nspec:\n{indented}\n")
        self.written[path] = name
        if wait:
            wait_until(lambda: name in loaded_names(self.daemon), what=f"policy {name} to load")
        return path

    def remove_all(self) -> None:
        for path in self.written:
            path.unlink(missing_ok=True)
        for name in self.written.values():
            wait_until(lambda name=name: name not in loaded_names(self.daemon), what=f"policy {name} to unload")


@pytest.fixture
def policy_files(policies_dir, pdaemon):
    files = PolicyFiles(policies_dir, pdaemon)
    try:
        yield files
    finally:
        files.remove_all()


@pytest.fixture
def containers(pdaemon):
    """Names of containers a test starts; removed at the end even when the test fails."""
    names: list[str] = []
    yield names
    if names:
        pdaemon.cli("rm", "-f", *names, check=False)


def events(daemon, since: float) -> list[dict]:
    out = daemon.out("events", "--since", str(since), "--format", "json")
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def policy_events(daemon, since: float, name: str, action: str | None = None) -> list[dict]:
    return [e for e in events(daemon, since) if e["type"] == "policy" and e["name"] == name
            and (action is None or e["action"] == action)]


def container_id(daemon, name: str) -> str:
    return json.loads(daemon.out("inspect", name))[0]["Id"]


def cgroup_file(daemon, name: str, filename: str) -> Path:
    found = glob.glob(f"/sys/fs/cgroup/*/corral/{container_id(daemon, name)}/{filename}")
    assert found, f"no {filename} for container {name}"
    return Path(found[0])


def read_int(path: Path) -> int:
    return int(path.read_text().split()[0])


def scrape(daemon) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{daemon.metrics_port}/metrics", timeout=10) as response:
        return response.read().decode()


def metric(daemon, metric_name: str, **labels) -> float:
    """The sample's value, 0 when the series does not exist (yet)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    prefix = f"{metric_name}{{{wanted}}} " if labels else f"{metric_name} "
    for line in scrape(daemon).splitlines():
        if line.startswith(prefix):
            return float(line.split()[-1])
    return 0.0


def logs(daemon, name: str) -> list[str]:
    return daemon.cli("logs", name).stdout.decode().split()


# --- tests ----------------------------------------------------------------------------------

def test_default_policies_leave_ordinary_containers_alone(pdaemon):
    result = pdaemon.cli("run", "--rm", "busybox", "sh", "-c",
                         "mkdir /tmp/d && echo hi > /tmp/d/f && cat /tmp/d/f && ls / >/dev/null", check=True)
    assert result.stdout.decode().strip() == "hi"
    assert metric(pdaemon, "corral_policy_loaded", policy="default", mode="enforce") == 1


def test_denied_syscall_fails_with_eperm_at_start_and_in_exec(pdaemon, policy_files, containers):
    policy_files.write("deny.yaml", "deny-mkdir", """
selector: {names: ["deny-*"]}
syscalls:
  - {name: no-mkdir, names: [mkdir, mkdirat], action: deny}
""")
    result = pdaemon.cli("run", "--rm", "--name", "deny-1", "busybox", "sh", "-c",
                         "mkdir /tmp/x; echo rc=$?; unshare -U true; echo userns=$?; "
                         "grep Seccomp_filters /proc/self/status")
    assert "Operation not permitted" in result.stderr.decode()
    # The deny rules are merged into the default profile: one filter, and both apply.
    assert result.stdout.decode().split() == ["rc=1", "userns=1", "Seccomp_filters:", "1"]
    containers.append("deny-2")
    pdaemon.cli("run", "-d", "--name", "deny-2", "busybox", "sleep", "60")
    exec_result = pdaemon.cli("exec", "deny-2", "mkdir", "/tmp/y", check=False)
    assert exec_result.returncode != 0
    assert "Operation not permitted" in exec_result.stderr.decode()
    # a container the policy does not select is not affected
    ok = pdaemon.cli("run", "--rm", "--name", "other-1", "busybox", "sh", "-c", "mkdir /tmp/x && echo made")
    assert ok.stdout.decode().strip() == "made"


def test_audit_mode_records_the_violations_and_changes_nothing(pdaemon, policy_files, containers):
    started = time.time()
    policy_files.write("audit.yaml", "audit-try", """
selector: {names: ["audit-*"]}
mode: audit
syscalls:
  - {name: no-mkdir, names: [mkdir, mkdirat], action: deny}
thresholds:
  - {name: any-memory, signal: memory_bytes, above: 0, for: 1s, actions: [alert, kill]}
""")
    containers.append("audit-1")
    pdaemon.cli("run", "-d", "--name", "audit-1", "busybox", "sh", "-c",
                "mkdir /tmp/a && echo made; sleep 60")
    violations = wait_until(lambda: [e for e in policy_events(pdaemon, started, "audit-1", "violation")
                                     if e["attributes"]["rule"] == "any-memory"],
                            what="the audit violation")
    attributes = violations[0]["attributes"]
    assert attributes["mode"] == "audit"
    assert attributes["actions"] == ["alert"] and attributes["suppressed"] == ["kill"]
    assert wait_until(lambda: "made" in logs(pdaemon, "audit-1"), what="mkdir to succeed")
    state = json.loads(pdaemon.out("inspect", "audit-1"))[0]["State"]
    assert state["Running"] is True
    assert not policy_events(pdaemon, started, "audit-1", "kill")
    probes = json.loads(pdaemon.out("info", "--format", "json")).get("probes") or {}
    if any(probes.values()):
        # The audited deny rule is recorded from the probes' syscall counters.
        syscall = wait_until(lambda: [e for e in policy_events(pdaemon, started, "audit-1", "violation")
                                      if e["attributes"]["rule"] == "no-mkdir"],
                             what="the audited mkdir to be recorded")
        assert syscall[0]["attributes"]["syscall"] in ("mkdir", "mkdirat")
        assert syscall[0]["attributes"]["suppressed"] == ["deny"]


def test_memory_threshold_fires_after_its_hold_and_resolves(pdaemon, policy_files, containers):
    started = time.time()
    policy_files.write("mem.yaml", "mem-hold", """
selector: {names: ["mem-*"]}
thresholds:
  - {name: big, signal: memory_bytes, above: 24Mi, for: 1s, actions: [alert]}
""")
    containers.extend(["mem-1", "mem-2"])
    # mem-1 fills 40 MiB of page cache, keeps it a few seconds, then frees it.
    pdaemon.cli("run", "-d", "--name", "mem-1", "busybox", "sh", "-c",
                "dd if=/dev/zero of=/tmp/fill bs=1M count=40 2>/dev/null; sleep 4; rm /tmp/fill; sleep 60")
    resolved = wait_until(lambda: policy_events(pdaemon, started, "mem-1", "resolved"), timeout=30,
                          what="the memory rule to resolve")
    story = [e for e in policy_events(pdaemon, started, "mem-1") if e["action"] in ("violation", "alert", "resolved")]
    assert [e["action"] for e in story] == ["violation", "alert", "resolved"]
    violation = story[0]["attributes"]
    assert violation["rule"] == "big" and violation["value"] > 24 * MiB
    assert violation["time"] - violation["since"] >= 1.0      # held for its `for:` before firing
    assert resolved[0]["attributes"]["reason"] == "cleared"
    assert resolved[0]["attributes"]["actions"] == ["resolve_alert"]
    assert metric(pdaemon, "corral_policy_violations_total", policy="mem-hold", rule="big",
                  action="alert", name="mem-1") == 1
    # mem-2 stays above; removing the container resolves its rule.
    pdaemon.cli("run", "-d", "--name", "mem-2", "busybox", "sh", "-c",
                "dd if=/dev/zero of=/tmp/fill bs=1M count=40 2>/dev/null; sleep 60")
    wait_until(lambda: policy_events(pdaemon, started, "mem-2", "violation"), what="mem-2's violation")
    pdaemon.cli("rm", "-f", "mem-2")
    gone = wait_until(lambda: policy_events(pdaemon, started, "mem-2", "resolved"), what="mem-2 to resolve")
    assert gone[0]["attributes"]["reason"] == "container gone"


def test_throttle_halves_the_cpu_quota_and_restores_it(pdaemon, policy_files, containers):
    policy_files.write("throttle.yaml", "cpu-guard", """
selector: {names: ["throttle-*"]}
thresholds:
  - {name: busy, signal: cpu_percent, above: 20, for: 1s, actions: [throttle]}
""")
    containers.append("throttle-1")
    pdaemon.cli("run", "-d", "--name", "throttle-1", "--cpus", "0.5", "busybox", "sh", "-c",
                "while [ ! -f /tmp/stop ]; do :; done; sleep 60")
    quota = cgroup_file(pdaemon, "throttle-1", "cpu.cfs_quota_us")
    assert read_int(quota) == 50_000
    wait_until(lambda: read_int(quota) == 25_000, what="the quota to be halved")
    pdaemon.cli("exec", "throttle-1", "touch", "/tmp/stop")
    wait_until(lambda: read_int(quota) == 50_000, what="the quota to be restored")
    assert metric(pdaemon, "corral_policy_actions_total", action="throttle", result="ok") >= 1
    assert metric(pdaemon, "corral_policy_actions_total", action="restore", result="ok") >= 1


def test_freeze_stops_progress_and_unfreeze_resumes_it(pdaemon, policy_files, containers):
    started = time.time()
    policy_files.write("freeze.yaml", "fork-guard", """
selector: {names: ["freeze-*"]}
thresholds:
  - {name: forks, signal: pids, above: 3, for: 1s, actions: [alert, freeze]}
""")
    containers.append("freeze-1")
    pdaemon.cli("run", "-d", "--name", "freeze-1", "busybox", "sh", "-c",
                "i=0; while :; do i=$((i+1)); echo $i; usleep 100000; done")
    wait_until(lambda: len(logs(pdaemon, "freeze-1")) > 3, what="the counter to run")
    triggered = time.monotonic()
    pdaemon.cli("exec", "freeze-1", "sh", "-c",
                "for n in 1 2 3; do sleep 4 </dev/null >/dev/null 2>&1 & done")
    wait_until(lambda: policy_events(pdaemon, started, "freeze-1", "freeze"), what="the freeze")
    frozen = cgroup_file(pdaemon, "freeze-1", "cgroup.events")
    wait_until(lambda: "frozen 1" in frozen.read_text(), what="the cgroup to be frozen")
    count = len(logs(pdaemon, "freeze-1"))
    time.sleep(1.0)
    assert len(logs(pdaemon, "freeze-1")) == count           # no progress while frozen
    time.sleep(max(0.0, 4.5 - (time.monotonic() - triggered)))   # the extra sleeps are due to exit
    assert pdaemon.out("unfreeze", "freeze-1") == "freeze-1"
    wait_until(lambda: len(logs(pdaemon, "freeze-1")) > count + 3, what="progress after unfreeze")
    assert "frozen 0" in frozen.read_text()
    resolved = policy_events(pdaemon, started, "freeze-1", "resolved")
    assert resolved and resolved[0]["attributes"]["reason"] == "unfrozen"


def test_kill_threshold_stops_the_container(pdaemon, policy_files, containers):
    policy_files.write("kill.yaml", "kill-guard", """
selector: {names: ["kill-*"]}
thresholds:
  - {name: anything, signal: pids, above: 0, for: 1s, actions: [kill]}
""")
    containers.append("kill-1")
    pdaemon.cli("run", "-d", "--name", "kill-1", "busybox", "sleep", "60")
    assert pdaemon.out("wait", "kill-1") == "137"


def test_edits_apply_live_and_a_broken_edit_keeps_the_old_policy(pdaemon, policy_files, containers):
    path = policy_files.write("limits.yaml", "reload-limits", """
selector: {names: ["reload-*"]}
limits: {memory: 64Mi}
""")
    containers.append("reload-1")
    pdaemon.cli("run", "-d", "--name", "reload-1", "--memory", "128m", "busybox", "sleep", "60")
    limit = cgroup_file(pdaemon, "reload-1", "memory.limit_in_bytes")
    assert read_int(limit) == 64 * MiB                        # the strictest of flag and policy
    path.write_text(path.read_text().replace("64Mi", "48Mi"))
    wait_until(lambda: read_int(limit) == 48 * MiB, what="the new limit on the running container")

    errors_before = metric(pdaemon, "corral_policy_load_errors_total")
    broken_at = time.time()
    path.write_text(path.read_text().replace("48Mi", "lots"))
    wait_until(lambda: metric(pdaemon, "corral_policy_load_errors_total") == errors_before + 1,
               what="the load error to be counted")
    load_errors = policy_events(pdaemon, broken_at, str(path), "load_error")
    assert load_errors and "spec.limits.memory" in load_errors[0]["attributes"]["problems"][0]
    listing = pdaemon.cli("policy", "ls")
    assert "reload-limits" in listing.stdout.decode()          # still in force
    assert f"{path}:" in listing.stderr.decode()
    time.sleep(3 * INTERVAL)
    assert read_int(limit) == 48 * MiB
    path.write_text(path.read_text().replace("lots", "48Mi"))   # fixed: loads again
    wait_until(lambda: not listed(pdaemon)["problems"], what="the fixed file to load")


def test_ls_and_explain_say_what_applies_and_why(pdaemon, policy_files, containers):
    policy_files.write("web.yaml", "web-limits", """
selector: {names: ["web-*"], labels: {tier: web}}
limits: {memory: 96Mi, pids: 64}
thresholds:
  - {name: hot, signal: cpu_percent, above: 90, for: 10s, actions: [alert, throttle]}
""")
    containers.append("web-1")
    pdaemon.cli("run", "-d", "--name", "web-1", "--label", "tier=web", "busybox", "sleep", "60")
    policies = {p["name"]: p for p in listed(pdaemon)["policies"]}
    assert policies["web-limits"]["containers"] == ["web-1"]
    assert "web-1" in policies["default"]["containers"]
    assert policies["default"]["commit"] and not policies["default"]["modified"]
    assert policies["web-limits"]["commit"] is None            # not committed in the folder's git
    table = pdaemon.out("policy", "ls")
    assert table.splitlines()[0].split() == ["NAME", "MODE", "CONTAINERS", "FILE", "COMMIT"]
    assert any(line.split()[:4] == ["web-limits", "enforce", "web-1", "web.yaml"] for line in table.splitlines())
    text = wait_until(lambda: (out := pdaemon.out("policy", "explain", "web-1")) and "now -" not in out and out,
                      what="a signal value in explain")
    assert "Policies: default, web-limits" in text
    assert "memory: 1.00663e+08  from web-limits/limits.memory" in text
    assert "pids: 64  from web-limits/limits.pids" in text
    assert "deny   kexec_load" in text and "from default/host-tampering" in text
    assert "web-limits/hot: cpu_percent > 90 for 10s -> alert, throttle; now" in text
    assert "seccomp filter in force: current" in text


def test_replay_tells_what_a_proposed_policy_would_have_done(pdaemon, containers, tmp_path):
    containers.append("replay-1")
    pdaemon.cli("run", "-d", "--name", "replay-1", "busybox", "sleep", "60")
    time.sleep(4 * INTERVAL)                                   # a few samples in the history
    proposed = tmp_path / "proposed.yaml"
    proposed.write_text("apiVersion: corral/v1\nkind: Policy\nmetadata: {name: proposed}\nspec:\n"
                        "  selector: {names: [replay-*]}\n"
                        "  thresholds:\n    - {name: any, signal: pids, above: 0, actions: [kill]}\n")
    out = pdaemon.out("policy", "replay", str(proposed), "--since", "1h")
    lines = out.splitlines()
    assert lines[0].startswith("policy proposed (enforce):") and "(replay-1)" in lines[0]
    assert any(line.split()[1:6] == ["replay-1", "any", "fire", "1", "kill"] for line in lines)
    assert json.loads(pdaemon.out("inspect", "replay-1"))[0]["State"]["Running"] is True   # nothing done
    proposed.write_text(proposed.read_text().replace("above: 0", "above: many"))
    broken = pdaemon.cli("policy", "replay", str(proposed), check=False)
    assert broken.returncode != 0
    assert f"{proposed}:" in broken.stderr.decode() and "above" in broken.stderr.decode()
